"""`pgolf check`: verify a record folder, rule by rule."""

from __future__ import annotations

import argparse

from harness.commands import add_not_built_parser, not_built

HELP = "verify a record folder, rule by rule"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_not_built_parser(subparsers, "check", HELP)


def main(args: argparse.Namespace) -> int:
    return not_built("check", 4)
