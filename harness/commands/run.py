"""`pgolf run`: timed, isolated, multi-seed runs of a submission."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from harness.errors import PgolfError
from harness.launch import DEFAULT_KILL_GRACE_S
from harness.protocol import EVAL_PROTOCOLS
from harness.results import RUN_FILE
from harness.rules import RULES
from harness.runner import DEFAULT_SETUP_ALLOWANCE_S, Limits, RunConfig, run

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


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared with `pgolf rehearse` (limits, env, output)."""
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
        default=None,
        help=f"training time limit (default: the rules' {RULES.train_time_limit_s:g} s); recorded in result.json",
    )
    p.add_argument(
        "--eval-limit-s",
        type=float,
        default=None,
        help=f"evaluation time limit (default: the rules' {RULES.eval_time_limit_s:g} s)",
    )
    p.add_argument(
        "--artifact-cap-bytes",
        type=int,
        default=None,
        help=f"artifact cap (default: the rules' {RULES.artifact_cap_bytes} bytes)",
    )
    p.add_argument(
        "--setup-allowance-s",
        type=float,
        default=None,
        help=f"time a phase may take beyond its limit before the hard kill (default {DEFAULT_SETUP_ALLOWANCE_S:g} s)",
    )
    p.add_argument(
        "--kill-grace-s",
        type=float,
        default=DEFAULT_KILL_GRACE_S,
        help="seconds between TERM and KILL when the harness stops a phase",
    )
    p.add_argument("--quiet", action="store_true", help="do not echo the trainer's output (the log keeps it)")


def limits_from(args: argparse.Namespace, default: Limits | None = None) -> Limits:
    lim = default or Limits()
    for name in ("train_limit_s", "eval_limit_s", "setup_allowance_s"):
        v = getattr(args, name)
        if v is not None and v <= 0:
            raise PgolfError(f"--{name.replace('_', '-')} {v}: expected a positive number of seconds")
    return Limits(
        train_time_limit_s=args.train_limit_s if args.train_limit_s is not None else lim.train_time_limit_s,
        eval_time_limit_s=args.eval_limit_s if args.eval_limit_s is not None else lim.eval_time_limit_s,
        artifact_cap_bytes=args.artifact_cap_bytes
        if args.artifact_cap_bytes is not None
        else lim.artifact_cap_bytes,
        setup_allowance_s=args.setup_allowance_s
        if args.setup_allowance_s is not None
        else lim.setup_allowance_s,
    )


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("run", help=HELP, description=HELP)
    p.add_argument(
        "submission_dir", type=Path, metavar="SUBMISSION_DIR", help=f"folder holding {RULES.code_filename}"
    )
    p.add_argument(
        "--seeds",
        default=",".join(map(str, RULES.default_seeds)),
        help="comma-separated (default %(default)s)",
    )
    p.add_argument("--nproc", type=int, default=1, help="processes per phase: GPUs, or CPU processes (gloo)")
    p.add_argument("--data-dir", type=Path, default=None, help=f"folder of shards (default: ${DATA_DIR_ENV})")
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
    p.add_argument("--protocol", choices=("native", "legacy"), default="native")
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
    p.add_argument("--resume", action="store_true", help="keep seeds that already have a complete result")
    p.add_argument(
        "--legacy-final-pattern",
        default=None,
        metavar="REGEX",
        help="legacy: regex with named groups val_loss and val_bpb for the final score line",
    )
    add_run_arguments(p)


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
        echo=not args.quiet,
        command=["pgolf", *sys.argv[1:]],
        legacy_final_pattern=args.legacy_final_pattern,
        eval_protocol=args.eval_protocol,
        val_token_limit=args.val_token_limit,
    )
    summary = run(cfg)
    print(f"pgolf run: {summary['status']}: {out / RUN_FILE}")
    return 0 if summary["status"] == "complete" else 1
