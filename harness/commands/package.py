"""`pgolf package`: build a leaderboard record folder from a run directory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from harness.commands import HelpFormatter
from harness.rules import RULES

HELP = "build a leaderboard record folder from a run directory"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "package",
        help=HELP,
        description=HELP
        + f": {RULES.records_root}/track_<TRACK>/<YYYY-MM-DD>_<NAME>/ with README, submission.json, logs, "
        "code, requirements and curves.png; refuses (writing nothing) a crashed or failed seed, a rehearsal "
        "on a record track, or too few seeds for a record.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory written by `pgolf run`")
    p.add_argument(
        "--name", required=True, help="submission name, used in the folder name <YYYY-MM-DD>_<NAME>"
    )
    p.add_argument("--author", required=True, help="author's name as shown on the leaderboard")
    p.add_argument("--github-id", required=True, help="author's GitHub user name")
    p.add_argument(
        "--track",
        choices=RULES.tracks,
        default=RULES.record_tracks[0],
        help="leaderboard track",
    )
    p.add_argument(
        "--baseline-bpb",
        type=float,
        default=None,
        help="val_bpb of the current best, for the record test and deltas (default: no test)",
    )
    p.add_argument(
        "--baseline-loss",
        type=float,
        default=None,
        help="val_loss (nats) of the current best; derived from --baseline-bpb when not given",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path(RULES.records_root),
        help="records root; the folder goes in track_<TRACK>/",
    )
    p.add_argument(
        "--pack-code",
        action="store_true",
        help="ship train_gpt.py as a self-extracting lzma file (readable copy alongside)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="non-record tracks only: keep failed seeds, leave crashed ones out, replace the folder",
    )


def main(args: argparse.Namespace) -> int:
    # Imported here: matplotlib and scipy would slow every `pgolf` invocation down by ~1 s.
    from harness.package import SUBMISSION_FILE, package_run

    dest = package_run(
        args.run_dir,
        name=args.name,
        author=args.author,
        github_id=args.github_id,
        track=args.track,
        out_root=args.out,
        baseline_bpb=args.baseline_bpb,
        baseline_loss=args.baseline_loss,
        pack_code=args.pack_code,
        force=args.force,
    )
    sub = json.loads((dest / SUBMISSION_FILE).read_text("utf-8"))
    st = sub["statistics"]
    console = Console(highlight=False, soft_wrap=True)
    std = f" ± {st['val_bpb_std']:.5f}" if st["val_bpb_std"] is not None else ""
    console.print(f"[bold]packaged[/bold] {dest}")
    console.print(
        f"  val_bpb {st['val_bpb_mean']:.5f}{std} over {st['n']} seed(s); "
        f"compliance: {sub['compliance']['verdict']}; bytes_total {sub['bytes_total']}"
    )
    if st["p_value"] is not None:
        console.print(
            f"  p = {st['p_value']:.3g} ({'significant' if st['significant'] else 'not significant'} "
            f"at p < {st['alpha']}); record claim: {'yes' if sub['record_claim'] else 'no'}"
        )
    if sub["rehearsal"]:
        console.print("  [yellow]rehearsal[/yellow]: not a record")
    return 0
