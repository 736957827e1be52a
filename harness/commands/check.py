"""`pgolf check`: verify a record folder, rule by rule (never runs code from it)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.check import CHECK_RULES, FAIL, NOT_VERIFIABLE, PASS, CheckReport, Evidence, check_record

HELP = "verify a record folder, rule by rule"

_STYLE = {PASS: "green", FAIL: "bold red", NOT_VERIFIABLE: "yellow"}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help=HELP,
        description=(
            "Verify a record folder (made by pgolf or not): required files, submission.json, scores, "
            "sizes and times against the logs, statistics. Nothing in the folder is executed. "
            "Exit 0 only when no rule fails (not-verifiable is not a failure)."
        ),
        epilog="rules:\n" + "\n".join(f"  {r.name:<18} {r.description}" for r in CHECK_RULES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "record_dir", type=Path, metavar="RECORD_DIR", help="records/track_<track>/<date>_<name>/"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")


def _evidence_text(e: Evidence) -> str:
    if e.file and e.line and e.text:
        return f"{e.where()}: {e.text}"
    if e.file and e.text:
        return f"{e.file} {e.text}: {e.value}"
    if e.text:
        return f"{e.text}: {e.value}"
    return f"{e.file}: {e.value}"


def render(report: CheckReport, console: Console) -> None:
    table = Table(title=f"pgolf check {report.record_dir}", show_lines=False, expand=False)
    table.add_column("rule", style="bold", no_wrap=True)
    table.add_column("subject", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("evidence", overflow="fold")
    table.add_column("detail", overflow="fold")
    for f in report.findings:
        where = "\n".join(_evidence_text(e) for e in f.evidence if e.file or e.text)
        table.add_row(f.rule, f.subject, Text(f.verdict, style=_STYLE[f.verdict]), where, f.detail)
    console.print(table)
    for note in report.notes:
        console.print(f"[dim]note: {note}[/dim]")
    counts = report.counts()
    summary = f"{counts[PASS]} pass, {counts[FAIL]} fail, {counts[NOT_VERIFIABLE]} not verifiable"
    if report.ok:
        console.print(f"[green]OK[/green]: {summary}")
    else:
        console.print(f"[bold red]FAILED[/bold red] ({', '.join(report.failed_rules())}): {summary}")


def main(args: argparse.Namespace) -> int:
    report = check_record(args.record_dir)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render(report, Console(width=max(Console().width, 160)))
    return 0 if report.ok else 1
