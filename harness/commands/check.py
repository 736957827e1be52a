"""`pgolf check`: verify record folders, rule by rule (never runs code from them)."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.check import (
    CHECK_RULES,
    FAIL,
    LEADERBOARD_RULES,
    NOT_VERIFIABLE,
    PASS,
    CheckReport,
    Evidence,
    check_record,
)
from harness.errors import PgolfError
from harness.leaderboard import Leaderboard, load_leaderboard
from harness.rules import SIGNIFICANCE_POLICIES

HELP = "verify record folders, rule by rule"
WIDTH = 100  # tables fit a 100-column terminal

_STYLE = {PASS: "green", FAIL: "bold red", NOT_VERIFIABLE: "yellow"}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help=HELP,
        description=(
            "Verify record folders (made by pgolf or not): required files, submission.json, scores, "
            "sizes and times against the logs, statistics. Nothing in a folder is executed. One folder: "
            "a verdict per rule; several (records/track_10min_16mb/*): one line per folder and a total. "
            "Exit 0 only when no rule fails (not-verifiable is not a failure)."
        ),
        epilog="rules:\n"
        + "\n".join(f"  {r.name:<18} {r.description}" for r in CHECK_RULES + LEADERBOARD_RULES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "record_dirs",
        type=Path,
        nargs="+",
        metavar="RECORD_DIR",
        help="records/track_<track>/<date>_<name>/ (several: a sweep)",
    )
    parser.add_argument(
        "--leaderboard",
        type=Path,
        default=None,
        metavar="README.md",
        help="the challenge README: check each folder's row and significance against the row below (default: off)",
    )
    parser.add_argument(
        "--significance-policy",
        choices=sorted(SIGNIFICANCE_POLICIES),
        default="readme",
        help="which policy decides the significance verdict (the other is shown too); "
        + "; ".join(f"{p.name}: {p.description}" for p in SIGNIFICANCE_POLICIES.values())
        + " (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the report(s) as JSON on stdout")


def _evidence_text(e: Evidence) -> str:
    if e.file and e.line and e.text:
        return f"{e.where()}: {e.text}"
    if e.file and e.text:
        return f"{e.file} {e.text}: {e.value}"
    if e.text:
        return f"{e.text}: {e.value}"
    return f"{e.file}: {e.value}"


def _summary(report: CheckReport) -> str:
    counts = report.counts()
    return f"{counts[PASS]} pass, {counts[FAIL]} fail, {counts[NOT_VERIFIABLE]} not verifiable"


def render(report: CheckReport, console: Console) -> None:
    table = Table(title=f"pgolf check {report.record_dir.name}", expand=False, width=WIDTH)
    table.add_column("rule", style="bold", no_wrap=True)
    table.add_column("subject", overflow="fold", max_width=16)
    table.add_column("verdict", no_wrap=True)
    table.add_column("detail and evidence", overflow="fold")
    for f in report.findings:
        where = [_evidence_text(e) for e in f.evidence if e.file and e.line]
        detail = Text(f.detail)
        if where:
            detail.append("\n" + "\n".join(where), style="dim")
        table.add_row(f.rule, f.subject, Text(f.verdict, style=_STYLE[f.verdict]), detail)
    console.print(table)
    for note in report.notes:
        console.print(f"[dim]note: {note}[/dim]")
    if report.ok:
        console.print(f"[green]OK[/green]: {_summary(report)}")
    else:
        console.print(f"[bold red]FAILED[/bold red] ({', '.join(report.failed_rules())}): {_summary(report)}")


def render_sweep(reports: list[CheckReport], errors: list[tuple[Path, str]], console: Console) -> None:
    table = Table(title=f"pgolf check: {len(reports) + len(errors)} folders", expand=False, width=WIDTH)
    table.add_column("folder", overflow="ellipsis", no_wrap=True, max_width=38)
    table.add_column("verdict", no_wrap=True)
    table.add_column("pass/fail/n.v.", justify="right", no_wrap=True)
    table.add_column("failing rules", overflow="fold")
    for r in reports:
        c = r.counts()
        verdict = Text("ok" if r.ok else "FAIL", style="green" if r.ok else "bold red")
        table.add_row(
            r.record_dir.name,
            verdict,
            f"{c[PASS]}/{c[FAIL]}/{c[NOT_VERIFIABLE]}",
            ", ".join(r.failed_rules()),
        )
    for path, why in errors:
        table.add_row(path.name, Text("error", style="bold red"), "", why)
    console.print(table)
    per_rule = Counter(rule for r in reports for rule in r.failed_rules())
    ok = sum(r.ok for r in reports)
    console.print(
        f"total: {len(reports) + len(errors)} folders, {ok} ok, {len(reports) - ok} failed"
        + (f", {len(errors)} unreadable" if errors else "")
    )
    if per_rule:
        console.print(
            "folders failing each rule: " + ", ".join(f"{k} {v}" for k, v in per_rule.most_common())
        )


def main(args: argparse.Namespace) -> int:
    leaderboard: Leaderboard | None = load_leaderboard(args.leaderboard) if args.leaderboard else None
    reports: list[CheckReport] = []
    errors: list[tuple[Path, str]] = []
    sweep = len(args.record_dirs) > 1
    for path in args.record_dirs:
        try:
            reports.append(
                check_record(path, leaderboard=leaderboard, significance_policy=args.significance_policy)
            )
        except PgolfError as exc:
            if not sweep:
                raise
            errors.append((path, str(exc)))
    if args.json:
        if sweep:
            doc = {
                "folders": [r.to_dict() for r in reports],
                "errors": [{"record_dir": str(p), "error": e} for p, e in errors],
                "total": {"folders": len(reports) + len(errors), "ok": sum(r.ok for r in reports)},
            }
        else:
            doc = reports[0].to_dict()
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        console = Console(width=WIDTH, highlight=False)
        if sweep:
            render_sweep(reports, errors, console)
        else:
            render(reports[0], console)
    return 0 if not errors and all(r.ok for r in reports) else 1
