"""`pgolf audit DATA_DIR`: does the training data hold validation text?"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.rules import AUDIT_RULES
from harness.variants import DEFAULT_VARIANT

HELP = "data provenance: prove the training data holds no validation text"
CONTAMINATED_EXIT = 1


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {value}")
    return value


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = AUDIT_RULES
    p = subparsers.add_parser(
        "audit",
        help=HELP,
        description=f"{HELP}. Hashes every {r.ngram}-token n-gram of each validation document and looks "
        "for them in the train shards; a document is found when "
        f"{r.doc_found_coverage * 100:.0f}% of its n-grams are. Exit 0: clean; {CONTAMINATED_EXIT}: "
        "contaminated (or bad input).",
    )
    p.add_argument(
        "data_dir",
        type=Path,
        metavar="DATA_DIR",
        help="a folder of shards, or the --data-dir of `pgolf fetch` (then --variant picks the dataset)",
    )
    p.add_argument(
        "--variant", default=DEFAULT_VARIANT, help=f"with a fetch folder (default {DEFAULT_VARIANT})"
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--sampled",
        action="store_true",
        help=f"hash a sample of train positions, sized to find {r.design_contamination * 100:.1f}%% of the val "
        f"documents copied with probability {r.target_detection * 100:.1f}%% (without it: every position)",
    )
    mode.add_argument(
        "--sample-fraction", type=_fraction, default=None, metavar="F", help="hash this fraction of positions"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress display")


def main(args: argparse.Namespace) -> int:
    from harness.audit import audit, resolve_dataset_dir

    fraction: float | None = 1.0
    if args.sampled:
        fraction = None
    elif args.sample_fraction is not None:
        fraction = args.sample_fraction
    report = audit(
        resolve_dataset_dir(args.data_dir, args.variant),
        fraction=fraction,
        seed=args.seed,
        workers=args.workers,
        progress=not args.quiet and not args.json,
    )
    code = CONTAMINATED_EXIT if report.verdict == "contaminated" else 0
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return code
    console = Console(highlight=False, soft_wrap=True)
    table = Table(title=f"pgolf audit {escape(str(args.data_dir))}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    d = report.detection
    rows = [
        ("validation documents (judged)", f"{report.val_docs:,} ({report.judged_docs:,})"),
        ("validation tokens", f"{report.val_tokens:,}"),
        ("train shards / tokens", f"{report.train_shards:,} / {report.train_tokens:,}"),
        (
            "mode",
            "full (every position)"
            if report.mode == "full"
            else f"sampled, fraction {report.sample_fraction:.4g}, seed {report.seed}",
        ),
        ("n-gram (tokens)", str(report.ngram)),
        ("documents found", f"{report.found_docs:,} ({report.found_fraction:.3%} of judged)"),
        ("largest coverage of any document", f"{report.max_coverage:.1%}"),
        (
            f"P(detect {d.contamination:.1%} copied)",
            f"{d.probability:.4%} (worst case: the {d.copied_docs:,} document(s) with fewest seeds)",
        ),
        ("positions hashed", f"{report.positions_hashed:,}"),
        ("time", f"{report.elapsed_s:.1f} s on {report.workers} process(es)"),
    ]
    for what, value in rows:
        table.add_row(what, value)
    console.print(table)
    if report.found:
        hits = Table(title="validation documents found in the train data (first ones)")
        for col in ("val doc", "val offset", "n-grams", "coverage", "train shard", "offset"):
            hits.add_column(col, justify="left" if col == "train shard" else "right")
        for h in report.found[: AUDIT_RULES.first_found_reported]:
            hits.add_row(
                str(h.doc),
                f"{h.val_offset:,}",
                f"{h.ngrams:,}",
                f"{h.coverage:.1%}",
                h.train_shard,
                f"{h.train_offset:,}",
            )
        console.print(hits)
        console.print(
            f"[bold red]contaminated[/]: {report.found_docs:,} validation document(s) appear in the train data"
        )
    else:
        console.print("[green]clean[/]: no validation document appears in the train data")
    return code
