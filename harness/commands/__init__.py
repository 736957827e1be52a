"""One module per ``pgolf`` subcommand; each exposes ``add_parser`` and ``main``.

A module that is not built yet keeps :func:`not_built` as its ``main``: the
command is listed in ``--help`` but says so and exits 2.
"""

from __future__ import annotations

import argparse
import sys

NOT_BUILT_EXIT = 2

# Order shown in --help: the order a competitor uses them in.
COMMAND_MODULES = ("doctor", "fetch", "audit", "run", "rehearse", "package", "stats", "check")


def not_built(name: str, issue: int) -> int:
    print(f"pgolf {name}: not built yet (tracked in issue {issue})", file=sys.stderr)
    return NOT_BUILT_EXIT


def add_not_built_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=f"{help_text} [not built yet]", description=help_text)
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser
