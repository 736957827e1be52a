"""`pgolf stats`: statistics of a run or record folder: mean, std, t-test, seeds needed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from harness.errors import PgolfError
from harness.rules import RULES

if TYPE_CHECKING:
    from harness.package import SeedScores

HELP = "statistics of a run or record folder: mean, std, t-test, seeds needed"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("stats", help=HELP, description=HELP)
    p.add_argument(
        "path",
        type=Path,
        metavar="RUN_DIR|RECORD_DIR",
        help="a run directory (seed*/result.json) or a record folder (submission.json)",
    )
    p.add_argument(
        "--baseline-bpb",
        type=float,
        default=None,
        help="val_bpb to beat (default: the record folder's comparison_baseline_bpb)",
    )
    p.add_argument(
        "--baseline-loss",
        type=float,
        default=None,
        help="val_loss (nats) to beat; derived from the bpb baseline when not given",
    )
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")


def _is_record_folder(path: Path) -> bool:
    """A record folder (submission*.json, logs) rather than a RUN_DIR of `pgolf run` (seed*/result.json)."""
    return any(path.glob("submission*.json")) and not any(path.glob("seed*/result.json"))


def _record_folder_scores(path: Path) -> SeedScores:
    """Per-seed scores as `pgolf check` reads them: each seed's log, by the seed it prints."""
    from harness.check import load_record, record_scores
    from harness.package import SeedScores

    rec = load_record(path)
    scores, notes = record_scores(rec)
    loss, bpb = rec.field("val_loss"), rec.field("val_bpb")
    if not scores and isinstance(loss, (int, float)) and isinstance(bpb, (int, float)):
        # No log to read: the folder's one claimed score, said to be a claim.
        single = SeedScores(
            source=f"{path} ({rec.submission_file})",
            seeds=[None],
            val_losses=[float(loss)],
            val_bpbs=[float(bpb)],
        )
        single.notes.append(
            f"no log reports a run: the single val_loss/val_bpb claimed in {rec.submission_file}"
        )
        return single
    if not scores:
        raise PgolfError(
            f"{path}: no seed_results, no log with a final val_loss/val_bpb and no val_loss/val_bpb "
            f"in {rec.submission_file}; nothing to compute"
        )
    out = SeedScores(
        source=f"{path} ({rec.seeds_source or 'seeds unknown'})",
        seeds=[s.seed for s in scores],
        val_losses=[s.val_loss for s in scores],
        val_bpbs=[s.val_bpb for s in scores],
        notes=notes + [f"seed {s.seed}: {s.source}" for s in scores if s.source.startswith("claim")],
    )
    base = rec.field("comparison_baseline_bpb")
    out.baseline_bpb = float(base) if isinstance(base, (int, float)) and not isinstance(base, bool) else None
    st = rec.field("statistics")
    if (
        isinstance(st, dict)
        and st.get("baseline_loss_source") == "given"
        and isinstance(st.get("baseline_loss"), (int, float))
    ):
        out.baseline_loss = float(st["baseline_loss"])
    return out


def main(args: argparse.Namespace) -> int:
    # Imported here: scipy and matplotlib would slow every `pgolf` invocation down by ~1 s.
    from harness.package import load_scores
    from harness.stats import full_statistics

    path = Path(args.path)
    scores = _record_folder_scores(path) if path.is_dir() and _is_record_folder(path) else load_scores(path)
    baseline_bpb = args.baseline_bpb
    baseline_loss = args.baseline_loss
    if baseline_bpb is None and baseline_loss is None:
        baseline_bpb, baseline_loss = scores.baseline_bpb, scores.baseline_loss
    st = full_statistics(
        scores.val_losses, scores.val_bpbs, baseline_bpb=baseline_bpb, baseline_loss=baseline_loss
    )
    if args.json:
        print(
            json.dumps(
                {
                    "source": scores.source,
                    "seeds": scores.seeds,
                    "val_loss": scores.val_losses,
                    "val_bpb": scores.val_bpbs,
                    "notes": scores.notes,
                    **st,
                },
                indent=2,
            )
        )
        return 0
    console = Console(highlight=False, soft_wrap=True)
    table = Table(title=f"per-seed scores ({scores.source})")
    table.add_column("seed", justify="right")
    table.add_column("val_loss (nats)", justify="right")
    table.add_column("val_bpb", justify="right")
    for seed, loss, bpb in zip(scores.seeds, scores.val_losses, scores.val_bpbs, strict=True):
        table.add_row("?" if seed is None else str(seed), f"{loss:.6f}", f"{bpb:.6f}")
    console.print(table)
    for note in scores.notes:
        console.print(f"[yellow]note[/yellow]: {note}")

    def pm(mean: float, std: float | None, se: float | None) -> str:
        if std is None or se is None:
            return f"{mean:.6f} (one seed: no spread)"
        return f"{mean:.6f} ± {std:.6f} (sample std), standard error {se:.6f}"

    console.print(f"n = {st['n']}")
    console.print(f"val_loss {pm(st['val_loss_mean'], st['val_loss_std'], st['val_loss_se'])}")
    console.print(f"val_bpb  {pm(st['val_bpb_mean'], st['val_bpb_std'], st['val_bpb_se'])}")
    if st["baseline_loss"] is None:
        console.print("no baseline (--baseline-bpb / --baseline-loss): record test not run")
        return 0
    delta = st["val_loss_mean"] - st["baseline_loss"]
    console.print(
        f"baseline val_loss {st['baseline_loss']:.6f} nats ({st['baseline_loss_source']}), "
        f"val_bpb {st['baseline_bpb']:.6f}; mean delta {delta:+.6f} nats"
    )
    console.print(f"H0: mean val_loss >= baseline - {RULES.record_margin_nats} nats; {st['test']}")
    if st["p_value"] is None:
        console.print("p-value: needs at least two seeds")
    else:
        t = "" if st["t_statistic"] is None else f"t = {st['t_statistic']:.4f}, "
        verdict = "[green]significant[/green]" if st["significant"] else "[red]not significant[/red]"
        console.print(f"{t}df = {st['df']}, p = {st['p_value']:.4g}: {verdict} at p < {st['alpha']}")
    if st["seeds_needed"] is not None:
        console.print(f"seeds needed at p < {st['alpha']} for this mean and spread: {st['seeds_needed']}")
    elif st["n"] >= 2:
        console.print(
            f"no number of seeds makes this a record: the mean does not beat the baseline "
            f"by {RULES.record_margin_nats} nats"
        )
    return 0
