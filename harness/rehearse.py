"""`pgolf rehearse`: the whole pipeline, end to end, on what ships with the package.

Embedded data (harness/data/rehearsal), the reference trainer at a tiny size,
scaled limits, `pgolf run`, then `pgolf package` to a non-record folder marked as
a rehearsal. No network is needed at any point.

Where the reference trainer comes from: ``harness/_template/`` in an installed
wheel (the build copies ``submission_template/`` there, see setup.py), else the
repository's ``submission_template/`` (editable installs and checkouts).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import PgolfError
from harness.rehearsal_data import embedded
from harness.rules import RULES
from harness.runner import Limits, RunConfig, run

TEMPLATE_PACKAGE_DIR = "_template"
REHEARSAL_TRACK = "non_record_16mb"
REHEARSAL_LIMIT_S = 60.0  # scaled train and eval limits
REHEARSAL_SETUP_ALLOWANCE_S = 120.0  # a laptop importing torch, GPTQ export
REHEARSAL_OUT_ENV = "PGOLF_REHEARSAL_OUT"
DEFAULT_OUT = "rehearsal"

# The reference trainer's tiny preset (its docstring), for CPU and single-GPU rehearsals.
TINY_PRESET: dict[str, str] = {
    "COMPILE": "0",
    "NUM_LAYERS": "2",
    "MODEL_DIM": "64",
    "NUM_HEADS": "2",
    "NUM_KV_HEADS": "1",
    "MLP_MULT": "2",
    "TRAIN_SEQ_LEN": "256",
    "TRAIN_BATCH_TOKENS": "2048",
    "MAX_MICRO_BATCH_TOKENS": "2048",
    "LR_WARMUP_STEPS": "5",
    "EMBED_LR": "0.02",
    "MATRIX_LR": "0.08",
    "SCALAR_LR": "0.04",
    # The trainer's preset keeps 10 s for GPTQ + brotli; on a busy 2-core machine that took
    # 12.5 s and pushed training past its limit, so a rehearsal keeps more.
    "EXPORT_RESERVE_SECONDS": "15",
    "GPTQ_CALIB_TOKENS": "8192",
    "VAL_BATCH_TOKENS": "16384",
}


class PackagingUnavailable(PgolfError):
    """`pgolf package` is not part of this installation."""


def template_dir() -> Path:
    """The installed reference submission (wheel), else the checkout's ``submission_template``."""
    here = Path(__file__).resolve().parent
    for d in (here / TEMPLATE_PACKAGE_DIR, here.parent / "submission_template"):
        if (d / RULES.code_filename).is_file():
            return d
    raise PgolfError(
        f"{here / TEMPLATE_PACKAGE_DIR / RULES.code_filename}: reference trainer not found "
        "(nor in the checkout's submission_template/); reinstall pgolf"
    )


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@dataclass
class RehearsalConfig:
    out: Path
    device: str = "cpu"
    seeds: list[int] = field(default_factory=lambda: [42])
    nproc: int = 1
    limits: Limits = field(
        default_factory=lambda: Limits(
            train_time_limit_s=REHEARSAL_LIMIT_S,
            eval_time_limit_s=REHEARSAL_LIMIT_S,
            setup_allowance_s=REHEARSAL_SETUP_ALLOWANCE_S,
        )
    )
    extra_env: dict[str, str] = field(default_factory=dict)
    name: str = "Rehearsal"
    author: str = "pgolf rehearsal"
    github_id: str = "pgolf-rehearsal"
    echo: bool = False
    status_line: bool = True
    keep_going: bool = False
    tensorboard_dir: Path | None = None
    kill_grace_s: float = 5.0
    command: list[str] = field(default_factory=list)


@dataclass
class RehearsalOutcome:
    run_dir: Path
    run_json: dict[str, Any]
    record_dir: Path | None
    unigram_bpb: float
    val_bpb: list[float | None]


def rehearse(cfg: RehearsalConfig) -> RehearsalOutcome:
    if cfg.device not in ("cpu", "cuda"):
        raise PgolfError(f"--device {cfg.device}: expected cpu or cuda")
    if cfg.device == "cuda" and not cuda_available():
        raise PgolfError("--device cuda: torch sees no CUDA device here; use --device cpu")
    if importlib.util.find_spec("harness.package") is None:
        raise PackagingUnavailable("packaging unavailable: harness.package is not installed (issue 4)")
    data = embedded(verify=True)
    out = cfg.out.resolve()
    run_dir, records = out / "run", out / "records"
    if out.exists() and any(out.iterdir()):
        raise PgolfError(f"{out}: not empty; a rehearsal writes a fresh folder (choose another --out)")
    submission = out / "submission"
    shutil.copytree(template_dir(), submission, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {**TINY_PRESET, **cfg.extra_env}
    if cfg.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the trainer takes a GPU whenever it sees one
    run_json = run(
        RunConfig(
            submission_dir=submission,
            out_dir=run_dir,
            data_dir=data.data_dir,
            tokenizer_path=data.tokenizer,
            seeds=list(cfg.seeds),
            nproc=cfg.nproc,
            limits=cfg.limits,
            kill_grace_s=cfg.kill_grace_s,
            extra_env=env,
            rehearsal=True,
            device=cfg.device,
            echo=cfg.echo,
            status_line=cfg.status_line,
            keep_going=cfg.keep_going,
            tensorboard_dir=cfg.tensorboard_dir,
            command=cfg.command,
        )
    )
    bpbs = [run_json["results"][str(s)]["val_bpb"] for s in cfg.seeds]
    record: Path | None = None
    if run_json["status"] == "complete":
        from harness.package import package_run

        record = package_run(
            run_dir,
            name=cfg.name,
            author=cfg.author,
            github_id=cfg.github_id,
            track=REHEARSAL_TRACK,
            out_root=records,
        )
    return RehearsalOutcome(run_dir, run_json, record, data.unigram_bpb, bpbs)


def default_out() -> Path:
    return Path(os.environ.get(REHEARSAL_OUT_ENV) or DEFAULT_OUT)
