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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import jsonschema

from harness import __version__
from harness.errors import PgolfError
from harness.fingerprint import file_sha256, fingerprint, sha256_bytes
from harness.isolation import (
    dataset_split,
    phase_isolation,
    read_guard_log,
    readonly_copy,
    release,
    stage_files,
    tree_hashes,
)
from harness.launch import DEFAULT_KILL_GRACE_S, Clock, PhaseOutcome, finite, run_phase
from harness.logparse import parse_log
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
from harness.rules import RULES
from harness.scoring.session import ScoringReport, WitnessedEval
from harness.scoring.valset import ValSet, ValSetError, load_valset
from harness.shards import ShardError, list_dataset

PHASE_AUDIT = "eval_audit"  # protocol v2: the causality replay, a fresh eval process
STAGE_DIR = ".stage"  # per-seed scratch inside RUN_DIR (same file system: hard links work)
DEFAULT_SETUP_ALLOWANCE_S = 300.0  # imports, compile, data loading before the trainer's first mark
COMPLETE_STATUSES = ("ok", "failed")  # what --resume keeps
CODE_SUFFIXES = (".py",)
SKIP_NAMES = {"__pycache__", ".git", ".ipynb_checkpoints", "logs"}
_EXC_RE = re.compile(r"^(?:\[(?:rank|default)\d+\]:\s*)?([A-Za-z_][\w.]*(?:Error|Exception|Exit)\b:?.*)$")
_ROOT_RANK_RE = re.compile(r"\brank\s*:\s*(\d+)")
_ROOT_EXIT_RE = re.compile(r"\bexitcode\s*:\s*(-?\d+)")


class RunError(PgolfError):
    """A run that cannot start: bad submission, data or output folder."""


@dataclass
class Limits:
    train_time_limit_s: float = RULES.train_time_limit_s
    eval_time_limit_s: float = RULES.eval_time_limit_s
    artifact_cap_bytes: int = RULES.artifact_cap_bytes
    setup_allowance_s: float = DEFAULT_SETUP_ALLOWANCE_S

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
    """Trainer output to the terminal, and one status line: seed i/n, phase, step, loss, elapsed vs limit."""

    def __init__(self, echo: bool) -> None:
        from rich.console import Console

        self.echo = echo
        self.console = Console(stderr=True, highlight=False)
        self._live: Any = None
        self.status = ""

    def start(self) -> None:
        if self.console.is_terminal:
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
        self.console.print(f"[bold cyan]pgolf[/]: {text}", highlight=False)

    def set_status(self, text: str) -> None:
        self.status = text
        if self._live is not None:
            self._text.plain = text


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
        self.valset: ValSet | None = None  # protocol v2: read once per run by run()
        self.scoring: WitnessedEval | None = None  # protocol v2: the eval phase's channel

    # -- events and progress
    def on_event(self, t: float, phase: str, ev: dict[str, Any]) -> str | None:
        w = self.witness
        name = ev.get("event")
        if self.phase == PHASE_AUDIT:  # the replay's own marks and claims are not the eval's
            return None
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
        cmd_prefix: list[str],
        env: dict[str, str],
        cwd: Path,
        limit: float,
        log: TextIO,
        nproc: int | None = None,
    ) -> PhaseOutcome:
        self.phase, self.limit = phase, limit
        self.phase_start = self.clock.now()
        cmd = [
            *cmd_prefix,
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
        out = run_phase(
            cmd,
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
            "eval_time_s": None,
            "train_phase_wall_s": None,
            "eval_phase_wall_s": None,
            "steps": None,
            "step_avg_ms": None,
            "verdicts": [],
            "isolation": {"network": "none", "files": "none", "violations": []},
            "fingerprint": self.fp,
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
        release(self.stage)

    # -- native protocol
    def run_native(self, result: dict[str, Any], log: TextIO) -> None:
        cfg, lim = self.cfg, self.cfg.limits
        files = list_dataset(cfg.data_dir)
        train_files, eval_files = dataset_split(files)
        result["code_files"] = code_files(self.run_dir / CODE_DIR)
        code_bytes = sum(int(v["bytes"]) for v in result["code_files"].values())
        result["code_bytes"] = code_bytes
        violations: list[str] = []

        # ---- train
        staged_train = self.stage / "train_data"
        stage_files(train_files, staged_train)
        iso = phase_isolation(phase=PHASE_TRAIN, stage_dir=self.stage, deny=eval_files, cut_network=False)
        env = {**self.base_env(), **iso.env}
        env.update(
            {
                ENV_PHASE: PHASE_TRAIN,
                ENV_DATA_PATH: str(staged_train),
                ENV_ARTIFACT_DIR: str((self.sd / ARTIFACT_DIR).resolve()),
                ENV_MAX_WALLCLOCK: _num(lim.train_time_limit_s),
            }
        )
        train = self._phase(
            PHASE_TRAIN,
            cmd_prefix=iso.prefix,
            env=env,
            cwd=self.work_dir("train_work"),
            limit=lim.train_time_limit_s,
            log=log,
        )
        result["train_phase_wall_s"] = round(train.wall_s, 3)
        train_refused = read_guard_log(iso.guard_log)
        violations += [f"train: {_describe(v)}" for v in train_refused]
        w = self.witness
        result["steps"] = w.steps
        result["isolation"] = {"network": "none", "files": "staged", "violations": violations}
        if w.train_start is not None and w.train_end is not None:
            result["train_time_s"] = round(w.train_end - w.train_start, 3)
        else:
            result["train_time_s"] = result["train_phase_wall_s"]
        if w.steps and result["train_time_s"]:
            result["step_avg_ms"] = round(1000.0 * result["train_time_s"] / w.steps, 3)
        if train.leftover_pids:
            log.write(f"[pgolf] killed {len(train.leftover_pids)} process(es) left after the train phase\n")
        crash = self.crash_reason(PHASE_TRAIN, train, lim.train_time_limit_s, train_refused)
        art = self.sd / ARTIFACT_DIR
        model_files = [p for p in sorted(art.rglob("*")) if p.is_file()]
        model_bytes = sum(p.stat().st_size for p in model_files)
        if crash is None and not model_files:
            crash = "train phase left nothing in ARTIFACT_DIR"
        if model_files:
            result["model_bytes"] = model_bytes
            result["artifact_bytes"] = code_bytes + model_bytes
        if crash is not None:
            result["status"], result["reason"] = ("failed" if w.nonfinite else "crashed"), crash
            result["verdicts"] = self.verdicts(result, train_refused, [], None)
            return

        # ---- eval
        hashes = tree_hashes(art)
        witnessed = cfg.eval_protocol == "v2"
        staged_eval = self.stage / "eval_data"
        stage_files([] if witnessed else eval_files, staged_eval)  # v2: no val file reaches eval
        artifact_ro = self.stage / "artifact_ro"
        readonly_copy(art, artifact_ro)
        deny = [*train_files, *staged_train.iterdir()]
        iso_e = phase_isolation(phase=PHASE_EVAL, stage_dir=self.stage, deny=deny, cut_network=True)
        eval_out = self.stage / "eval_out"
        eval_out.mkdir()
        result_path = eval_out / "result.json"
        env = {**self.base_env(), **iso_e.env}
        env.update(
            {
                ENV_PHASE: PHASE_EVAL,
                ENV_DATA_PATH: str(staged_eval),
                ENV_ARTIFACT_DIR: str(artifact_ro),
                ENV_RESULT_PATH: str(result_path),
                ENV_MAX_WALLCLOCK: _num(lim.eval_time_limit_s),
            }
        )
        report: ScoringReport | None = None
        if witnessed:
            ev, report = self.eval_witnessed(env, iso_e.prefix, result_path, log)
        else:
            ev = self._phase(
                PHASE_EVAL,
                cmd_prefix=iso_e.prefix,
                env=env,
                cwd=self.work_dir("eval_work"),
                limit=lim.eval_time_limit_s,
                log=log,
            )
        result["eval_phase_wall_s"] = round(ev.wall_s, 3)
        eval_refused = read_guard_log(iso_e.guard_log)
        violations += [f"eval: {_describe(v)}" for v in eval_refused]
        changed = tree_hashes(artifact_ro) != hashes
        if changed:
            violations.append("eval: the read-only artifact copy was modified")
        result["isolation"] = {"network": iso_e.network, "files": "staged", "violations": violations}
        if w.eval_start is not None and w.eval_end is not None:
            result["eval_time_s"] = round(w.eval_end - w.eval_start, 3)
        else:
            result["eval_time_s"] = result["eval_phase_wall_s"]
        crash = self.crash_reason(PHASE_EVAL, ev, lim.eval_time_limit_s, eval_refused)
        metrics: dict[str, Any] | None = None
        if report is not None:
            apply_scoring(result, report)
            if result_path.exists():
                shutil.copy2(result_path, self.sd / "eval_result.json")
        elif crash is None:
            metrics, crash = read_metrics(result_path)
        if metrics is not None:
            result.update({k: metrics[k] for k in RESULT_KEYS})
            shutil.copy2(result_path, self.sd / "eval_result.json")
        result["verdicts"] = self.verdicts(result, train_refused, eval_refused, changed)
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
        self, env: dict[str, str], cmd_prefix: list[str], result_path: Path, log: TextIO
    ) -> tuple[PhaseOutcome, ScoringReport]:
        """Protocol v2: the eval ranks get the val stream only through the scoring channel; then a
        fresh process replays some ranks' first segments (causality audit)."""
        assert self.valset is not None
        lim = self.cfg.limits
        env = {k: v for k, v in env.items() if k != ENV_DATA_PATH}
        witness = self.scoring = WitnessedEval(self.valset, self.cfg.nproc)
        with witness.main_pass() as channel:
            ev = self._phase(
                PHASE_EVAL,
                cmd_prefix=cmd_prefix,
                env={**env, **channel.env()},
                cwd=self.work_dir("eval_work"),
                limit=lim.eval_time_limit_s,
                log=log,
            )
        replay_failure = None
        plans = witness.replay_plans() if ev.returncode == 0 and not ev.killed else []
        if plans:
            replay_env = {**env, ENV_RESULT_PATH: str(self.stage / "replay_result.json")}
            with witness.replay(plans) as channel:
                audit = self._phase(
                    PHASE_AUDIT,
                    cmd_prefix=cmd_prefix,
                    env={**replay_env, **channel.env()},
                    cwd=self.work_dir("audit_work"),
                    limit=lim.eval_time_limit_s,
                    log=log,
                    nproc=len(plans),
                )
            if audit.returncode != 0 or audit.killed:
                replay_failure = self.exit_reason(PHASE_AUDIT, audit, [])
        claimed, _ = read_metrics(result_path)
        claim = claimed or self.witness.claimed.get("eval_end") or {}
        return ev, witness.report(claim, replay_failure)

    def crash_reason(
        self, phase: str, out: PhaseOutcome, limit: float, refused: list[dict[str, str]]
    ) -> str | None:
        lim = self.cfg.limits
        if out.killed == "ceiling":
            return (
                f"{phase} phase killed at the hard ceiling of {limit + lim.setup_allowance_s:g} s "
                f"(limit {limit:g} s + setup allowance {lim.setup_allowance_s:g} s)"
            )
        if out.killed and out.killed.startswith("abort: "):
            return f"{out.killed[len('abort: ') :]} ({phase} phase stopped)"
        if out.returncode != 0:
            return self.exit_reason(phase, out, refused)
        if phase == PHASE_TRAIN and self.witness.nonfinite:
            return self.witness.nonfinite
        return None

    def exit_reason(self, phase: str, out: PhaseOutcome, refused: list[dict[str, str]]) -> str:
        rank = code = None
        for line in out.tail:
            if (m := _ROOT_RANK_RE.search(line)) and "local_rank" not in line[: m.start()]:
                rank = m.group(1)
            if m := _ROOT_EXIT_RE.search(line):
                code = m.group(1)
        # The rank's own exception, not torchrun's summary of it.
        exc = next(
            (
                m.group(1)
                for line in reversed(out.tail)
                if (m := _EXC_RE.match(line.strip())) and "ChildFailedError" not in line
            ),
            None,
        )
        who = f"rank {rank}" if rank is not None else "the trainer"
        code = code if code is not None else str(out.returncode)
        reason = f"{phase} phase crashed: {who} exited with code {code}"
        if exc:
            reason += f" ({exc[:200]})"
        if refused:
            reason += f"; isolation refused {_describe(refused[0])}"
        return reason

    def verdicts(
        self,
        result: dict[str, Any],
        train_refused: list[dict[str, str]],
        eval_refused: list[dict[str, str]],
        artifact_changed: bool | None,
    ) -> list[dict[str, Any]]:
        lim, w, strict = self.cfg.limits, self.witness, self.cfg.policy == "strict"
        out: list[dict[str, Any]] = []

        def add(rule: str, verdict: str, measured: Any, limit: Any, detail: str) -> None:
            out.append(
                {"rule": rule, "verdict": verdict, "measured": measured, "limit": limit, "detail": detail}
            )

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

        timed(
            "train_time",
            result["train_time_s"],
            lim.train_time_limit_s,
            w.train_start is not None and w.train_end is not None,
            "train",
        )
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
                        f"whole {phase} phase (process start to exit, setup included) took {m:.3f} s",
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
        if w.nonfinite:
            add("finite_loss", "fail", "nan", None, w.nonfinite)
        net = [r for r in eval_refused if r["kind"] == "network"]
        files = [r for r in train_refused + eval_refused if r["kind"] == "file"]
        iso_net = result["isolation"]["network"]
        if result["eval_phase_wall_s"] is None:
            add("isolation_network", "not-verifiable", iso_net, None, "the eval phase did not run")
        elif net:
            add(
                "isolation_network",
                "fail" if strict else "pass",
                iso_net,
                None,
                f"eval tried to reach {', '.join(r['what'] for r in net)} (refused; network: {iso_net})",
            )
        else:
            add(
                "isolation_network", "pass", iso_net, None, f"no connection attempt seen (network: {iso_net})"
            )
        if files or artifact_changed:
            what = [
                f"{'train' if r in train_refused else 'eval'} phase opened {r['what']} (refused)"
                for r in files
            ]
            if artifact_changed:
                what.append("eval modified its read-only artifact copy")
            add(
                "isolation_files",
                "fail" if strict or artifact_changed else "pass",
                "staged",
                None,
                "; ".join(what),
            )
        else:
            add("isolation_files", "pass", "staged", None, "no forbidden file opened")
        return out

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
        out = self._phase(
            "legacy", cmd_prefix=[], env=env, cwd=self.work_dir("legacy_work"), limit=limit, log=log
        )
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
        result["isolation"] = {"network": "none", "files": "none", "violations": []}
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
        crash = self.crash_reason("legacy", out, limit, [])
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


def _describe(refused: dict[str, str]) -> str:
    what = "a connection to" if refused["kind"] == "network" else "an open of"
    return f"{what} {refused['what']} (rank {refused.get('rank', '?')})"


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


def run(cfg: RunConfig) -> dict[str, Any]:
    """Run every seed; returns run.json's content. Ctrl-C keeps what finished and re-raises."""
    cfg.submission_dir = cfg.submission_dir.resolve()
    cfg.data_dir = cfg.data_dir.resolve()
    if cfg.tokenizer_path is None:
        cfg.tokenizer_path = find_tokenizer(cfg.data_dir)
    else:
        cfg.tokenizer_path = cfg.tokenizer_path.resolve()
    check_inputs(cfg)
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
    live = Live(cfg.echo)
    live.start()
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
                live.note(
                    f"seed {seed}: {result['status']}"
                    + (f", val_bpb {result['val_bpb']:.4f}" if result["val_bpb"] is not None else "")
                    + (f" ({result['reason']})" if result["reason"] else "")
                )
                seen = result["isolation"].get("violations") or []
                if seen:
                    live.note(f"seed {seed}: isolation refused {len(seen)} attempt(s), first: {seen[0]}")
                save("running")
    finally:
        live.stop()
        stage = run_dir / STAGE_DIR
        if stage.exists():
            release(stage)
    statuses = [run_json["results"][str(s)]["status"] for s in cfg.seeds]
    save("complete" if all(s == "ok" for s in statuses) else "incomplete")
    return run_json
