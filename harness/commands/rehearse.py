"""`pgolf rehearse`: the whole pipeline on embedded data, tiny model, scaled limits."""

from __future__ import annotations

import argparse

from harness.commands import add_not_built_parser, not_built

HELP = "the whole pipeline on embedded data, tiny model, scaled limits"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_not_built_parser(subparsers, "rehearse", HELP)


def main(args: argparse.Namespace) -> int:
    return not_built("rehearse", 3)
