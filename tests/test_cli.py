"""The CLI contract: --help, --version, and honest unbuilt commands."""

from __future__ import annotations

import subprocess
import sys

from harness import __version__
from harness.commands import COMMAND_MODULES, NOT_BUILT_EXIT


def pgolf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=120
    )


def test_version_and_help_list_every_command() -> None:
    assert pgolf("--version").stdout.strip() == f"pgolf {__version__}"
    out = pgolf("--help").stdout
    for name in COMMAND_MODULES:
        assert name in out


def test_an_unbuilt_command_says_so_and_exits_2() -> None:
    import importlib

    for name in COMMAND_MODULES:
        module = importlib.import_module(f"harness.commands.{name}")
        if getattr(module.main, "__name__", "") == "main" and "not_built" in module.main.__code__.co_names:
            proc = pgolf(name)
            assert proc.returncode == NOT_BUILT_EXIT
            assert "not built yet" in proc.stderr
