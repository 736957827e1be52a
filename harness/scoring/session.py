"""Witnessed scoring around `pgolf run`'s eval phase: serve, audit, judge.

    witness = WitnessedEval(valset, world=nproc)
    with witness.main_pass() as channel:      # channel.env(): {PGOLF_SCORE_SOCKET: path}
        run the eval phase with channel.env()
    plans = witness.replay_plans()
    if plans:
        with witness.replay(plans) as channel:  # a fresh process of len(plans) ranks
            run the audit phase (PGOLF_PHASE=eval) with channel.env()
    report = witness.report(claimed, replay_failure)

Each channel lives in a fresh directory of its own (``channel.dir``, a short path: Unix socket
names are limited to 107 bytes), removed afterwards. A sandbox binds that directory (writable:
connecting needs write access to the socket) into the phase, at the same path or at another one
given to ``channel.env(inside)``.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from harness.errors import PgolfError
from harness.protocol import ENV_SCORE_SOCKET
from harness.rules import SCORING
from harness.scoring.metric import Score, compare_claim, score
from harness.scoring.server import COVERAGE, ORDER, CausalityReplay, MainPass, RankLedger, ReplayPlan
from harness.scoring.valset import ValSet

SOCKET_NAME = "score.sock"
MAX_SOCKET_PATH = 107


@dataclass
class ScoringReport:
    """What the harness concluded: its own score (None unless every target was scored) and verdicts."""

    score: Score | None
    verdicts: list[dict[str, Any]]
    evidence: dict[str, Any] = field(default_factory=dict)
    protocol_broken: bool = False  # a rank broke the protocol (its crash is the consequence)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [v for v in self.verdicts if v["verdict"] == "fail"]


@dataclass(frozen=True)
class Channel:
    """Where one pass's socket lives on the host."""

    dir: Path

    @property
    def socket(self) -> Path:
        return self.dir / SOCKET_NAME

    def env(self, inside: PurePosixPath | None = None) -> dict[str, str]:
        """The phase's environment: the socket path as the phase sees it (``inside``: where a
        sandbox shows ``dir``)."""
        return {ENV_SCORE_SOCKET: str((inside or PurePosixPath(self.dir)) / SOCKET_NAME)}


@contextmanager
def _channel_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="pgolf-score-"))
    try:
        if len(str(d / SOCKET_NAME)) > MAX_SOCKET_PATH:
            raise PgolfError(
                f"{d}: too long for a Unix socket path (TMPDIR); expected <= {MAX_SOCKET_PATH} bytes"
            )
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _span(ledgers: list[RankLedger]) -> float | None:
    """Harness clock from the first segment asked for to the last commit, over all ranks."""
    starts = [led.first_request for led in ledgers if led.first_request is not None]
    ends = [led.last_commit for led in ledgers if led.last_commit is not None]
    return round(max(ends) - min(starts), 3) if starts and ends else None


def _verdict(rule: str, verdict: str, measured: Any, limit: Any, detail: str) -> dict[str, Any]:
    return {"rule": rule, "verdict": verdict, "measured": measured, "limit": limit, "detail": detail}


class WitnessedEval:
    def __init__(self, valset: ValSet, world: int, seed: int | None = None) -> None:
        self.valset, self.world, self.seed = valset, world, seed
        self.main: MainPass | None = None
        self.replayed: CausalityReplay | None = None

    @contextmanager
    def main_pass(self) -> Iterator[Channel]:
        with _channel_dir() as d:
            self.main = MainPass(d / SOCKET_NAME, self.valset, self.world, self.seed)
            with self.main:
                yield Channel(d)

    def replay_plans(self) -> list[ReplayPlan]:
        """First segments (of >= 2 targets) of up to ``causality_audit_ranks`` ranks, each cut at a
        random target (log-uniform): only after a main pass that scored everything."""
        main = self.main
        if main is None or main.violations or any(led.pos < led.end for led in main.ledgers):
            return []
        rng = np.random.default_rng([main.seed, 1])
        ready = [led for led in main.ledgers if led.first is not None and led.first.nll.size >= 2]
        k = min(SCORING.causality_audit_ranks, len(ready))
        picks = sorted(int(i) for i in rng.choice(len(ready), size=k, replace=False))
        plans = []
        for led in (ready[i] for i in picks):
            first = led.first
            assert first is not None
            # Log-uniform over [1, n): early cuts take away most of the segment's future, which
            # whole-segment adaptation leans on; the last cut still catches a one-token look-ahead.
            n = first.nll.size
            cut = min(n - 1, max(1, round(math.exp(rng.uniform(0.0, math.log(n - 1))))))
            plans.append(
                ReplayPlan(led.rank, first.start, first.context, cut, int(first.nll.size), first.nll)
            )
        return plans

    @contextmanager
    def replay(self, plans: list[ReplayPlan]) -> Iterator[Channel]:
        with _channel_dir() as d:
            self.replayed = CausalityReplay(d / SOCKET_NAME, self.valset, plans)
            with self.replayed:
                yield Channel(d)

    # -- judgement
    def report(self, claimed: dict[str, Any], replay_failure: str | None = None) -> ScoringReport:
        main, vs = self.main, self.valset
        if main is None:
            raise PgolfError("scoring report asked before the main pass ran")
        led_all = main.ledgers
        committed = sum(led.committed_targets for led in led_all)
        segments = sum(led.segments for led in led_all)
        verdicts: list[dict[str, Any]] = []
        coverage = [v for _, v in main.violations if v.rule == COVERAGE]
        order = [v for _, v in main.violations if v.rule == ORDER]
        short = [led for led in led_all if led.pos < led.end]
        complete = not short and not coverage
        if complete:
            detail = (
                f"{committed:,d} of {vs.n_targets:,d} targets scored exactly once, in order, by {self.world} "
                f"rank(s) in {segments:,d} segment(s) (largest {max(led.max_served for led in led_all):,d}, "
                f"cap {SCORING.max_segment_targets:,d})"
            )
            verdicts.append(_verdict(COVERAGE, "pass", committed, vs.n_targets, detail))
        else:
            why = [v.message for v in coverage] + [
                f"rank {led.rank} committed {led.committed_targets:,d} of {led.end - led.start:,d} targets"
                + ("" if led.connected else " (never connected)")
                for led in short
            ]
            verdicts.append(_verdict(COVERAGE, "fail", committed, vs.n_targets, "; ".join(why)))
        checks = [c for led in led_all for c in led.checks]
        tol = SCORING.normalization_atol_nats
        mismatched = [c for c in checks if not c.entry_error <= tol]
        if order or mismatched:
            why = [v.message for v in order]
            if mismatched:
                c = max(mismatched, key=lambda c: c.entry_error if c.entry_error == c.entry_error else np.inf)
                why.append(
                    f"{len(mismatched)} of {len(checks)} audited target(s) have a log-prob that is not minus the "
                    f"NLL returned for them (rank {c.rank} segment {c.segment} target {c.target_index}: "
                    f"log-prob {c.entry:.6g}, NLL {c.nll:.6g})"
                )
            verdicts.append(_verdict(ORDER, "fail", len(order) + len(mismatched), 0, "; ".join(why)))
        else:
            verdicts.append(
                _verdict(
                    ORDER,
                    "pass",
                    0,
                    0,
                    "segments released only after the previous one was committed; "
                    f"{len(checks)} audited NLL(s) equal minus their target's log-prob (within {tol:g} nats)",
                )
            )
        if not checks:
            verdicts.append(_verdict("normalization", "not-verifiable", None, tol, "no segment was audited"))
        else:
            worst = max(checks, key=lambda c: abs(c.logsumexp) if c.logsumexp == c.logsumexp else np.inf)
            err = abs(worst.logsumexp)
            ok = err <= tol
            verdicts.append(
                _verdict(
                    "normalization",
                    "pass" if ok else "fail",
                    err,
                    tol,
                    f"{len(checks)} log-prob vector(s) at positions picked after the NLLs arrived, "
                    f"{sum(led.audited_segments for led in led_all)} segment(s): max |logsumexp| {err:.3g}"
                    + (
                        ""
                        if ok
                        else f" (rank {worst.rank} segment {worst.segment}: distribution does not sum to 1)"
                    ),
                )
            )
        verdicts.append(self._causality(replay_failure))
        witnessed = (
            score([s for led in led_all for s in led.nll_sums], vs.n_targets, vs.n_bytes)
            if complete
            else None
        )
        claims = compare_claim(claimed, witnessed) if witnessed is not None else []
        verdicts.append(self._claim_verdict(claimed, claims))
        evidence = {
            "protocol": "v2",
            "score_source": "witnessed",
            "byte_source": vs.byte_source,
            "val_files": list(vs.files),
            "val_lock": vs.lock,
            "targets": vs.n_targets,
            "bytes": vs.n_bytes,
            "audit_seed": main.seed,
            "scoring_wall_s": _span(led_all),
            "ranks": [
                {
                    "rank": led.rank,
                    "first_target": led.start,
                    "end": led.end,
                    "committed": led.committed_targets,
                    "segments": led.segments,
                    "largest_segment": led.max_served,
                    "largest_asked": led.asked_max,
                    "audited_segments": led.audited_segments,
                }
                for led in led_all
            ],
            "normalization_checks": [c.as_dict() for c in checks[:16]],
            "causality_checks": [c.as_dict() for c in (self.replayed.checks if self.replayed else []) if c],
            "claimed_vs_witnessed": [c.as_dict() for c in claims],
            "rules": {
                "max_segment_targets": SCORING.max_segment_targets,
                "normalization_atol_nats": SCORING.normalization_atol_nats,
                "causality_atol_nats": SCORING.causality_atol_nats,
                "claimed_rtol": SCORING.claimed_rtol,
            },
        }
        return ScoringReport(witnessed, verdicts, evidence, bool(main.violations))

    def _causality(self, replay_failure: str | None) -> dict[str, Any]:
        tol, rp = SCORING.causality_atol_nats, self.replayed
        if rp is None:
            return _verdict(
                "causality",
                "not-verifiable",
                None,
                tol,
                "no replay ran: the main pass did not score every target, or no first segment had 2 targets",
            )
        if replay_failure is not None or rp.violations or any(c is None for c in rp.checks):
            why = (
                replay_failure
                or "; ".join(v.message for _, v in rp.violations)
                or "a replay rank scored nothing"
            )
            return _verdict(
                "causality", "fail", None, tol, f"the replay process did not score its segments: {why}"
            )
        checks = [c for c in rp.checks if c is not None]
        worst = max(checks, key=lambda c: c.max_abs_diff)
        ok = worst.max_abs_diff <= tol
        what = ", ".join(f"rank {c.rank} cut at {c.cut}/{c.segment_targets}" for c in checks)
        detail = f"a fresh process replayed the first segment of {what}: max |NLL difference| {worst.max_abs_diff:.3g} nats"
        if not ok:
            detail += (
                f" at target {worst.worst_index} of rank {worst.rank}: its scores depend on tokens after them"
            )
        return _verdict("causality", "pass" if ok else "fail", worst.max_abs_diff, tol, detail)

    def _claim_verdict(self, claimed: dict[str, Any], claims: list[Any]) -> dict[str, Any]:
        tol = SCORING.claimed_rtol
        if not claims:
            return _verdict(
                "claimed_score", "not-verifiable", None, tol, "no witnessed score to compare with"
            )
        made = [c for c in claims if c.agrees]
        if not made:
            return _verdict("claimed_score", "not-verifiable", None, tol, "the trainer claimed no score")
        worst = max(made, key=lambda c: c.rel_diff)
        ok = worst.rel_diff <= tol
        detail = "; ".join(
            f"{c.key} claimed {c.claimed} witnessed {c.witnessed}" for c in made if c.rel_diff > tol
        )
        if ok:
            detail = f"the trainer's own {', '.join(c.key for c in made)} agree with the witnessed ones"
        detail += f" (max relative difference {worst.rel_diff:.3g}; the witnessed score is the one reported)"
        return _verdict("claimed_score", "pass" if ok else "fail", worst.rel_diff, tol, detail)
