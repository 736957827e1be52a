"""`pgolf stats`: statistics of a run or record folder: mean, std, t-test, seeds needed."""

from __future__ import annotations

import argparse

from harness.commands import add_not_built_parser, not_built

HELP = "statistics of a run or record folder: mean, std, t-test, seeds needed"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_not_built_parser(subparsers, "stats", HELP)


def main(args: argparse.Namespace) -> int:
    return not_built("stats", 4)
