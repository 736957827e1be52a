"""`pgolf run`: timed, isolated, multi-seed runs of a submission."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from harness.commands import HelpFormatter
from harness.errors import PgolfError
from harness.launch import DEFAULT_KILL_GRACE_S
from harness.protocol import EVAL_PROTOCOLS
from harness.results import RUN_FILE
from harness.rules import RULES
from harness.runner import Limits, RunConfig, run

HELP = "timed, isolated, multi-seed runs of a submission"
DATA_DIR_ENV = "PGOLF_DATA_DIR"


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise PgolfError(f"--seeds {text!r}: expected comma-separated integers, e.g. 42,0,1234") from None


def parse_env(items: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PgolfError(f"--env {item!r}: expected KEY=VALUE")
        env[key] = value
    return env


def add_run_arguments(p: argparse.ArgumentParser, defaults: Limits) -> None:
    """Options shared with `pgolf rehearse` (limits, env, output); ``defaults``: the command's limits."""
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the trainer (repeatable), e.g. --env NUM_LAYERS=2",
    )
    p.add_argument(
        "--train-limit-s",
        type=float,
        default=defaults.train_time_limit_s,
        help="training time limit in seconds; recorded in result.json",
    )
    p.add_argument(
        "--eval-limit-s",
        type=float,
        default=defaults.eval_time_limit_s,
        help="evaluation time limit in seconds",
    )
    p.add_argument(
        "--artifact-cap-bytes", type=int, default=defaults.artifact_cap_bytes, help="artifact cap in bytes"
    )
    p.add_argument(
        "--setup-allowance-s",
        type=float,
        default=defaults.setup_allowance_s,
        help="time a phase may take beyond its limit (imports, compile, export) before the hard kill",
    )
    p.add_argument(
        "--kill-grace-s",
        type=float,
        default=DEFAULT_KILL_GRACE_S,
        help="seconds between TERM and KILL when the harness stops a phase",
    )
    p.add_argument(
        "--export-allowance-s",
        type=float,
        default=defaults.export_allowance_s,
        help="time allowed after the last train_end for export (challenge policy; strict holds the whole phase)",
    )
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="run every seed even after two seeds crashed the same way before training started",
    )
    p.add_argument(
        "--tensorboard",
        type=Path,
        default=None,
        metavar="DIR",
        help="write TensorBoard event files (train loss, lr scale, tokens/s, val) to DIR/<run>/seed<SEED>/; "
        "needs pgolf[tensorboard]",
    )
    shown = p.add_mutually_exclusive_group()
    shown.add_argument(
        "--verbose", action="store_true", help="also show the trainer's output (the seed's log always has it)"
    )
    shown.add_argument("--quiet", action="store_true", help="no live status line: pgolf's own lines only")


def limits_from(args: argparse.Namespace) -> Limits:
    for name in ("train_limit_s", "eval_limit_s", "setup_allowance_s", "export_allowance_s"):
        v = getattr(args, name)
        if v <= 0:
            raise PgolfError(f"--{name.replace('_', '-')} {v}: expected a positive number of seconds")
    if args.artifact_cap_bytes <= 0:
        raise PgolfError(
            f"--artifact-cap-bytes {args.artifact_cap_bytes}: expected a positive number of bytes"
        )
    return Limits(
        train_time_limit_s=args.train_limit_s,
        eval_time_limit_s=args.eval_limit_s,
        artifact_cap_bytes=args.artifact_cap_bytes,
        setup_allowance_s=args.setup_allowance_s,
        export_allowance_s=args.export_allowance_s,
    )


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "run",
        help=HELP,
        description=HELP
        + ". Every shard and the code are checked before the first phase starts; each seed is a train "
        "then an eval phase, timed by the harness; RUN_DIR/seed<SEED>/result.json holds the verdicts.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "submission_dir", type=Path, metavar="SUBMISSION_DIR", help=f"folder holding {RULES.code_filename}"
    )
    p.add_argument("--seeds", default=",".join(map(str, RULES.default_seeds)), help="comma-separated seeds")
    p.add_argument("--nproc", type=int, default=1, help="processes per phase: GPUs, or CPU processes (gloo)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"folder of shards, e.g. DATA/datasets/<dataset> after `pgolf fetch` (default: ${DATA_DIR_ENV})",
    )
    p.add_argument(
        "--tokenizer", type=Path, default=None, help="SentencePiece model (default: the one next to the data)"
    )
    p.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<UTC time>)")
    p.add_argument(
        "--policy",
        choices=("strict", "challenge"),
        default="challenge",
        help="strict: the whole phase wall time counts and any isolation attempt fails the seed",
    )
    p.add_argument(
        "--protocol",
        choices=("native", "legacy"),
        default="native",
        help="native: train and eval phases (PGOLF_PHASE); legacy: one process, scores read from its log",
    )
    p.add_argument(
        "--eval-protocol",
        choices=EVAL_PROTOCOLS,
        default="v2",
        help="native: v2 the harness serves the val set and computes the score (witnessed); "
        "v1 the eval phase reads val shards and writes RESULT_PATH (self-reported)",
    )
    p.add_argument(
        "--val-token-limit",
        type=int,
        default=0,
        metavar="N",
        help="v2: score only the first N targets (quick tests and rehearsals, never a record)",
    )
    p.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run phases without the bubblewrap sandbox (every isolation verdict becomes not-verifiable)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep seeds whose result is ok or failed, run the others (same code)",
    )
    p.add_argument(
        "--legacy-final-pattern",
        default=None,
        metavar="REGEX",
        help="legacy: regex with named groups val_loss and val_bpb for the final score line",
    )
    add_run_arguments(p, Limits())


def main(args: argparse.Namespace) -> int:
    data_dir = args.data_dir or (Path(os.environ[DATA_DIR_ENV]) if os.environ.get(DATA_DIR_ENV) else None)
    if data_dir is None:
        raise PgolfError(f"no data: pass --data-dir or set ${DATA_DIR_ENV}")
    out = args.out or Path("runs") / dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    cfg = RunConfig(
        submission_dir=args.submission_dir,
        out_dir=out,
        data_dir=data_dir,
        seeds=parse_seeds(args.seeds),
        tokenizer_path=args.tokenizer,
        nproc=args.nproc,
        policy=args.policy,
        protocol=args.protocol,
        resume=args.resume,
        limits=limits_from(args),
        kill_grace_s=args.kill_grace_s,
        extra_env=parse_env(args.env),
        echo=args.verbose,
        status_line=not args.quiet,
        keep_going=args.keep_going,
        tensorboard_dir=args.tensorboard,
        command=["pgolf", *sys.argv[1:]],
        legacy_final_pattern=args.legacy_final_pattern,
        sandbox=not args.no_sandbox,
        eval_protocol=args.eval_protocol,
        val_token_limit=args.val_token_limit,
    )
    summary = run(cfg)
    print(f"pgolf run: {summary['status']}: {out / RUN_FILE}")
    return 0 if summary["status"] == "complete" else 1
