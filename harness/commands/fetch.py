"""`pgolf fetch`: download and verify a data variant."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.commands import HelpFormatter
from harness.variants import DEFAULT_VARIANT, VARIANTS

HELP = "download and verify a data variant"
DATA_DIR_ENV = "PGOLF_DATA_DIR"
DEFAULT_DATA_DIR = "data"

EPILOG = """\
environment: PGOLF_DATA_DIR (default --data-dir), HF_ENDPOINT, HF_TOKEN (never printed),
HF_HUB_OFFLINE=1 (verify what is present against DATA_DIR/<dataset>.lock.json, no network).
An interrupted fetch resumes where it stopped when run again."""


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "fetch",
        help=HELP,
        description=HELP + ": parallel, resumable, every file checked (size, sha256, shard header).",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    # Not argparse `choices`: an unknown variant gets the same one-line error as other bad input.
    p.add_argument(
        "--variant",
        default=DEFAULT_VARIANT,
        help=f"one of {', '.join(VARIANTS)}",
    )
    p.add_argument(
        "--train-shards",
        type=_count,
        default=None,
        metavar="N",
        help="fetch the first N train shards in their frozen order (default: all); validation is always whole",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"where the data goes (default: ${DATA_DIR_ENV}, else ./{DEFAULT_DATA_DIR})",
    )
    p.add_argument("--repo-id", default=None, help="dataset repo to fetch from (default: the variant's)")
    p.add_argument("--revision", default="main", help="branch, tag or commit")
    p.add_argument("--workers", type=_positive, default=8, help="parallel downloads")
    p.add_argument("--retries", type=_count, default=4, help="retries per request on 5xx/network errors")
    p.add_argument("--quiet", action="store_true", help="no progress display")


def main(args: argparse.Namespace) -> int:
    from harness.fetch import FetchOptions, fetch

    opts = FetchOptions(
        data_dir=args.data_dir or Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR),
        variant=args.variant,
        train_shards=args.train_shards,
        repo_id=args.repo_id,
        revision=args.revision,
        workers=args.workers,
        retries=args.retries,
        progress=not args.quiet,
    )
    result = fetch(opts)
    for warning in result.warnings:
        print(f"pgolf fetch: warning: {warning}", file=sys.stderr)
    if result.offline:
        print(
            f"pgolf fetch: offline: verified {len(result.files)} files against {result.lock_path} "
            f"({result.repo_id}@{result.revision[:12]})"
        )
        return 0
    if result.downloaded_files:
        rate = result.downloaded_bytes / result.elapsed_s if result.elapsed_s > 0 else 0.0
        what = (
            f"{result.downloaded_files} downloaded, {result.downloaded_bytes / 1e6:.1f} MB at "
            f"{rate / 1e6:.1f} MB/s; {result.reused_files} already present; {result.repaired_files} repaired"
        )
    else:
        what = f"all already present; {result.repaired_files} repaired"
    print(
        f"pgolf fetch: {len(result.files)} files verified ({what}) from "
        f"{result.repo_id}@{result.revision[:12]} in {result.elapsed_s:.1f} s; lock: {result.lock_path}"
    )
    return 0
