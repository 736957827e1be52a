"""`pgolf fetch`: download and verify a data variant."""

from __future__ import annotations

import argparse

from harness.commands import add_not_built_parser, not_built

HELP = "download and verify a data variant"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_not_built_parser(subparsers, "fetch", HELP)


def main(args: argparse.Namespace) -> int:
    return not_built("fetch", 8)
