"""`pgolf doctor`: preflight: GPUs, drivers, torch, flash-attn, tools, disk, data."""

from __future__ import annotations

import argparse

from harness.commands import add_not_built_parser, not_built

HELP = "preflight: GPUs, drivers, torch, flash-attn, tools, disk, data"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_not_built_parser(subparsers, "doctor", HELP)


def main(args: argparse.Namespace) -> int:
    return not_built("doctor", 5)
