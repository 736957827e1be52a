"""Timed, isolated, multi-seed runs of a submission: the harness as the witness.

One seed, native protocol: a train phase then an eval phase, each a fresh
``torchrun --standalone`` of the submission's ``train_gpt.py`` (DESIGN §4). The
harness measures the times (its own clock, between the trainer's marks), counts the
artifact on disk, isolates each phase, and writes a verdict per limit to
``seed<SEED>/result.json``; ``run.json`` indexes the seeds (layout: harness/results.py).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import jsonschema
from rich.markup import escape

from harness import __version__, crash
from harness.errors import PgolfError
from harness.fingerprint import file_sha256, fingerprint, sha256_bytes
from harness.isolation import (
    DataDigests,
    Inventory,
    changed_files,
    copy_artifact,
    data_digests,
    dataset_split,
    inventory,
    release,
    stage_symlinks,
    tree_hashes,
)
from harness.launch import DEFAULT_KILL_GRACE_S, Clock, PhaseOutcome, finite, run_phase
from harness.logparse import parse_log
from harness.metrics import TensorBoardSink
from harness.preflight import preflight
from harness.protocol import (
    ENV_ARTIFACT_DIR,
    ENV_DATA_PATH,
    ENV_MAX_WALLCLOCK,
    ENV_PHASE,
    ENV_RESULT_PATH,
    ENV_RUN_ID,
    ENV_SCORE_SOCKET,
    ENV_SEED,
    ENV_TOKENIZER_PATH,
    EV_ARTIFACT,
    EV_EVAL_END,
    EV_EVAL_START,
    EV_STEP,
    EV_TRAIN_END,
    EV_TRAIN_START,
    EVAL_PROTOCOLS,
    PHASE_EVAL,
    PHASE_TRAIN,
    RESULT_KEYS,
)
from harness.results import (
    ARTIFACT_DIR,
    CODE_DIR,
    EVENTS_FILE,
    RESULT_FILE,
    RUN_FILE,
    ResultError,
    load_schema,
    read_result,
    seed_dir,
    write_json_atomic,
    write_result,
)
from harness.rules import PHASE_WALLS, RULES
from harness.sandbox import DATA as SANDBOX_DATA
from harness.sandbox import ROOT as SANDBOX_ROOT
from harness.sandbox import Bind, PhaseInputs, SandboxLevel, bwrap_argv, host_facts, phase_spec, sandbox_level
from harness.scoring.session import Channel, ScoringReport, WitnessedEval
from harness.scoring.valset import ValSet, ValSetError, load_valset
from harness.shards import ShardError, list_dataset

PHASE_AUDIT = "eval_audit"  # protocol v2: the causality replay, a fresh eval process (PGOLF_PHASE=eval)
SCORE_DIR = SANDBOX_ROOT / "score"  # protocol v2: where a sandboxed phase sees the scoring socket's folder
STAGE_DIR = ".stage"  # per-seed scratch inside RUN_DIR (masked inside the sandbox)
DEFAULT_SETUP_ALLOWANCE_S = 300.0  # imports, compile, data loading before the trainer's first mark
COMPLETE_STATUSES = ("ok", "failed")  # what --resume keeps
CODE_SUFFIXES = (".py",)
SKIP_NAMES = {"__pycache__", ".git", ".ipynb_checkpoints", "logs"}


class RunError(PgolfError):
    """A run that cannot start: bad submission, data or output folder."""


@dataclass
class Limits:
    train_time_limit_s: float = RULES.train_time_limit_s
    eval_time_limit_s: float = RULES.eval_time_limit_s
    artifact_cap_bytes: int = RULES.artifact_cap_bytes
    setup_allowance_s: float = DEFAULT_SETUP_ALLOWANCE_S
    export_allowance_s: float = PHASE_WALLS.export_allowance_s

    @property
    def scaled(self) -> bool:
        return (self.train_time_limit_s, self.eval_time_limit_s, self.artifact_cap_bytes) != (
            RULES.train_time_limit_s,
            RULES.eval_time_limit_s,
            RULES.artifact_cap_bytes,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "artifact_cap_bytes": self.artifact_cap_bytes,
            "train_time_limit_s": self.train_time_limit_s,
            "eval_time_limit_s": self.eval_time_limit_s,
            "setup_allowance_s": self.setup_allowance_s,
            "export_allowance_s": self.export_allowance_s,
        }


@dataclass
class RunConfig:
    submission_dir: Path
    out_dir: Path
    data_dir: Path
    seeds: list[int]
    tokenizer_path: Path | None = None
    nproc: int = 1
    policy: str = "challenge"
    protocol: str = "native"
    resume: bool = False
    limits: Limits = field(default_factory=Limits)
    kill_grace_s: float = DEFAULT_KILL_GRACE_S
    extra_env: dict[str, str] = field(default_factory=dict)
    rehearsal: bool = False
    device: str = "auto"
    echo: bool = True
    command: list[str] = field(default_factory=list)
    legacy_final_pattern: str | None = None
    sandbox: bool = True  # False (`--no-sandbox`): phases run unsandboxed, isolation not-verifiable
    keep_going: bool = False  # run every seed even after the same setup crash twice
    status_line: bool = True
    tensorboard_dir: Path | None = None
    data_audit: dict[str, Any] | None = None  # harness/audit.py: overlap of train and val, per dataset
    eval_protocol: str = "v2"  # native only: v2 witnessed scoring, v1 RESULT_PATH (self-reported)
    val_token_limit: int = 0  # v2: score only this many targets (rehearsals and tests)


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- inputs


def code_files(root: Path) -> dict[str, dict[str, Any]]:
    """The counted code of a submission: its Python files, by path relative to ``root``."""
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part in SKIP_NAMES or part.startswith(".") for part in rel.parts):
            continue
        if p.is_file() and p.suffix in CODE_SUFFIXES:
            out[rel.as_posix()] = {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
    return out


def code_digest(files: dict[str, dict[str, Any]]) -> str:
    return sha256_bytes("".join(f"{k}\0{v['sha256']}\n" for k, v in sorted(files.items())).encode())


def copy_submission(src: Path, dest: Path, exclude: Path) -> None:
    """Copy what a submission needs to run, leaving out caches, VCS folders and the run dir itself."""
    exclude = exclude.resolve()

    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n in SKIP_NAMES or n.startswith(".") or n.endswith(".log")}
        skip |= {n for n in names if (Path(folder) / n).resolve() == exclude}
        return skip

    shutil.copytree(src, dest, ignore=ignore)


def find_tokenizer(data_dir: Path) -> Path | None:
    """The SentencePiece model next to the data (its folder, or a ``tokenizers`` folder up to three levels up)."""
    candidates: list[Path] = []
    for d in (
        data_dir,
        data_dir / "tokenizers",
        data_dir.parent / "tokenizers",
        data_dir.parent.parent / "tokenizers",
        data_dir.parent.parent.parent / "tokenizers",  # the dev corpus: shared/data/proxy/<variant>
    ):
        if d.is_dir():
            candidates += sorted(d.glob("*.model"))
    if len(candidates) == 1:
        return candidates[0]
    # Several models: the one whose name matches the data variant (CaseOps or not, vocab size).
    caseops = "caseops" in data_dir.name
    matching = [c for c in candidates if ("caseops" in c.name) == caseops]
    vocab = re.search(r"sp(\d+)", data_dir.name)
    if vocab is not None:
        matching = [c for c in matching if f"_{vocab.group(1)}_" in c.name]
    if len({c.name for c in matching}) == 1:
        return matching[0]
    return None


def find_lock(data_dir: Path) -> Path | None:
    """`pgolf fetch`'s lock file: ``DATA_DIR/<dataset>.lock.json`` for ``DATA_DIR/datasets/<dataset>/``."""
    named = data_dir.parent.parent / f"{data_dir.name}.lock.json"
    if named.is_file():
        return named
    for d in (data_dir, data_dir.parent):
        locks = sorted(d.glob("*.lock.json"))
        if len(locks) == 1:
            return locks[0]
    return None


# ---------------------------------------------------------------- progress


class Live:
    """pgolf's own lines and one status line (seed i/n, phase, step, loss, elapsed vs limit, ETA).

    The trainer's output goes to the seed's log; ``echo`` (``--verbose``) also shows it here.
    Where stderr is not a terminal (``docker logs``, CI), the status is printed as a plain
    line every ``PLAIN_STATUS_EVERY_S`` instead of redrawn in place.
    """

    PLAIN_STATUS_EVERY_S = 30.0

    def __init__(self, echo: bool, status_line: bool = True) -> None:
        from rich.console import Console

        self.echo = echo
        self.status_line = status_line
        self.console = Console(stderr=True, highlight=False)
        self._live: Any = None
        self.status = ""
        self._plain_at: float | None = None

    def start(self) -> None:
        if self.status_line and self.console.is_terminal:
            from rich.live import Live as RichLive
            from rich.text import Text

            self._text = Text("")
            self._live = RichLive(self._text, console=self.console, refresh_per_second=4, transient=True)
            self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def line(self, text: str) -> None:
        if self.echo:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def note(self, text: str) -> None:
        # One line whatever the width: a crash is one line with the log's place.
        self.console.print(f"[bold cyan]pgolf[/]: {escape(text)}", highlight=False, soft_wrap=True)

    def set_status(self, text: str) -> None:
        self.status = text
        if self._live is not None:
            self._text.plain = text
        elif self.status_line and not self.console.is_terminal:
            now = time.monotonic()
            if self._plain_at is None or now - self._plain_at >= self.PLAIN_STATUS_EVERY_S:
                self._plain_at = now
                self.note(text)


# ---------------------------------------------------------------- one seed


@dataclass
class Witness:
    """What the harness learned from one phase's events."""

    train_start: float | None = None
    train_end: float | None = None
    eval_start: float | None = None
    eval_end: float | None = None
    steps: int | None = None
    last_loss: float | None = None
    nonfinite: str | None = None
    claimed: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    rule: str
    verdict: str  # pass | fail | not-verifiable
    measured: Any
    limit: Any
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "verdict": self.verdict,
            "measured": self.measured,
            "limit": self.limit,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Walls:
    """How the phases were isolated, and what the harness saw get past (or try to)."""

    sandbox: str  # bwrap | none
    reason: str  # what bwrap gave, or why there was no sandbox
    violations: tuple[str, ...] = ()
    leftovers: tuple[str, ...] = ()  # processes that outlived a phase (only without the sandbox)

    @classmethod
    def of(cls, level: SandboxLevel) -> Walls:
        return cls(level.name, level.reason)

    @property
    def sandboxed(self) -> bool:
        return self.sandbox == "bwrap"

    def with_violation(self, what: str) -> Walls:
        return replace(self, violations=(*self.violations, what))

    def with_leftovers(self, phase: str, n: int) -> Walls:
        what = f"{phase}: {n} process(es) outlived the phase (killed)"
        return replace(self, violations=(*self.violations, what), leftovers=(*self.leftovers, what))

    def as_dict(self) -> dict[str, Any]:
        return {
            "sandbox": self.sandbox,
            "network": "netns" if self.sandboxed else "none",
            "files": "sandbox" if self.sandboxed else "none",
            "processes": "pid-namespace" if self.sandboxed else "subreaper",
            "detail": self.reason,
            "violations": list(self.violations),
        }

    def verdicts(self, *, eval_ran: bool, artifact_changed: bool | None) -> list[Verdict]:
        if not self.sandboxed:
            why = f"no sandbox: {self.reason}"
            left = self.leftovers
            return [
                Verdict(
                    "isolation_network", "not-verifiable", "none", None, f"{why}; the network was not cut"
                ),
                Verdict(
                    "isolation_files",
                    "fail" if artifact_changed else "not-verifiable",
                    "none",
                    None,
                    f"{why}; DATA_PATH lists only the phase's own files, but the others can be reached"
                    + ("; eval modified its read-only artifact copy" if artifact_changed else ""),
                ),
                Verdict(
                    "isolation_processes",
                    "not-verifiable",
                    "subreaper",
                    None,
                    f"{why}; "
                    + ("; ".join(left) if left else "no process outlived a phase that the harness saw"),
                ),
            ]
        net = (
            "eval ran in a network namespace with only loopback"
            if eval_ran
            else "the eval phase did not run; train ran in a network namespace with only loopback"
        )
        return [
            Verdict("isolation_network", "pass", "netns", None, net),
            Verdict(
                "isolation_files",
                "pass",
                "sandbox",
                None,
                "each phase saw only its own data, read-only (mount namespace); private, empty tmp, /dev/shm and HOME folders",
            ),
            Verdict(
                "isolation_processes",
                "pass",
                "pid-namespace",
                None,
                "each phase's processes ended with its PID namespace",
            ),
        ]


@dataclass
class Checks:
    """What the harness checked between the phases."""

    inventory: Inventory
    digests: DataDigests
    changed: list[str]
    artifact_changed: bool | None

    def artifact_verdict(self) -> Verdict:
        inv = self.inventory
        reason = inv.reason()
        if reason is not None:
            return Verdict("artifact_files", "fail", len(inv.refused), None, reason)
        return Verdict(
            "artifact_files",
            "pass",
            len(inv.files),
            None,
            f"{len(inv.files)} regular file(s), {inv.bytes} bytes: eval got a read-only copy of exactly these",
        )

    def data_verdict(self) -> Verdict:
        n = len(self.digests.expected)
        if self.changed:
            return Verdict(
                "data_integrity", "fail", len(self.changed), n, _changed_reason(self.changed, self.digests)
            )
        return Verdict(
            "data_integrity",
            "pass",
            0,
            n,
            f"the {n} scored file(s) match their sha256 ({self.digests.source})",
        )


def _changed_reason(changed: list[str], digests: DataDigests) -> str:
    return (
        f"scored data changed since the run began: {changed[0]} no longer matches its sha256 ({digests.source})"
        + (f" (and {len(changed) - 1} more)" if len(changed) > 1 else "")
    )


@dataclass(frozen=True)
class TrainClock:
    """Training time between the marks, and the export after them (harness clock)."""

    marked: bool  # both train_start and train_end seen
    train_time_s: float | None
    export_time_s: float | None  # last train_end to the phase's exit

    @classmethod
    def of(cls, w: Witness, train: PhaseOutcome) -> TrainClock:
        # Marks from any rank: the earliest start and the latest end (events arrive in order).
        if w.train_start is not None and w.train_end is not None:
            return cls(
                True, round(w.train_end - w.train_start, 3), round(max(0.0, train.end_t - w.train_end), 3)
            )
        return cls(False, round(train.wall_s, 3), None)

    def export_verdict(self, allowance: float) -> Verdict:
        if not self.marked:
            return Verdict(
                "export_time",
                "pass",
                None,
                allowance,
                "no train marks: the whole train phase counted as training",
            )
        m = self.export_time_s or 0.0
        ok = m <= allowance
        return Verdict(
            "export_time",
            "pass" if ok else "fail",
            m,
            allowance,
            f"{m:.3f} s from the last train_end to the train phase's exit (export)"
            + ("" if ok else f", over the {allowance:g} s allowance"),
        )


class SeedRunner:
    def __init__(self, cfg: RunConfig, run_dir: Path, seed: int, index: int, live: Live, fp: dict[str, Any]):
        self.cfg, self.run_dir, self.seed, self.index, self.live, self.fp = (
            cfg,
            run_dir,
            seed,
            index,
            live,
            fp,
        )
        self.sd = seed_dir(run_dir, seed)
        self.stage = run_dir / STAGE_DIR / f"seed{seed}"
        self.clock = Clock()
        self.witness = Witness()
        self.phase = ""
        self.phase_start = 0.0
        self.limit = 0.0
        self.started_at = now_iso()
        self.level = sandbox_level() if cfg.sandbox else SandboxLevel(None, "switched off (--no-sandbox)")
        self.memory: dict[str, crash.MemoryReport] = {}
        self.metrics: TensorBoardSink | None = None
        if cfg.tensorboard_dir is not None:
            self.metrics = TensorBoardSink(cfg.tensorboard_dir / run_dir.name / f"seed{seed}")
        self.valset: ValSet | None = None  # protocol v2: read once per run by run()
        self.scoring: WitnessedEval | None = None  # protocol v2: the eval phase's witness
        self.channel: Channel | None = None  # protocol v2: the open scoring socket's folder

    # -- events and progress
    def on_event(self, t: float, phase: str, ev: dict[str, Any]) -> str | None:
        if self.phase == PHASE_AUDIT:  # the replay's own marks and claims are not the eval's
            return None
        if self.metrics is not None:
            self.metrics.event(t, ev)
        w = self.witness
        name = ev.get("event")
        if name == EV_TRAIN_START and w.train_start is None:
            w.train_start = t
        elif name == EV_TRAIN_END:
            w.train_end = t
            if isinstance(ev.get("step"), int):
                w.steps = ev["step"]
        elif name == EV_EVAL_START and w.eval_start is None:
            w.eval_start = t
        elif name == EV_EVAL_END:
            w.eval_end = t
            w.claimed["eval_end"] = {k: ev.get(k) for k in RESULT_KEYS if k in ev}
        elif name == EV_ARTIFACT:
            w.claimed["artifact"] = {k: v for k, v in ev.items() if k not in ("t", "phase", "event")}
        elif name == EV_STEP:
            step, loss = ev.get("step"), ev.get("train_loss")
            if isinstance(step, int):
                w.steps = step
            if loss is not None:
                if _nonfinite(loss):
                    w.nonfinite = f"train loss is {loss} at step {step}"
                    return w.nonfinite
                if finite(loss):
                    w.last_loss = float(loss)
        return None

    def on_line(self, text: str) -> None:
        self.live.line(text)

    def on_tick(self, t: float) -> None:
        w = self.witness
        mark = w.train_start if self.phase == PHASE_TRAIN else w.eval_start
        elapsed = t - (mark if mark is not None else self.phase_start)
        eta = max(0.0, self.limit - elapsed)
        parts = [f"seed {self.seed} ({self.index}/{len(self.cfg.seeds)})", self.phase]
        if self.phase == PHASE_TRAIN and w.steps is not None:
            parts.append(f"step {w.steps}")
        if self.phase == PHASE_TRAIN and w.last_loss is not None:
            parts.append(f"loss {w.last_loss:.4f}")
        if self.phase == PHASE_EVAL and self.scoring is not None and self.scoring.main is not None:
            done = sum(led.committed_targets for led in self.scoring.main.ledgers)
            parts.append(f"scored {done:,d}/{self.scoring.valset.n_targets:,d} targets")
        parts.append(f"{elapsed:.0f}/{self.limit:.0f} s, ETA {eta:.0f} s")
        self.live.set_status(" | ".join(parts))

    # -- phases
    def _phase(
        self,
        phase: str,
        *,
        env: dict[str, str],
        cwd: Path,
        limit: float,
        log: TextIO,
        sandbox: Callable[[list[str]], list[str]] | None = None,
        nproc: int | None = None,
    ) -> PhaseOutcome:
        self.phase, self.limit = phase, limit
        self.phase_start = self.clock.now()
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            # Single node: never resolve the hostname (it does not resolve in a
            # `docker run --network none` container, and the rendezvous hangs).
            "--local-addr=127.0.0.1",
            f"--nproc_per_node={nproc or self.cfg.nproc}",
            RULES.code_filename,
        ]
        log.write(f"[pgolf] seed {self.seed} phase {phase}: {' '.join(cmd)}\n")
        log.flush()
        with crash.watch_memory() as mem:
            self.memory[phase] = mem
            out = run_phase(
                sandbox(cmd) if sandbox is not None else cmd,
                phase=phase,
                env=env,
                cwd=cwd,
                clock=self.clock,
                log=log,
                events_path=self.sd / EVENTS_FILE,
                ceiling_s=limit + self.cfg.limits.setup_allowance_s,
                kill_grace_s=self.cfg.kill_grace_s,
                on_line=self.on_line,
                on_event=self.on_event,
                on_tick=self.on_tick,
            )
        log.write(
            f"[pgolf] seed {self.seed} phase {phase}: exit {out.returncode}, wall {out.wall_s:.3f} s"
            + (f", killed ({out.killed})" if out.killed else "")
            + "\n"
        )
        log.flush()
        return out

    def base_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.cfg.extra_env)
        env[ENV_SEED] = str(self.seed)
        env[ENV_RUN_ID] = f"{self.run_dir.name}_seed{self.seed}"
        if self.cfg.tokenizer_path is not None:
            env[ENV_TOKENIZER_PATH] = str(self.cfg.tokenizer_path)
        return env

    def work_dir(self, name: str) -> Path:
        """A fresh copy of the code: nothing one phase leaves next to it reaches the next."""
        d = self.stage / name
        if d.exists():
            shutil.rmtree(d)
        shutil.copytree(self.run_dir / CODE_DIR, d)
        return d

    def run(self) -> dict[str, Any]:
        if self.sd.exists():
            release(self.stage)
            shutil.rmtree(self.sd)
        (self.sd / ARTIFACT_DIR).mkdir(parents=True)
        release(self.stage)
        self.stage.mkdir(parents=True)
        result = self.blank_result()
        log_path = self.run_dir / RULES.seed_log_name(self.seed)
        try:
            with log_path.open("w", encoding="utf-8") as log:
                if self.cfg.protocol == "legacy":
                    self.run_legacy(result, log)
                else:
                    self.run_native(result, log)
        except KeyboardInterrupt:
            result["status"], result["reason"] = (
                "interrupted",
                "interrupted (Ctrl-C) during the " + (self.phase or "setup") + " phase",
            )
            self.finish(result)
            raise
        except (OSError, PgolfError) as exc:
            # The harness itself could not go on with this seed (disk full, data vanished):
            # record it like a crash so the next seed still runs.
            result["status"], result["reason"] = "crashed", f"harness: {exc}"
        self.finish(result)
        return result

    def blank_result(self) -> dict[str, Any]:
        lim = self.cfg.limits.as_dict()
        return {
            "schema_version": 1,
            "seed": self.seed,
            "status": "crashed",
            "reason": None,
            "rehearsal": self.cfg.rehearsal,
            "protocol": self.cfg.protocol,
            "score_source": "self-reported",
            "scoring": None,
            "policy": self.cfg.policy,
            "nproc": self.cfg.nproc,
            "limits": lim,
            "val_loss": None,
            "val_bpb": None,
            "val_tokens": None,
            "val_bytes": None,
            "artifact_bytes": None,
            "code_bytes": None,
            "model_bytes": None,
            "code_files": {},
            "train_time_s": None,
            "export_time_s": None,
            "eval_time_s": None,
            "train_phase_wall_s": None,
            "eval_phase_wall_s": None,
            "steps": None,
            "step_avg_ms": None,
            "verdicts": [],
            "isolation": Walls.of(self.level).as_dict(),
            "fingerprint": self.fp,
            "data_audit": self.cfg.data_audit,
            "claimed": {},
            "started_at": self.started_at,
            "finished_at": None,
        }

    def finish(self, result: dict[str, Any]) -> None:
        result["claimed"] = {**result.get("claimed", {}), **self.witness.claimed}
        result["finished_at"] = now_iso()
        if result["status"] != "ok" and not result["reason"]:
            result["reason"] = "unknown failure"
        write_result(self.sd / RESULT_FILE, result)
        if self.metrics is not None:
            self.metrics.result(result)
            self.metrics.close()
        release(self.stage)

    # -- native protocol
    def extra_binds(self, phase: str) -> tuple[Bind, ...]:
        """Writable host folders a phase gets besides its own: eval's scoring socket's folder."""
        if phase == PHASE_EVAL and self.channel is not None:
            return (Bind(self.channel.dir, SCORE_DIR),)
        return ()

    def launch(
        self,
        phase: str,
        *,
        data_files: list[Path],
        artifact_dir: Path,
        out_dir: Path | None,
        env: dict[str, str],
        limit: float,
        log: TextIO,
        label: str | None = None,
        nproc: int | None = None,
    ) -> PhaseOutcome:
        """One phase in the sandbox (or, where there is none, with what this machine allows).

        ``phase`` is what the trainer sees (``PGOLF_PHASE``); ``label`` names it for the harness
        (the causality replay is an eval to the trainer, ``eval_audit`` here). No ``data_files``:
        no ``DATA_PATH`` (eval under protocol v2 gets tokens only through the scoring socket)."""
        label = label or phase
        code = self.work_dir(f"{label}_code")
        env = {**self.base_env(), **env, ENV_PHASE: phase, ENV_ARTIFACT_DIR: str(artifact_dir)}
        env.pop(ENV_DATA_PATH, None)
        if out_dir is not None:
            env[ENV_RESULT_PATH] = str(out_dir / "result.json")
        level = self.level
        if level.bwrap is None:
            private = self.stage / f"{label}_private"
            (private / "home").mkdir(parents=True)
            (private / "tmp").mkdir()
            env.update({"HOME": str(private / "home"), "TMPDIR": str(private / "tmp")})
            if data_files:
                staged = self.stage / f"{label}_data"
                stage_symlinks(data_files, staged)
                env[ENV_DATA_PATH] = str(staged)
            return self._phase(label, env=env, cwd=code, limit=limit, log=log, nproc=nproc)
        if data_files:
            env[ENV_DATA_PATH] = str(SANDBOX_DATA)
        cfg = self.cfg
        inputs = PhaseInputs(
            code_dir=code,
            data_files=tuple(p.resolve() for p in data_files),
            artifact_dir=artifact_dir,
            artifact_writable=phase == PHASE_TRAIN,
            out_dir=out_dir,
            tokenizer=cfg.tokenizer_path,
            hidden=self.hidden_paths(),
            env=env,
            extra_binds=self.extra_binds(phase),
        )
        spec = phase_spec(inputs, host_facts())
        bwrap = level.bwrap

        def wrap(cmd: list[str]) -> list[str]:
            return bwrap_argv(spec, cmd, bwrap)

        # bwrap gets the environment on its command line (--clearenv, --setenv).
        return self._phase(
            label,
            sandbox=wrap,
            cwd=code,
            env={"PATH": os.environ.get("PATH", "")},
            limit=limit,
            log=log,
            nproc=nproc,
        )

    def hidden_paths(self) -> tuple[Path, ...]:
        """Host folders no phase may see through a system or Python folder: data and runs."""
        files = list_dataset(self.cfg.data_dir)
        parents = {p.resolve().parent for p in [*files.train, *files.val, *files.val_bytes]}
        return tuple(sorted({self.cfg.data_dir, self.run_dir, *parents}))

    def run_native(self, result: dict[str, Any], log: TextIO) -> None:
        cfg, lim, w = self.cfg, self.cfg.limits, self.witness
        train_files, eval_files = dataset_split(list_dataset(cfg.data_dir))
        result["code_files"] = code_files(self.run_dir / CODE_DIR)
        code_bytes = sum(int(v["bytes"]) for v in result["code_files"].values())
        result["code_bytes"] = code_bytes
        walls = Walls.of(self.level)
        result["isolation"] = walls.as_dict()
        digests = data_digests(eval_files, find_lock(cfg.data_dir))

        # ---- train
        art = self.sd / ARTIFACT_DIR
        train = self.launch(
            PHASE_TRAIN,
            data_files=train_files,
            artifact_dir=art.resolve(),
            out_dir=None,
            env={ENV_MAX_WALLCLOCK: _num(lim.train_time_limit_s)},
            limit=lim.train_time_limit_s,
            log=log,
        )
        result["train_phase_wall_s"] = round(train.wall_s, 3)
        result["steps"] = w.steps
        clock = TrainClock.of(w, train)
        result["train_time_s"] = clock.train_time_s
        result["export_time_s"] = clock.export_time_s
        if w.steps and result["train_time_s"]:
            result["step_avg_ms"] = round(1000.0 * result["train_time_s"] / w.steps, 3)
        if train.leftover_pids:
            walls = walls.with_leftovers(PHASE_TRAIN, len(train.leftover_pids))
            log.write(f"[pgolf] killed {len(train.leftover_pids)} process(es) left after the train phase\n")
        result["isolation"] = walls.as_dict()
        crash = self.crash_reason(PHASE_TRAIN, train, lim.train_time_limit_s)
        inv = inventory(art)
        artifact_ro = self.stage / "artifact_ro"
        hashes = copy_artifact(art, inv, artifact_ro)
        if inv.files:
            result["model_bytes"] = inv.bytes
            result["artifact_bytes"] = code_bytes + inv.bytes
        if crash is None and not inv.files and not inv.refused:
            crash = "train phase left nothing in ARTIFACT_DIR"
        changed = changed_files(digests)
        checks = Checks(inventory=inv, digests=digests, changed=changed, artifact_changed=None)
        if crash is not None:
            result["status"], result["reason"] = ("failed" if w.nonfinite else "crashed"), crash
            result["verdicts"] = self.verdicts(result, walls, checks, clock)
            return
        if inv.refused or changed:
            result["verdicts"] = self.verdicts(result, walls, checks, clock)
            result["status"], result["reason"] = "failed", inv.reason() or _changed_reason(changed, digests)
            return

        # ---- eval: only the copy of the artifact's regular files, read-only; under protocol v2
        # no val file either: tokens come only through the scoring socket
        eval_out = self.stage / "eval_out"
        eval_out.mkdir()
        eval_env = {ENV_MAX_WALLCLOCK: _num(lim.eval_time_limit_s)}
        report: ScoringReport | None = None
        if cfg.eval_protocol == "v2":
            ev, report = self.eval_witnessed(artifact_ro, eval_out, eval_env, log)
        else:
            ev = self.launch(
                PHASE_EVAL,
                data_files=eval_files,
                artifact_dir=artifact_ro,
                out_dir=eval_out,
                env=eval_env,
                limit=lim.eval_time_limit_s,
                log=log,
            )
        result["eval_phase_wall_s"] = round(ev.wall_s, 3)
        if ev.leftover_pids:
            walls = walls.with_leftovers(PHASE_EVAL, len(ev.leftover_pids))
        checks.artifact_changed = tree_hashes(artifact_ro) != hashes
        if checks.artifact_changed:
            walls = walls.with_violation("eval: the read-only artifact copy was modified")
        result["isolation"] = walls.as_dict()
        if w.eval_start is not None and w.eval_end is not None:
            result["eval_time_s"] = round(w.eval_end - w.eval_start, 3)
        else:
            result["eval_time_s"] = result["eval_phase_wall_s"]
        crash = self.crash_reason(PHASE_EVAL, ev, lim.eval_time_limit_s)
        metrics: dict[str, Any] | None = None
        result_path = eval_out / "result.json"
        if report is not None:
            apply_scoring(result, report)
            if result_path.exists():
                shutil.copy2(result_path, self.sd / "eval_result.json")
        elif crash is None:
            metrics, crash = read_metrics(result_path)
        if metrics is not None:
            result.update({k: metrics[k] for k in RESULT_KEYS})
            shutil.copy2(result_path, self.sd / "eval_result.json")
        result["verdicts"] = self.verdicts(result, walls, checks, clock)
        if report is not None:
            result["verdicts"] += report.verdicts
            if report.protocol_broken:  # the break, not the crash it causes, is the reason
                crash = None
            elif crash is not None and not any(r["segments"] for r in report.evidence["ranks"]):
                crash += (
                    f" (eval protocol v2: no rank scored through {ENV_SCORE_SOCKET}; a trainer that"
                    " reads val shards and writes RESULT_PATH needs --eval-protocol v1)"
                )
        if crash is not None:
            result["status"], result["reason"] = "crashed", crash
            return
        failed = [v for v in result["verdicts"] if v["verdict"] == "fail"]
        if failed:
            result["status"] = "failed"
            result["reason"] = "; ".join(f"{v['rule']}: {v['detail']}" for v in failed)
        else:
            result["status"], result["reason"] = "ok", None

    def eval_witnessed(
        self, artifact_ro: Path, eval_out: Path, env: dict[str, str], log: TextIO
    ) -> tuple[PhaseOutcome, ScoringReport]:
        """Protocol v2: the eval ranks get the val stream only through the scoring channel; then a
        fresh process (same sandbox, its own socket) replays some ranks' first segments (causality
        audit)."""
        assert self.valset is not None
        lim = self.cfg.limits
        witness = self.scoring = WitnessedEval(self.valset, self.cfg.nproc)
        with witness.main_pass() as self.channel:
            ev = self.launch(
                PHASE_EVAL,
                data_files=[],
                artifact_dir=artifact_ro,
                out_dir=eval_out,
                env={**env, **self.channel.env()},  # the sandbox maps the host path to SCORE_DIR
                limit=lim.eval_time_limit_s,
                log=log,
            )
        self.channel = None
        replay_failure = None
        plans = witness.replay_plans() if ev.returncode == 0 and not ev.killed else []
        if plans:
            audit_out = self.stage / "audit_out"  # the replay's own RESULT_PATH, never read
            audit_out.mkdir()
            with witness.replay(plans) as self.channel:
                audit = self.launch(
                    PHASE_EVAL,
                    label=PHASE_AUDIT,
                    nproc=len(plans),
                    data_files=[],
                    artifact_dir=artifact_ro,
                    out_dir=audit_out,
                    env={**env, **self.channel.env()},
                    limit=lim.eval_time_limit_s,
                    log=log,
                )
            self.channel = None
            if audit.returncode != 0 or audit.killed:
                replay_failure = self.exit_reason(PHASE_AUDIT, audit)
        claimed, _ = read_metrics(eval_out / "result.json")
        claim = claimed or self.witness.claimed.get("eval_end") or {}
        return ev, witness.report(claim, replay_failure)

    def crash_reason(self, phase: str, out: PhaseOutcome, limit: float) -> str | None:
        lim = self.cfg.limits
        if out.killed == "ceiling":
            return (
                f"{phase} phase killed at the hard ceiling of {limit + lim.setup_allowance_s:g} s "
                f"(limit {limit:g} s + setup allowance {lim.setup_allowance_s:g} s)"
            )
        if out.killed and out.killed.startswith("abort: "):
            return f"{out.killed[len('abort: ') :]} ({phase} phase stopped)"
        if out.returncode != 0:
            return self.exit_reason(phase, out)
        if phase == PHASE_TRAIN and self.witness.nonfinite:
            return self.witness.nonfinite
        return None

    def exit_reason(self, phase: str, out: PhaseOutcome) -> str:
        return crash.crash_reason(
            phase, out.tail, out.returncode, self.memory.get(phase), self.staged_paths()
        )

    def staged_paths(self) -> dict[str, str]:
        """Where a phase saw its data (sandbox mount, unsandboxed staging) -> the real folder."""
        real = str(self.cfg.data_dir)
        return {str(SANDBOX_DATA): real, **{str(self.stage / f"{p}_data"): real for p in ("train", "eval")}}

    def setup_failure(self, result: dict[str, Any]) -> str | None:
        """The reason of a crash before the trainer's train_start (the environment's fault, likely)."""
        if result["status"] == "crashed" and self.witness.train_start is None:
            return str(result["reason"])
        return None

    def verdicts(
        self, result: dict[str, Any], walls: Walls, checks: Checks, clock: TrainClock
    ) -> list[dict[str, Any]]:
        lim, w, strict = self.cfg.limits, self.witness, self.cfg.policy == "strict"
        out: list[Verdict] = []

        def add(rule: str, verdict: str, measured: Any, limit: Any, detail: str) -> None:
            out.append(Verdict(rule, verdict, measured, limit, detail))

        def timed(rule: str, measured: float | None, limit: float, marked: bool, phase: str) -> None:
            if measured is None:
                add(rule, "not-verifiable", None, limit, f"the {phase} phase did not run")
            elif marked:
                ok = measured <= limit
                add(
                    rule,
                    "pass" if ok else "fail",
                    measured,
                    limit,
                    f"{measured:.3f} s between the trainer's {phase} marks, by the harness clock"
                    + ("" if ok else f", over the {limit:g} s limit"),
                )
            elif measured <= limit:
                add(rule, "pass", measured, limit, f"no {phase} marks: the whole phase took {measured:.3f} s")
            else:
                add(
                    rule,
                    "not-verifiable",
                    measured,
                    limit,
                    f"no {phase}_start/{phase}_end marks and the whole phase took {measured:.3f} s > {limit:g} s",
                )

        timed("train_time", result["train_time_s"], lim.train_time_limit_s, clock.marked, "train")
        out.append(clock.export_verdict(lim.export_allowance_s))
        timed(
            "eval_time",
            result["eval_time_s"],
            lim.eval_time_limit_s,
            w.eval_start is not None and w.eval_end is not None,
            "eval",
        )
        if strict:
            for phase, key, limit in (
                ("train", "train_phase_wall_s", lim.train_time_limit_s),
                ("eval", "eval_phase_wall_s", lim.eval_time_limit_s),
            ):
                m = result[key]
                if m is None:
                    add(
                        f"{phase}_phase_wall", "not-verifiable", None, limit, f"the {phase} phase did not run"
                    )
                else:
                    add(
                        f"{phase}_phase_wall",
                        "pass" if m <= limit else "fail",
                        m,
                        limit,
                        f"whole {phase} phase (process start to exit, setup and export included) took {m:.3f} s",
                    )
        a = result["artifact_bytes"]
        if a is None:
            add("artifact_bytes", "not-verifiable", None, lim.artifact_cap_bytes, "no artifact was written")
        else:
            ok = a <= lim.artifact_cap_bytes
            add(
                "artifact_bytes",
                "pass" if ok else "fail",
                a,
                lim.artifact_cap_bytes,
                f"code {result['code_bytes']} + model {result['model_bytes']} = {a} bytes counted on disk"
                + ("" if ok else f", over the cap of {lim.artifact_cap_bytes} bytes"),
            )
        out.append(checks.artifact_verdict())
        out.append(checks.data_verdict())
        if w.nonfinite:
            add("finite_loss", "fail", "nan", None, w.nonfinite)
        out += walls.verdicts(
            eval_ran=result["eval_phase_wall_s"] is not None, artifact_changed=checks.artifact_changed
        )
        return [v.as_dict() for v in out]

    # -- legacy protocol
    def run_legacy(self, result: dict[str, Any], log: TextIO) -> None:
        """One process for both phases: what the harness cannot see for itself is marked not-verifiable."""
        cfg, lim = self.cfg, self.cfg.limits
        result["code_files"] = code_files(self.run_dir / CODE_DIR)
        code_bytes = sum(int(v["bytes"]) for v in result["code_files"].values())
        result["code_bytes"] = code_bytes
        env = self.base_env()
        env.update({ENV_DATA_PATH: str(cfg.data_dir), ENV_MAX_WALLCLOCK: _num(lim.train_time_limit_s)})
        limit = lim.train_time_limit_s + lim.eval_time_limit_s
        out = self._phase("legacy", env=env, cwd=self.work_dir("legacy_work"), limit=limit, log=log)
        wall = round(out.wall_s, 3)
        result["train_phase_wall_s"] = wall
        text = "\n".join(out.tail)
        log_text = (self.run_dir / RULES.seed_log_name(self.seed)).read_text("utf-8", errors="replace")
        text = log_text or text
        facts = parse_log(text)
        claimed: dict[str, Any] = {}
        val_loss = val_bpb = None
        if cfg.legacy_final_pattern:
            matches = list(re.finditer(cfg.legacy_final_pattern, text, flags=re.MULTILINE))
            if matches:
                gd = matches[-1].groupdict()
                val_loss = float(gd["val_loss"]) if gd.get("val_loss") else None
                val_bpb = float(gd["val_bpb"]) if gd.get("val_bpb") else None
        elif facts.final is not None:
            val_loss, val_bpb = facts.final.val_loss, facts.final.val_bpb
        result["val_loss"], result["val_bpb"] = val_loss, val_bpb
        if facts.steps is not None:
            result["steps"] = facts.steps.value
        if facts.step_avg_ms is not None:
            claimed["step_avg_ms"] = facts.step_avg_ms.value
        if facts.train_time_ms is not None:
            claimed["train_time_s"] = facts.train_time_ms.value / 1000.0
        if facts.eval_time_ms is not None:
            claimed["eval_time_s"] = facts.eval_time_ms.value / 1000.0
        if facts.artifact_bytes is not None:
            claimed["artifact_bytes"] = facts.artifact_bytes.value
        if facts.model_bytes is not None:
            claimed["model_bytes"] = facts.model_bytes.value
        result["claimed"] = claimed
        result["score_source"] = "self-reported"
        # Only the whole process is witnessed: an upper bound on training; the trainer's own
        # figures stay under "claimed".
        result["train_time_s"] = wall
        result["eval_time_s"] = None
        result["step_avg_ms"] = None
        result["isolation"] = Walls("none", "legacy protocol: one unsandboxed process").as_dict()
        v: list[dict[str, Any]] = []

        def add(rule: str, verdict: str, measured: Any, limit: Any, detail: str) -> None:
            v.append(
                {"rule": rule, "verdict": verdict, "measured": measured, "limit": limit, "detail": detail}
            )

        for rule, key, lim_s in (
            ("train_time", "train_time_s", lim.train_time_limit_s),
            ("eval_time", "eval_time_s", lim.eval_time_limit_s),
        ):
            if wall <= lim_s:
                add(rule, "pass", wall, lim_s, f"the whole process took {wall:.3f} s (harness clock)")
            else:
                c = claimed.get(key)
                add(
                    rule,
                    "not-verifiable",
                    c,
                    lim_s,
                    f"one process for train and eval ({wall:.3f} s in all); the trainer claims "
                    + (f"{c:.3f} s" if c is not None else "nothing"),
                )
        ca = claimed.get("artifact_bytes")
        add(
            "artifact_bytes",
            "not-verifiable",
            ca,
            lim.artifact_cap_bytes,
            f"legacy protocol: the model file is not known to the harness; the trainer claims {ca} bytes"
            f" (code counted by the harness: {code_bytes} bytes)",
        )
        add(
            "isolation_network",
            "not-verifiable",
            "none",
            None,
            "legacy protocol: one process, network not cut",
        )
        add(
            "isolation_files",
            "not-verifiable",
            "none",
            None,
            "legacy protocol: train and val data both visible",
        )
        result["verdicts"] = v
        crash = self.crash_reason("legacy", out, limit)
        if crash is None and val_bpb is None:
            crash = "legacy run: no final val_bpb line found in the log"
        if crash is not None:
            result["status"], result["reason"] = "crashed", crash
        elif any(x["verdict"] == "fail" for x in v):
            result["status"], result["reason"] = "failed", "a limit failed"
        else:
            result["status"], result["reason"] = "ok", None


def apply_scoring(result: dict[str, Any], report: ScoringReport) -> None:
    """The harness's own score (None unless every target was scored) and the scoring evidence."""
    result["score_source"] = "witnessed"
    result["scoring"] = report.evidence
    if report.score is not None:
        result.update(report.score.as_dict())


def _nonfinite(x: Any) -> bool:
    if isinstance(x, str):  # launch.py keeps NaN/inf as strings
        return x.strip().lower().lstrip("+-") in ("nan", "inf", "infinity")
    return isinstance(x, float) and not math.isfinite(x)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def read_metrics(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The eval phase's RESULT_PATH, checked: (metrics, None) or (None, reason)."""
    try:
        obj = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None, f"eval phase wrote no {ENV_RESULT_PATH} ({path.name})"
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"eval phase wrote an unreadable {ENV_RESULT_PATH}: {exc}"
    if not isinstance(obj, dict) or any(k not in obj for k in RESULT_KEYS):
        return None, f"eval phase {ENV_RESULT_PATH} lacks one of {', '.join(RESULT_KEYS)}"
    for k in ("val_loss", "val_bpb"):
        x = obj[k]
        if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x):
            return None, f"eval phase reported {k} = {x!r}, expected a finite number"
    for k in ("val_tokens", "val_bytes"):
        if not isinstance(obj[k], int) or isinstance(obj[k], bool) or obj[k] <= 0:
            return None, f"eval phase reported {k} = {obj[k]!r}, expected a positive integer"
    return {k: obj[k] for k in RESULT_KEYS}, None


# ---------------------------------------------------------------- the run


def validate_run(run: dict[str, Any], where: str) -> None:
    try:
        jsonschema.validate(run, load_schema("run"))
    except jsonschema.ValidationError as exc:
        path = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise ResultError(f"{where}: field {path}: {exc.message}") from None


def _summary(run_dir: Path, seed: int, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": result["status"],
        "reason": result["reason"],
        "result": seed_dir(run_dir, seed).relative_to(run_dir).joinpath(RESULT_FILE).as_posix(),
        "log": RULES.seed_log_name(seed),
        "val_loss": result.get("val_loss"),
        "val_bpb": result.get("val_bpb"),
        "artifact_bytes": result.get("artifact_bytes"),
    }


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """`docker stop` and friends send TERM: stop as cleanly as Ctrl-C."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def resolve_device(cfg: RunConfig, fp: dict[str, Any]) -> str:
    """What the trainer runs on: as asked, else cuda when it can see a GPU."""
    if cfg.device != "auto":
        return cfg.device
    visible = cfg.extra_env.get("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES"))
    if visible is not None and visible.strip() in ("", "-1"):
        return "cpu"
    return "cuda" if fp.get("gpu_count") else "cpu"


def check_inputs(cfg: RunConfig) -> None:
    entry = cfg.submission_dir / RULES.code_filename
    if not cfg.submission_dir.is_dir():
        raise RunError(
            f"{cfg.submission_dir}: not a directory, expected a submission folder holding {RULES.code_filename}"
        )
    if not entry.is_file():
        raise RunError(f"{entry}: not found, expected the submission's {RULES.code_filename}")
    if cfg.eval_protocol not in EVAL_PROTOCOLS:
        raise RunError(f"--eval-protocol {cfg.eval_protocol}: expected one of {', '.join(EVAL_PROTOCOLS)}")
    if cfg.nproc < 1:
        raise RunError(f"--nproc {cfg.nproc}: expected at least 1")
    if not cfg.seeds or len(set(cfg.seeds)) != len(cfg.seeds):
        raise RunError(f"--seeds {cfg.seeds}: expected one or more distinct integers")
    try:
        files = list_dataset(cfg.data_dir)
    except ShardError as exc:
        raise RunError(str(exc)) from None
    if cfg.protocol == "native":
        if not files.train:
            raise RunError(
                f"{cfg.data_dir}: no {RULES.shards.train_prefix}*{RULES.shards.suffix} shards found"
            )
        if not files.val:
            raise RunError(f"{cfg.data_dir}: no {RULES.shards.val_prefix}*{RULES.shards.suffix} shards found")
    if cfg.tokenizer_path is not None and not cfg.tokenizer_path.is_file():
        raise RunError(f"{cfg.tokenizer_path}: tokenizer not found, expected a SentencePiece .model file")
    for k in cfg.extra_env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
            raise RunError(f"--env {k}=...: not a valid environment variable name")


def audit_before_training(cfg: RunConfig, lock: Path | None) -> dict[str, Any] | None:
    """Does the training data hold validation text? Once per data lock (cached), noted, recorded."""
    from harness.audit import audit_for_run, describe

    summary = audit_for_run(cfg.data_dir, lock, progress=cfg.echo)
    if summary is not None and cfg.echo:
        print(f"pgolf run: data audit: {describe(summary)}", file=sys.stderr, flush=True)
    return summary


def run(cfg: RunConfig) -> dict[str, Any]:
    """Run every seed; returns run.json's content. Ctrl-C keeps what finished and re-raises."""
    cfg.submission_dir = cfg.submission_dir.resolve()
    cfg.data_dir = cfg.data_dir.resolve()
    if cfg.tokenizer_path is None:
        cfg.tokenizer_path = find_tokenizer(cfg.data_dir)
    else:
        cfg.tokenizer_path = cfg.tokenizer_path.resolve()
    check_inputs(cfg)
    report = preflight(cfg.submission_dir, cfg.data_dir, cfg.tokenizer_path, native=cfg.protocol == "native")
    if cfg.tensorboard_dir is not None:
        cfg.tensorboard_dir = cfg.tensorboard_dir.resolve()
        TensorBoardSink.available()
    run_dir = cfg.out_dir.resolve()
    done: dict[int, dict[str, Any]] = {}
    if run_dir.exists() and any(run_dir.iterdir()):
        if not cfg.resume:
            raise RunError(
                f"{run_dir}: already holds a run; pass --resume to finish it or choose another --out"
            )
        for seed in cfg.seeds:
            rp = seed_dir(run_dir, seed) / RESULT_FILE
            if rp.exists():
                try:
                    r = read_result(rp)
                except ResultError:
                    continue
                if r["status"] in COMPLETE_STATUSES:
                    done[seed] = r
    run_dir.mkdir(parents=True, exist_ok=True)
    code = run_dir / CODE_DIR
    files = code_files(cfg.submission_dir)
    if code.exists():
        old = code_files(code)
        if done and code_digest(old) != code_digest(files):
            raise RunError(
                f"{cfg.submission_dir}: code differs from {code} of the run being resumed; "
                "resume needs the same code (or choose another --out)"
            )
        shutil.rmtree(code)
    copy_submission(cfg.submission_dir, code, exclude=run_dir)
    files = code_files(code)
    lock = find_lock(cfg.data_dir)
    lock_sha = file_sha256(lock) if lock is not None else None
    fp = fingerprint(code_sha256=code_digest(files), lock_sha256=lock_sha)
    cfg.data_audit = audit_before_training(cfg, lock)
    dataset = list_dataset(cfg.data_dir)
    valset = None
    if cfg.protocol == "native" and cfg.eval_protocol == "v2":
        try:
            valset = load_valset(cfg.data_dir, cfg.tokenizer_path, lock, cfg.val_token_limit)
        except ValSetError as exc:
            raise RunError(str(exc)) from None
    prior: dict[str, Any] = {}
    rp = run_dir / RUN_FILE
    if rp.exists():
        try:
            prior = json.loads(rp.read_text("utf-8"))
        except (json.JSONDecodeError, OSError):
            prior = {}
    run_json: dict[str, Any] = {
        "schema_version": 1,
        "harness_version": __version__,
        "status": "running",
        "rehearsal": cfg.rehearsal,
        "protocol": cfg.protocol,
        "eval_protocol": cfg.eval_protocol if cfg.protocol == "native" else None,
        "policy": cfg.policy,
        "nproc": cfg.nproc,
        "device": resolve_device(cfg, fp),
        "seeds": list(cfg.seeds),
        "limits": {**cfg.limits.as_dict(), "scaled": cfg.limits.scaled},
        "submission": {
            "source_dir": str(cfg.submission_dir),
            "code_dir": CODE_DIR,
            "entry": RULES.code_filename,
            "code_sha256": code_digest(files),
            "code_bytes": sum(int(v["bytes"]) for v in files.values()),
            "code_files": files,
        },
        "data": {
            "data_dir": str(cfg.data_dir),
            "tokenizer_path": str(cfg.tokenizer_path) if cfg.tokenizer_path else None,
            "train_files": len(dataset.train),
            "val_files": len(dataset.val),
            "val_bytes_files": len(dataset.val_bytes),
            "lock_file": str(lock) if lock else None,
            "lock_sha256": lock_sha,
            "audit": cfg.data_audit,
        },
        "env": dict(cfg.extra_env),
        "command": list(cfg.command),
        "results": {str(s): _summary(run_dir, s, r) for s, r in done.items()},
        "fingerprint": fp,
        "started_at": prior.get("started_at", now_iso()) if cfg.resume else now_iso(),
        "updated_at": now_iso(),
    }

    def save(status: str) -> None:
        run_json["status"] = status
        run_json["updated_at"] = now_iso()
        validate_run(run_json, str(rp))
        write_json_atomic(rp, run_json)

    save("running")
    live = Live(cfg.echo, cfg.status_line)
    live.start()
    live.note(report.summary())
    last_setup_failure: str | None = None
    try:
        with _sigterm_as_interrupt():
            for i, seed in enumerate(cfg.seeds, start=1):
                if seed in done:
                    live.note(
                        f"seed {seed} ({i}/{len(cfg.seeds)}): already {done[seed]['status']}, kept (--resume)"
                    )
                    continue
                what = "one process (legacy)" if cfg.protocol == "legacy" else "train then eval"
                live.note(f"seed {seed} ({i}/{len(cfg.seeds)}): {what}, {cfg.nproc} process(es)")
                sr = SeedRunner(cfg, run_dir, seed, i, live, fp)
                sr.valset = valset
                try:
                    result = sr.run()
                except KeyboardInterrupt:
                    try:
                        r = read_result(seed_dir(run_dir, seed) / RESULT_FILE)
                        run_json["results"][str(seed)] = _summary(run_dir, seed, r)
                    except ResultError:
                        pass  # interrupted before the seed had a result: nothing of it to keep
                    save("interrupted")
                    raise
                run_json["results"][str(seed)] = _summary(run_dir, seed, result)
                log_path = run_dir / RULES.seed_log_name(seed)
                live.note(
                    f"seed {seed}: {result['status']}"
                    + (f", val_bpb {result['val_bpb']:.4f}" if result["val_bpb"] is not None else "")
                    + (f" — {result['reason']}; log: {log_path}" if result["reason"] else "")
                )
                seen = result["isolation"].get("violations") or []
                if seen:
                    live.note(f"seed {seed}: isolation saw {len(seen)} violation(s), first: {seen[0]}")
                save("running")
                setup_failure = sr.setup_failure(result)
                rest = [s for s in cfg.seeds[i:] if s not in done]
                if rest and not cfg.keep_going and crash.same_failure(setup_failure, last_setup_failure):
                    live.note(
                        f"stopped: two seeds in a row crashed the same way before training started "
                        f"(the environment, not the seed); seed(s) {', '.join(map(str, rest))} not run. "
                        "Fix it, then --resume; or --keep-going to run every seed regardless"
                    )
                    break
                last_setup_failure = setup_failure
    finally:
        live.stop()
        stage = run_dir / STAGE_DIR
        if stage.exists():
            release(stage)
    statuses = [run_json["results"].get(str(s), {}).get("status") for s in cfg.seeds]
    save("complete" if all(s == "ok" for s in statuses) else "incomplete")
    return run_json
