"""`pgolf gather`: merge per-pod run directories into one run (harness/gather.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.gather import gather

HELP = "merge run directories made on several pods into one run for `pgolf package`"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("gather", help=HELP, description=HELP)
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="run directories of `pgolf run`")
    p.add_argument("--out", type=Path, required=True, help="the merged run directory (must not exist yet)")


def main(args: argparse.Namespace) -> int:
    merged = gather(args.run_dirs, args.out)
    rows = [
        f"  {g['run_dir']}: seeds {', '.join(map(str, g['seeds']))} ({g['status']})"
        for g in merged["gathered_from"]
    ]
    print("\n".join(rows))
    print(f"pgolf gather: {len(merged['seeds'])} seed(s), status {merged['status']}: {args.out}")
    return 0
