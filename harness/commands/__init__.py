"""One module per ``pgolf`` subcommand; each exposes ``add_parser`` and ``main``.

A module that is not built yet keeps :func:`not_built` as its ``main``: the
command is listed in ``--help`` but says so and exits 2.
"""

from __future__ import annotations

import argparse
import sys

NOT_BUILT_EXIT = 2

# Order shown in --help: the order a competitor uses them in.
COMMAND_MODULES = (
    "doctor",
    "fetch",
    "audit",
    "run",
    "launch",
    "gather",
    "rehearse",
    "package",
    "stats",
    "check",
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends "(default: X)" to every option whose default is a value (not None, False or empty).

    Options defaulting to None say in their own help what happens without them.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default is None
            or default is False
            or default == []
            or default is argparse.SUPPRESS
            or not action.option_strings
        ):
            return text
        return text + " (default: %(default)s)"


def not_built(name: str, issue: int) -> int:
    print(f"pgolf {name}: not built yet (tracked in issue {issue})", file=sys.stderr)
    return NOT_BUILT_EXIT


def add_not_built_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=f"{help_text} [not built yet]", description=help_text)
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser
