"""`pgolf rehearse`: the whole pipeline on embedded data, tiny model, scaled limits."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.commands.run import add_run_arguments, limits_from, parse_env, parse_seeds
from harness.rehearse import (
    REHEARSAL_LIMIT_S,
    REHEARSAL_SETUP_ALLOWANCE_S,
    PackagingUnavailable,
    RehearsalConfig,
    default_out,
    rehearse,
)
from harness.runner import Limits

HELP = "the whole pipeline on embedded data, tiny model, scaled limits"
UNAVAILABLE_EXIT = 2


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "rehearse",
        help=HELP,
        description=HELP
        + f". Defaults: {REHEARSAL_LIMIT_S:g} s train / {REHEARSAL_LIMIT_S:g} s eval, one seed, "
        "the reference trainer's tiny preset, offline.",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="fresh folder for the run and the record (default ./rehearsal)"
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--seeds", default="42", help="comma-separated (default %(default)s)")
    p.add_argument("--nproc", type=int, default=1, help="processes (CPU: gloo; cuda: GPUs)")
    p.add_argument("--name", default="Rehearsal", help="record name (default %(default)s)")
    add_run_arguments(p)


def main(args: argparse.Namespace) -> int:
    limits = limits_from(
        args,
        Limits(
            train_time_limit_s=REHEARSAL_LIMIT_S,
            eval_time_limit_s=REHEARSAL_LIMIT_S,
            setup_allowance_s=REHEARSAL_SETUP_ALLOWANCE_S,
        ),
    )
    cfg = RehearsalConfig(
        out=args.out or default_out(),
        device=args.device,
        seeds=parse_seeds(args.seeds),
        nproc=args.nproc,
        limits=limits,
        extra_env=parse_env(args.env),
        name=args.name,
        echo=not args.quiet,
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
    return 0
