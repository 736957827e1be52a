"""Build a realistic RUN_DIR (the layout of harness/results.py) without running a trainer.

Used by the package, stats and check tests::

    from fixtures_run import make_run_dir
    run = make_run_dir(tmp_path / "run")                                  # 3 good seeds
    run = make_run_dir(tmp_path / "run", seed_fields={0: {"train_time_s": 612.0}})  # seed 0 fails
    run = make_run_dir(tmp_path / "run", crashed=(1234,))                 # seed 1234 crashed

Numbers are internally consistent the way ``pgolf run`` writes them: artifact_bytes =
code_bytes + model_bytes (code counted from the code/ files written here), val_bpb =
val_loss x val_tokens / (ln 2 x val_bytes), verdicts derived from the numbers and the
limits, status ``failed`` when a verdict fails. Each seed's log carries the trainer's
usual lines (step lines, sizes, final ``val_loss:... val_bpb:...``) and the native
``:::PGOLF`` events, with the same numbers as result.json. Every result.json is
validated against result.schema.json and run.json against run.schema.json.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema

from harness import __version__
from harness.protocol import (
    EV_ARTIFACT,
    EV_EVAL_END,
    EV_EVAL_START,
    EV_STEP,
    EV_TRAIN_END,
    EV_TRAIN_START,
    EV_VAL,
    format_event,
)
from harness.results import (
    ARTIFACT_DIR,
    CODE_DIR,
    EVENTS_FILE,
    RESULT_FILE,
    RUN_FILE,
    load_schema,
    seed_dir,
    write_result,
)
from harness.rules import RULES

# A tiny but real program: packing tests run it, and its output is deterministic.
DEFAULT_CODE = '''"""Fixture trainer: stands in for train_gpt.py in packaging tests."""
import hashlib
import os
import sys


def main() -> None:
    # Deterministic output: a checksum over a fixed computation, plus the argv it got.
    acc = 0
    for i in range(1000):
        acc = (acc * 31 + i * i) % 1_000_003
    digest = hashlib.sha256(str(acc).encode()).hexdigest()[:16]
    print(f"fixture-trainer acc={acc} digest={digest} argv={sys.argv[1:]} name={__name__}")
    print("seed:", os.environ.get("SEED", "none"))


if __name__ == "__main__":
    main()
'''

# Val split of the size and bytes-per-token of the real one (SP8192 CaseOps, ~3.16 bytes/token).
VAL_TOKENS = 47_851_520
VAL_BYTES = 151_080_734

DEFAULT_FINGERPRINT: dict[str, Any] = {  # the keys of harness.fingerprint.fingerprint()
    "gpu_count": 8,
    "gpu_model": "NVIDIA H100 80GB HBM3",
    "driver_version": "550.54.15",
    "torch_version": "2.9.1+cu128",
    "cuda_version": "12.8",
    "flash_attn_version": "3.0.0b1",
    "flash_attn_distribution": "flash_attn_3",
    "python_version": "3.11.7",
    "platform": "Linux-6.5.0-x86_64-with-glibc2.35",
    "cpu_count": 208,
    "harness_version": __version__,
    "image": "pgolf:fixture",
    "code_sha256": None,
    "data_lock_sha256": None,
}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def default_val_losses(n: int) -> list[float]:
    """Losses of a good run: about 2.322 nats, spread ~0.002 (like the accepted 1.0611 record)."""
    base = [2.31944212, 2.32239991, 2.32423994]
    return [base[i % 3] + 0.0003 * (i // 3) for i in range(n)]


def bpb_of(val_loss: float) -> float:
    return val_loss * VAL_TOKENS / (math.log(2) * VAL_BYTES)


def _verdicts(res: Mapping[str, Any], limits: Mapping[str, Any]) -> list[dict[str, Any]]:
    def v(rule: str, measured: float | None, limit: float) -> dict[str, Any]:
        if measured is None:
            return {
                "rule": rule,
                "verdict": "not-verifiable",
                "measured": None,
                "limit": limit,
                "detail": "not measured",
            }
        ok = measured <= limit
        return {
            "rule": rule,
            "verdict": "pass" if ok else "fail",
            "measured": measured,
            "limit": limit,
            "detail": f"{measured} {'<=' if ok else '>'} {limit}",
        }

    # The rules and order of harness/runner.py under the strict policy.
    out = [
        v("train_time", res["train_time_s"], limits["train_time_limit_s"]),
        v("eval_time", res["eval_time_s"], limits["eval_time_limit_s"]),
        v("train_phase_wall", res["train_phase_wall_s"], limits["train_time_limit_s"]),
        v("eval_phase_wall", res["eval_phase_wall_s"], limits["eval_time_limit_s"]),
        v("artifact_bytes", res["artifact_bytes"], limits["artifact_cap_bytes"]),
    ]
    net = res["isolation"]["network"]
    out.append(
        {
            "rule": "isolation_network",
            "verdict": "pass" if net in ("netns", "guard") else "not-verifiable",
            "measured": net,
            "limit": None,
            "detail": f"no connection attempt seen (network: {net})",
        }
    )
    out.append(
        {
            "rule": "isolation_files",
            "verdict": "pass",
            "measured": res["isolation"]["files"],
            "limit": None,
            "detail": "no forbidden file opened",
        }
    )
    # Eval protocol v2 (harness/scoring): the harness computed the score and audited the scorer.
    for rule in ("score_coverage", "score_order", "normalization", "causality", "claimed_score"):
        out.append({"rule": rule, "verdict": "pass", "measured": 0, "limit": 0, "detail": f"{rule} audited"})
    return out


def _log_text(
    seed: int,
    res: Mapping[str, Any],
    train_losses: Sequence[tuple[int, float]],
    val_points: Sequence[tuple[int, float, float]],
) -> str:
    lines = [f"seed:{seed}", f"val_tokens:{res['val_tokens']}", format_event(EV_TRAIN_START)]
    step_avg = res["step_avg_ms"]
    # Elapsed training time in the step lines ends at the harness-measured train_time_s.
    ms_per_step = res["train_time_s"] * 1000 / res["steps"]
    for step, loss in train_losses:
        lines.append(
            f"step:{step}/{res['steps']} train_loss:{loss:.4f} "
            f"train_time:{step * ms_per_step:.0f}ms step_avg:{step_avg:.2f}ms"
        )
        lines.append(format_event(EV_STEP, step=step, train_loss=round(loss, 6)))
    for step, vloss, vbpb in val_points:
        lines.append(
            f"step:{step}/{res['steps']} val_loss:{vloss:.4f} val_bpb:{vbpb:.4f} "
            f"train_time:{step * ms_per_step:.0f}ms step_avg:{step_avg:.2f}ms"
        )
        lines.append(format_event(EV_VAL, step=step, val_loss=round(vloss, 6), val_bpb=round(vbpb, 6)))
    lines.append(format_event(EV_TRAIN_END, step=res["steps"]))
    lines.append(f"Serialized model int6+brotli: {res['model_bytes']} bytes")
    lines.append(f"Code size: {res['code_bytes']} bytes")
    lines.append(f"Total submission size int6+brotli: {res['artifact_bytes']} bytes")
    lines.append(format_event(EV_ARTIFACT, bytes=res["artifact_bytes"]))
    lines.append(format_event(EV_EVAL_START))
    lines.append(
        f"final_int6_roundtrip val_loss:{res['val_loss']:.4f} val_bpb:{res['val_bpb']:.4f} "
        f"eval_time:{res['eval_time_s'] * 1000:.0f}ms"
    )
    lines.append(f"final_int6_roundtrip_exact val_loss:{res['val_loss']:.8f} val_bpb:{res['val_bpb']:.8f}")
    lines.append(
        format_event(
            EV_EVAL_END,
            val_loss=res["val_loss"],
            val_bpb=res["val_bpb"],
            val_tokens=res["val_tokens"],
            val_bytes=res["val_bytes"],
        )
    )
    return "\n".join(lines) + "\n"


def make_run_dir(
    path: Path,
    seeds: Sequence[int] = RULES.default_seeds,
    val_losses: Sequence[float] | None = None,
    rehearsal: bool = False,
    *,
    seed_fields: Mapping[int, Mapping[str, Any]] | None = None,
    crashed: Sequence[int] = (),
    code: str = DEFAULT_CODE,
    extra_code_files: Mapping[str, bytes] | None = None,
    limits: Mapping[str, float] | None = None,
    model_bytes: int = 15_850_000,
    steps: int = 4800,
    step_avg_ms: float = 121.7,
    isolation_network: str = "netns",
    fingerprint: Mapping[str, Any] | None = None,
    n_curve_points: int = 20,
    write_run_json: bool = True,
) -> Path:
    """Write a complete RUN_DIR at ``path`` and return it.

    ``val_losses``: one per seed (default: a good ~2.322-nat run). ``seed_fields``: per-seed
    overrides of result.json numbers (e.g. ``{0: {"train_time_s": 612.0}}``) applied before
    verdicts and status are derived. ``crashed``: seeds whose eval never finished (status
    crashed, no scores). ``rehearsal`` marks every seed and run.json as a rehearsal.
    """
    seeds = list(seeds)
    losses = list(val_losses) if val_losses is not None else default_val_losses(len(seeds))
    if len(losses) != len(seeds):
        raise ValueError(f"{len(losses)} val_losses for {len(seeds)} seeds")
    lim: dict[str, float] = {
        "artifact_cap_bytes": RULES.artifact_cap_bytes,
        "train_time_limit_s": RULES.train_time_limit_s,
        "eval_time_limit_s": RULES.eval_time_limit_s,
        "setup_allowance_s": 120.0,
    }
    lim.update(limits or {})
    fp = dict(DEFAULT_FINGERPRINT if fingerprint is None else fingerprint)

    path.mkdir(parents=True, exist_ok=True)
    code_dir = path / CODE_DIR
    code_dir.mkdir(exist_ok=True)
    files: dict[str, bytes] = {RULES.code_filename: code.encode("utf-8"), **(extra_code_files or {})}
    for name, data in files.items():
        (code_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (code_dir / name).write_bytes(data)
    # Only the entry point is counted code here (extra files are data, e.g. a tokenizer).
    code_bytes = len(files[RULES.code_filename])
    code_files = {
        RULES.code_filename: {"bytes": code_bytes, "sha256": sha256_bytes(files[RULES.code_filename])}
    }

    index: dict[str, Any] = {}
    for i, (seed, loss) in enumerate(zip(seeds, losses, strict=True)):
        sd = seed_dir(path, seed)
        (sd / ARTIFACT_DIR).mkdir(parents=True, exist_ok=True)
        # Sparse file of the claimed size: realistic on disk listings, cheap to write.
        with open(sd / ARTIFACT_DIR / "final_model.int6.ptz", "wb") as fh:
            fh.truncate(model_bytes)
        is_crash = seed in crashed
        res: dict[str, Any] = {
            "schema_version": 1,
            "seed": seed,
            "status": "ok",
            "reason": None,
            "rehearsal": rehearsal,
            "protocol": "native",
            "score_source": "witnessed",
            "policy": "strict",
            "nproc": 8,
            "limits": dict(lim),
            "val_loss": round(loss, 8),
            "val_bpb": round(bpb_of(loss), 8),
            "val_tokens": VAL_TOKENS,
            "val_bytes": VAL_BYTES,
            "artifact_bytes": code_bytes + model_bytes,
            "code_bytes": code_bytes,
            "model_bytes": model_bytes,
            "code_files": code_files,
            "train_time_s": round(steps * step_avg_ms / 1000 + 0.6 * i, 3),
            "eval_time_s": round(470.0 + 10 * i, 3),
            "train_phase_wall_s": round(steps * step_avg_ms / 1000 + 0.6 * i + 4.0, 3),
            "eval_phase_wall_s": round(470.0 + 10 * i + 6.0, 3),
            "steps": steps,
            "step_avg_ms": step_avg_ms,
            "verdicts": [],
            "isolation": {"network": isolation_network, "files": "staged", "violations": []},
            "fingerprint": fp,
            "claimed": {},
            "started_at": f"2026-11-22T10:{i:02d}:00Z",
            "finished_at": f"2026-11-22T10:{i:02d}:59Z",
        }
        overrides = (seed_fields or {}).get(seed, {})
        res.update(overrides)
        # Derived numbers follow the overridden ones, as they would in a real run.
        if "artifact_bytes" not in overrides:
            res["artifact_bytes"] = res["code_bytes"] + res["model_bytes"]
        for phase in ("train", "eval"):
            timed = res[f"{phase}_time_s"]
            if f"{phase}_phase_wall_s" not in overrides and timed is not None:
                res[f"{phase}_phase_wall_s"] = round(timed + (4.0 if phase == "train" else 6.0), 3)
        if is_crash:
            res.update(
                status="crashed",
                reason="eval phase exited with code 1 (Traceback in log)",
                val_loss=None,
                val_bpb=None,
                eval_time_s=None,
            )
        res["verdicts"] = _verdicts(res, lim)
        if not is_crash and any(v["verdict"] == "fail" for v in res["verdicts"]):
            failed = next(v for v in res["verdicts"] if v["verdict"] == "fail")
            res.update(status="failed", reason=f"{failed['rule']}: {failed['detail']}")
        write_result(sd / RESULT_FILE, res)

        # Curves: a decaying training loss ending near the final loss, periodic val points.
        n = max(n_curve_points, 2)
        train_pts = [
            (max(1, round(steps * k / (n - 1))), loss + 4.6 * math.exp(-6.0 * k / (n - 1)) + 0.02)
            for k in range(n)
        ]
        val_pts = [
            (s, lv, bpb_of(lv))
            for s, lv in [
                (max(1, round(steps * k / 4)), loss + 1.2 * math.exp(-4.0 * k / 4)) for k in range(1, 5)
            ]
        ]
        events: list[dict[str, Any]] = [{"t": 0.0, "phase": "train", "event": EV_TRAIN_START}]
        for s, lv in train_pts:
            events.append(
                {
                    "t": s * step_avg_ms / 1000,
                    "phase": "train",
                    "event": EV_STEP,
                    "step": s,
                    "train_loss": round(lv, 6),
                }
            )
        for s, lv, bv in val_pts:
            events.append(
                {
                    "t": s * step_avg_ms / 1000,
                    "phase": "train",
                    "event": EV_VAL,
                    "step": s,
                    "val_loss": round(lv, 6),
                    "val_bpb": round(bv, 6),
                }
            )
        events.sort(key=lambda e: e["t"])
        events.append({"t": res["train_time_s"], "phase": "train", "event": EV_TRAIN_END, "step": steps})
        if not is_crash:
            events.append({"t": 0.0, "phase": "eval", "event": EV_EVAL_START})
            events.append(
                {
                    "t": res["eval_time_s"],
                    "phase": "eval",
                    "event": EV_EVAL_END,
                    "val_loss": res["val_loss"],
                    "val_bpb": res["val_bpb"],
                    "val_tokens": VAL_TOKENS,
                    "val_bytes": VAL_BYTES,
                }
            )
        (sd / EVENTS_FILE).write_text("".join(json.dumps(e) + "\n" for e in events), "utf-8")

        if is_crash:
            log = f"seed:{seed}\n{format_event(EV_TRAIN_START)}\nTraceback (most recent call last):\n  ...\n"
        else:
            log = _log_text(seed, res, train_pts, val_pts)
        (path / RULES.seed_log_name(seed)).write_text(log, "utf-8")

        index[str(seed)] = {
            "status": res["status"],
            "reason": res["reason"],
            "result": f"seed{seed}/{RESULT_FILE}",
            "log": RULES.seed_log_name(seed),
            "val_loss": res["val_loss"],
            "val_bpb": res["val_bpb"],
            "artifact_bytes": res["artifact_bytes"],
        }

    if write_run_json:
        statuses = {v["status"] for v in index.values()}
        run = {
            "schema_version": 1,
            "harness_version": __version__,
            "status": "complete" if statuses == {"ok"} else "incomplete",
            "rehearsal": rehearsal,
            "protocol": "native",
            "policy": "strict",
            "nproc": 8,
            "device": "cuda",
            "seeds": seeds,
            "limits": {
                **lim,
                "scaled": any(
                    lim[k] != getattr(RULES, k)
                    for k in ("artifact_cap_bytes", "train_time_limit_s", "eval_time_limit_s")
                ),
            },
            "submission": {
                "source_dir": "/workspace/my_submission",
                "code_dir": CODE_DIR,
                "entry": RULES.code_filename,
                "code_sha256": code_files[RULES.code_filename]["sha256"],
                "code_bytes": code_bytes,
                "code_files": code_files,
            },
            "data": {
                "data_dir": "/data/caseops",
                "tokenizer_path": "/data/tok.model",
                "train_files": 80,
                "val_files": 1,
                "val_bytes_files": 1,
                "lock_file": None,
                "lock_sha256": None,
            },
            "command": [
                "pgolf",
                "run",
                "/workspace/my_submission",
                "--seeds",
                ",".join(map(str, seeds)),
                "--nproc",
                "8",
            ],
            "results": index,
            "fingerprint": fp,
            "started_at": "2026-11-22T10:00:00Z",
            "updated_at": "2026-11-22T11:00:00Z",
        }
        jsonschema.validate(run, load_schema("run"))
        (path / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n", "utf-8")
    return path


def write_tiny_dataset(d: Path, lock: bool = True) -> Path:
    """A tiny dataset in the challenge's shard format: one train shard, one val shard and its sidecar
    (and, with ``lock``, a stand-in fetch lock beside them)."""
    import numpy as np

    from harness.shards import write_shard

    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_shard(d / "fineweb_train_000000.bin", np.concatenate([[1], rng.integers(2, 100, 2000)]))
    write_shard(d / "fineweb_val_000000.bin", np.concatenate([[1], rng.integers(2, 100, 500)]))
    write_shard(d / "fineweb_val_bytes_000000.bin", np.concatenate([[0], np.full(500, 3)]))
    if lock:
        (d / "tiny.lock.json").write_text('{"files": "as pgolf fetch writes them"}\n')
    return d


def pgolf(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """``python -m harness ARGS`` as a user runs it (this checkout's harness first on the path)."""
    repo = Path(__file__).resolve().parents[1]
    path = os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd or repo,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": path, **(env or {})},
    )
