"""`pgolf rehearse`: the whole pipeline on embedded data, tiny model, scaled limits."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from harness.commands import HelpFormatter
from harness.commands.run import add_run_arguments, limits_from, parse_env, parse_seeds
from harness.rehearse import (
    DEFAULT_OUT,
    REHEARSAL_LIMIT_S,
    REHEARSAL_OUT_ENV,
    REHEARSAL_SETUP_ALLOWANCE_S,
    PackagingUnavailable,
    RehearsalConfig,
    default_out,
    rehearse,
    template_dir,
)
from harness.rules import RULES
from harness.runner import Limits
from harness.variants import DEFAULT_VARIANT, VARIANTS

HELP = "the whole pipeline on embedded data, tiny model, scaled limits"
UNAVAILABLE_EXIT = 2


REHEARSAL_LIMITS = Limits(
    train_time_limit_s=REHEARSAL_LIMIT_S,
    eval_time_limit_s=REHEARSAL_LIMIT_S,
    setup_allowance_s=REHEARSAL_SETUP_ALLOWANCE_S,
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "rehearse",
        help=HELP,
        description=HELP
        + ": the reference trainer's tiny preset on data shipped with pgolf (offline), `pgolf run`, then "
        "`pgolf package` to a non-record folder marked as a rehearsal.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"fresh folder for the run and the record (default: ${REHEARSAL_OUT_ENV}, else ./{DEFAULT_OUT})",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the trainer runs")
    p.add_argument("--seeds", default="42", help="comma-separated seeds")
    p.add_argument("--nproc", type=int, default=1, help="processes (cpu: gloo; cuda: GPUs)")
    p.add_argument("--name", default="Rehearsal", help="record name: the folder is <YYYY-MM-DD>_<NAME>")
    add_run_arguments(p, REHEARSAL_LIMITS)


def next_steps() -> list[str]:
    """What a competitor runs next, on the pod: the three commands of a real run."""
    data = f"/data/datasets/{VARIANTS[DEFAULT_VARIANT].dataset}"
    trainer = template_dir()
    with contextlib.suppress(ValueError):  # a checkout: the short, relative name
        trainer = trainer.relative_to(Path.cwd())
    return [
        "pgolf doctor --data-dir /data",
        f"pgolf fetch --variant {DEFAULT_VARIANT} --data-dir /data",
        f"pgolf run {trainer} --data-dir {data} --seeds "
        + ",".join(map(str, RULES.default_seeds))
        + f" --nproc {RULES.record_gpu_count} --out runs/first",
    ]


def main(args: argparse.Namespace) -> int:
    cfg = RehearsalConfig(
        out=args.out or default_out(),
        device=args.device,
        seeds=parse_seeds(args.seeds),
        nproc=args.nproc,
        limits=limits_from(args),
        extra_env=parse_env(args.env),
        name=args.name,
        echo=args.verbose,
        status_line=not args.quiet,
        keep_going=args.keep_going,
        tensorboard_dir=args.tensorboard,
        kill_grace_s=args.kill_grace_s,
        command=["pgolf", *sys.argv[1:]],
    )
    try:
        out = rehearse(cfg)
    except PackagingUnavailable as exc:
        print(f"pgolf rehearse: {exc}", file=sys.stderr)
        return UNAVAILABLE_EXIT
    scores = ", ".join(f"{b:.4f}" if b is not None else "none" for b in out.val_bpb)
    print(f"pgolf rehearse: run {out.run_json['status']}: {out.run_dir}")
    print(f"pgolf rehearse: val_bpb {scores} (unigram baseline of the rehearsal data: {out.unigram_bpb:.4f})")
    if out.record_dir is None:
        print("pgolf rehearse: not packaged (the run did not complete; see run.json)", file=sys.stderr)
        return 1
    print(f"pgolf rehearse: record folder (marked as a rehearsal): {out.record_dir}")
    print(
        f"pgolf rehearse: next, a real run on {RULES.record_gpu_count}x {RULES.record_gpu_model} "
        f"{RULES.record_gpu_form_factor} (in the pgolf image):"
    )
    for cmd in next_steps():
        print(f"  {cmd}")
    return 0
