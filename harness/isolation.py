"""What crosses from one phase to the next, checked by the harness (DESIGN §4.1).

- The artifact is exactly the regular files under ``ARTIFACT_DIR``: a symlink, device,
  FIFO or socket there fails the seed (:func:`inventory`). Eval gets a read-only copy
  of those files (:func:`copy_artifact`), and the bytes counted are the copy's.
- The data the harness scores against is checked before eval: against the fetch
  lock's sha256 when a lock lists the files, else against the sha256 the harness
  took before the train phase (:func:`data_digests`, :func:`changed_files`).
- Without a sandbox (bwrap unusable here), a phase's ``DATA_PATH`` is a folder of
  symlinks to its own files (:func:`stage_symlinks`): the other split is not listed
  but can be reached, so the runner marks the file verdict ``not-verifiable``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.fingerprint import file_sha256
from harness.shards import DatasetFiles

_KINDS = (
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


@dataclass(frozen=True)
class Inventory:
    """What a phase left in ``ARTIFACT_DIR``: regular files (path, bytes) and anything else."""

    files: tuple[tuple[str, int], ...]
    refused: tuple[tuple[str, str], ...]  # (path, kind): not a regular file or folder

    @property
    def bytes(self) -> int:
        return sum(n for _, n in self.files)

    def reason(self) -> str | None:
        if not self.refused:
            return None
        shown = ", ".join(f"{path} is a {kind}" for path, kind in self.refused[:3])
        more = f" (and {len(self.refused) - 3} more)" if len(self.refused) > 3 else ""
        return f"ARTIFACT_DIR may hold only regular files: {shown}{more}"


def inventory(root: Path) -> Inventory:
    """Walk ``root`` without following links."""
    files: list[tuple[str, int]] = []
    refused: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            mode = os.lstat(p).st_mode
            if stat.S_ISREG(mode):
                files.append((rel, os.lstat(p).st_size))
            elif not stat.S_ISDIR(mode):
                refused.append((rel, next((k for test, k in _KINDS if test(mode)), "special file")))
        # os.walk lists a symlinked folder among dirnames but never enters it (followlinks=False).
        dirnames.sort()
    return Inventory(tuple(sorted(files)), tuple(sorted(refused)))


def copy_artifact(root: Path, inv: Inventory, dest: Path) -> dict[str, str]:
    """Copy the inventoried regular files to a fresh, read-only ``dest``; returns their sha256."""
    release(dest)
    dest.mkdir(parents=True)
    for rel, _ in inv.files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW: a file swapped for a link after the inventory is not followed.
        fd = os.open(root / rel, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as src, target.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    hashes = tree_hashes(dest)
    for p in sorted(dest.rglob("*"), reverse=True):
        p.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH | (stat.S_IXUSR if p.is_dir() else 0))
    dest.chmod(stat.S_IRUSR | stat.S_IXUSR)
    return hashes


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): file_sha256(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def release(dest: Path) -> None:
    """Remove a folder that may hold read-only copies."""
    if not dest.exists() and not dest.is_symlink():
        return
    for p in [dest, *dest.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(stat.S_IRWXU)
    shutil.rmtree(dest)


def stage_symlinks(files: Iterable[Path], dest: Path) -> None:
    """A fresh ``dest`` listing only ``files`` (unsandboxed fallback; never hard links)."""
    release(dest)
    dest.mkdir(parents=True)
    for p in files:
        (dest / p.name).symlink_to(p.resolve())


def dataset_split(files: DatasetFiles) -> tuple[list[Path], list[Path]]:
    """(train files, eval files): what each phase may see."""
    return list(files.train), [*files.val, *files.val_bytes]


@dataclass(frozen=True)
class DataDigests:
    """The sha256 each scored file must still have before eval, and where it came from."""

    expected: dict[str, str]  # resolved path -> sha256
    source: str  # "fetch lock <path>" or "taken before the train phase"


def lock_sha256s(lock: Path) -> dict[str, str]:
    """Resolved path -> sha256 of every file a `pgolf fetch` lock lists (empty if it is not one)."""
    try:
        data = json.loads(lock.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    entries = data.get("files") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return {}
    out: dict[str, str] = {}
    for e in entries:
        if isinstance(e, dict) and isinstance(e.get("path"), str) and isinstance(e.get("sha256"), str):
            out[str((lock.parent / e["path"]).resolve())] = e["sha256"]
    return out


def data_digests(files: Iterable[Path], lock: Path | None) -> DataDigests:
    """The lock's sha256 when it lists every file, else the harness's own, taken now."""
    paths = [str(p.resolve()) for p in files]
    listed = lock_sha256s(lock) if lock is not None else {}
    if paths and all(p in listed for p in paths):
        return DataDigests({p: listed[p] for p in paths}, f"fetch lock {lock}")
    return DataDigests({p: file_sha256(Path(p)) for p in paths}, "taken before the train phase")


def changed_files(digests: DataDigests) -> list[str]:
    """Files whose bytes no longer match (or that vanished)."""
    out = []
    for path, sha in digests.expected.items():
        try:
            now = file_sha256(Path(path))
        except OSError:
            now = None
        if now != sha:
            out.append(path)
    return out
