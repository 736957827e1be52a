"""Shared fixtures. The proxy corpus lives beside the checkout (../shared) or at PGOLF_SHARED_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    return Path(os.environ.get("PGOLF_SHARED_DIR", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    d = _shared_dir()
    if not (d / "data" / "proxy").is_dir():
        pytest.skip(f"shared proxy corpus not found at {d} (set PGOLF_SHARED_DIR)")
    return d


@pytest.fixture(scope="session")
def proxy_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "proxy"


@pytest.fixture(scope="session")
def tokenizers_dir(shared_dir: Path) -> Path:
    return shared_dir / "tokenizers"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
