"""The challenge's own record folders (tests/data/records_sample, MIT, see its README), unpacked for tests."""

from __future__ import annotations

import tarfile
from pathlib import Path

SAMPLE_DIR = Path(__file__).parent / "data" / "records_sample"
TARBALL = SAMPLE_DIR / "records_sample.tar.xz"
LEADERBOARD = SAMPLE_DIR / "official_README.md"


def unpack(dest: Path) -> Path:
    """Unpack the 30 folders under ``dest``; returns ``dest/records`` (track_*/<folder>/...)."""
    with tarfile.open(TARBALL) as tar:
        tar.extractall(dest, filter="data")
    return dest / "records"
