"""`pgolf package`: build a leaderboard record folder from a run directory."""

from __future__ import annotations

import argparse

from harness.commands import add_not_built_parser, not_built

HELP = "build a leaderboard record folder from a run directory"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_not_built_parser(subparsers, "package", HELP)


def main(args: argparse.Namespace) -> int:
    return not_built("package", 4)
