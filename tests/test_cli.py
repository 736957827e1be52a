"""The CLI contract: --help, --version, honest unbuilt commands, and a README that says what --help says."""

from __future__ import annotations

import functools
import importlib
import re
from pathlib import Path

import pytest
from fixtures_run import pgolf as run_pgolf

from harness import __version__
from harness.clidoc import command_reference, readme_block
from harness.commands import COMMAND_MODULES, NOT_BUILT_EXIT, not_built
from harness.variants import DEFAULT_VARIANT, VARIANTS

pgolf = functools.partial(run_pgolf, timeout=120)


def test_version_and_help_list_every_command() -> None:
    assert pgolf("--version").stdout.strip() == f"pgolf {__version__}"
    out = pgolf("--help").stdout
    for name in COMMAND_MODULES:
        assert name in out


def test_an_unbuilt_command_says_so_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert not_built("frobnicate", 99) == NOT_BUILT_EXIT
    assert capsys.readouterr().err.strip() == "pgolf frobnicate: not built yet (tracked in issue 99)"


def test_every_listed_command_is_built_and_has_help() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"harness.commands.{name}")
        assert "not_built" not in module.main.__code__.co_names, f"pgolf {name} is still a placeholder"
        proc = pgolf(name, "--help")
        assert proc.returncode == 0 and f"pgolf {name}" in proc.stdout, proc.stderr


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_reference() -> str:
    block = readme_block(README.read_text("utf-8"))
    assert block is not None, f"{README}: no command reference markers"
    return block


def test_readme_command_reference_is_what_the_parsers_say() -> None:
    assert readme_reference() == command_reference(), (
        "README.md's command reference is out of date: run `python -m harness.clidoc --write README.md`"
    )


def help_sections(name: str) -> dict[str, str]:
    """``pgolf NAME --help``, as printed: each option string -> its help text (wrapped lines joined)."""
    out = pgolf(name, "--help").stdout
    options: dict[str, str] = {}
    current = None
    for line in out.splitlines():
        m = re.match(r"^  (-[-\w]+|[A-Z_|]+)(?:[ ,]|$)", line)
        if m and m.group(1) != "-h":
            current = m.group(1)
            options[current] = line
        elif current and line.startswith("    "):
            options[current] += " " + line.strip()
        else:
            current = None
    return options


def test_every_flag_of_every_command_is_in_the_readme_with_its_default() -> None:
    reference = readme_reference()
    for name in COMMAND_MODULES:
        section = reference.split(f"### `pgolf {name}`", 1)[1].split("### `pgolf ", 1)[0]
        options = help_sections(name)
        assert options, f"pgolf {name} --help lists no options"
        for flag, text in options.items():
            cell = "| `" + flag.replace("|", "\\|")  # Markdown cells escape the pipe
            row = next((r for r in section.splitlines() if r.startswith(cell)), None)
            assert row is not None, f"pgolf {name} {flag}: not in README's command reference"
            shown = re.search(r"\(default: ([^)]*)\)\s*$", " ".join(text.split()))
            has_default = row.split(" | ")[1].strip() != ""  # empty: no argparse default, words only
            if shown and has_default and not shown.group(1).startswith(("$", "the ", "runs/", "all", "no ")):
                assert f"| `{shown.group(1)}` |" in row, (
                    f"pgolf {name} {flag}: default {shown.group(1)} vs {row}"
                )


def test_rehearse_help_shows_the_rehearsals_own_limits() -> None:
    options = help_sections("rehearse")
    assert "(default: 60.0)" in options["--train-limit-s"] and "(default: 60.0)" in options["--eval-limit-s"]
    assert "(default: 120.0)" in options["--setup-allowance-s"]
    assert "(default: 600.0)" in help_sections("run")["--train-limit-s"]


def test_readme_lists_every_fetch_variant() -> None:
    text = README.read_text("utf-8")
    listed = re.search(r"^Variants: (.*?) \(all but", text, flags=re.MULTILINE | re.DOTALL)
    assert listed is not None
    names = re.findall(r"`([\w]+)`", listed.group(1))
    assert names == list(VARIANTS) and f"`{DEFAULT_VARIANT}` (default)" in listed.group(1)
