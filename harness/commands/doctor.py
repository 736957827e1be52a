"""`pgolf doctor`: preflight: GPUs, drivers, torch, flash-attn, tools, disk, data."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness import doctor
from harness.commands import HelpFormatter
from harness.rules import RULES
from harness.variants import DEFAULT_VARIANT, VARIANTS

HELP = "preflight: GPUs, drivers, torch, flash-attn, tools, disk, data"
STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "doctor",
        help=HELP,
        description=f"{HELP}. Each line is pass, warn or fail; the exit code is 1 when a record run "
        f"({RULES.record_gpu_count}x {RULES.record_gpu_model} {RULES.record_gpu_form_factor}) is "
        "impossible on this machine, 0 otherwise.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where `pgolf fetch` put (or will put) the data (default: $PGOLF_DATA_DIR or ./data)",
    )
    p.add_argument(
        "--variant", default=DEFAULT_VARIANT, help=f"data variant to look for: one of {', '.join(VARIANTS)}"
    )
    p.add_argument(
        "--need-gb",
        type=float,
        default=doctor.DEFAULT_NEED_BYTES / 1e9,
        help="free disk wanted at the data dir before a fetch, in GB",
    )
    p.add_argument("--json", action="store_true", help="print the checks and raw facts as JSON")


def main(args: argparse.Namespace) -> int:
    data_dir = args.data_dir if args.data_dir is not None else doctor.default_data_dir()
    facts = doctor.gather_facts(data_dir, args.variant, int(args.need_gb * 1e9))
    checks = doctor.evaluate(facts)
    possible = doctor.record_possible(checks)
    if args.json:
        print(doctor.report_json(facts, checks))
        return 0 if possible else 1
    console = Console(highlight=False, soft_wrap=True)
    if not facts.gpus:
        console.print("[bold]CPU only[/bold]: no NVIDIA GPU is visible on this machine.")
    width = max(len(c.name) for c in checks)
    for c in checks:
        console.print(f"[{STYLE[c.status]}]{c.status.upper():4}[/] {c.name:<{width}}  {escape(c.detail)}")
    fails = [c.name for c in checks if c.status == "fail"]
    if possible:
        console.print("[green]record run: possible[/green]")
    else:
        console.print(f"[bold red]record run: impossible here[/] (failed: {', '.join(fails)})")
    return 0 if possible else 1
