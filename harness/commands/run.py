"""`pgolf run`: timed, isolated, multi-seed runs of a submission."""

from __future__ import annotations

import argparse

from harness.commands import add_not_built_parser, not_built

HELP = "timed, isolated, multi-seed runs of a submission"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_not_built_parser(subparsers, "run", HELP)


def main(args: argparse.Namespace) -> int:
    return not_built("run", 3)
