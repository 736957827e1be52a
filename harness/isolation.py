"""What each phase may see (DESIGN §4), the strongest way this machine allows.

- Files: each phase gets a staged ``DATA_PATH`` holding only its own files (train:
  train shards; eval: val shards and sidecars), made of hard links (same file
  system: the original location does not show) or, failing that, symlinks. The
  files of the other split are also listed for the in-process guard, which refuses
  and records any open of them by their real path.
- Artifact: eval gets a read-only copy of what train left in ``ARTIFACT_DIR``; its
  hashes are compared after eval.
- Network (eval): a new network namespace with only loopback (``unshare``) where
  the kernel allows unprivileged user namespaces ("netns"); otherwise the guard
  refuses Python-level connections ("guard"). The guard runs in both cases, so a
  connection attempt is reported with its address either way.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from harness.fingerprint import file_sha256
from harness.shards import DatasetFiles

GUARD_DIR = Path(__file__).resolve().parent / "guard"
NETNS_ENV = "PGOLF_NETNS"  # "0" disables the network namespace (e.g. to test the guard)


@cache
def netns_available() -> bool:
    """Whether ``unshare`` can give a process a network namespace with a working loopback."""
    if os.environ.get(NETNS_ENV) == "0" or shutil.which("unshare") is None:
        return False
    try:
        proc = subprocess.run(
            [
                "unshare",
                "--user",
                "--map-root-user",
                "--net",
                sys.executable,
                "-m",
                "harness.netexec",
                "--probe",
            ],
            capture_output=True,
            timeout=30,
            env={**os.environ, "PYTHONPATH": _pythonpath_with(None)},
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def netns_prefix() -> list[str]:
    return ["unshare", "--user", "--map-root-user", "--net", sys.executable, "-m", "harness.netexec", "--"]


def _pythonpath_with(first: Path | None) -> str:
    # The harness must stay importable (python -m harness.netexec) from any cwd.
    parts = [str(first)] if first is not None else []
    parts.append(str(Path(__file__).resolve().parents[1]))
    if os.environ.get("PYTHONPATH"):
        parts.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(parts)


def _link(src: Path, dst: Path) -> str:
    try:
        os.link(src, dst)
        return "hardlink"
    except OSError:
        dst.symlink_to(src.resolve())
        return "symlink"


def stage_files(files: Iterable[Path], dest: Path) -> str:
    """A fresh ``dest`` holding only ``files`` (by name); returns how they were staged."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    kinds = {_link(p, dest / p.name) for p in files}
    return "symlink" if "symlink" in kinds else "hardlink"


@dataclass(frozen=True)
class PhaseIsolation:
    env: dict[str, str]
    prefix: list[str]  # command prefix (the network namespace), or empty
    network: str  # netns | guard | none
    files: str  # staged | none
    guard_log: Path


def phase_isolation(
    *,
    phase: str,
    stage_dir: Path,
    deny: Iterable[Path],
    cut_network: bool,
    guard_all: bool = False,
) -> PhaseIsolation:
    """Environment and command prefix that isolate one phase; the guard logs to ``stage_dir``."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    deny_file = stage_dir / f"{phase}.deny"
    real = sorted({os.path.realpath(p) for p in deny})
    deny_file.write_text("".join(r + "\n" for r in real), "utf-8")
    guard_log = stage_dir / f"{phase}.guard.jsonl"
    guard_log.unlink(missing_ok=True)
    env = {
        "PYTHONPATH": _pythonpath_with(GUARD_DIR),
        "PGOLF_GUARD": "1",
        "PGOLF_GUARD_LOG": str(guard_log),
        "PGOLF_GUARD_DENY": str(deny_file),
        "PGOLF_GUARD_NET": "1" if cut_network else "0",
    }
    if guard_all:
        env["PGOLF_GUARD_ALL"] = "1"
    if only_loopback():
        # e.g. `docker run --network none`: the host name resolves to no local address.
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    prefix: list[str] = []
    network = "none"
    if cut_network:
        if netns_available():
            prefix = netns_prefix()
            network = "netns"
            # Only loopback exists in the namespace: tell the collective backends so.
            env.setdefault("GLOO_SOCKET_IFNAME", "lo")
            env.setdefault("NCCL_SOCKET_IFNAME", "lo")
        else:
            network = "guard"
    return PhaseIsolation(env=env, prefix=prefix, network=network, files="staged", guard_log=guard_log)


def only_loopback() -> bool:
    """Whether this machine's only network interface is loopback."""
    try:
        return set(os.listdir("/sys/class/net")) == {"lo"}
    except OSError:
        return False


def read_guard_log(path: Path) -> list[dict[str, str]]:
    """Refused attempts the guard recorded, de-duplicated, in order."""
    seen: set[tuple[str, str]] = set()
    out: list[dict[str, str]] = []
    if not path.exists():
        return out
    for line in path.read_text("utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        key = (str(rec.get("kind")), str(rec.get("what")))
        if key not in seen:
            seen.add(key)
            out.append({"kind": key[0], "what": key[1], "rank": str(rec.get("rank", "?"))})
    return out


def tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def readonly_copy(src: Path, dest: Path) -> None:
    """Copy ``src`` to a fresh ``dest`` and make every file and folder in it read-only."""
    release(dest)
    shutil.copytree(src, dest)
    for p in sorted(dest.rglob("*"), reverse=True):
        p.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH | (stat.S_IXUSR if p.is_dir() else 0))
    dest.chmod(stat.S_IRUSR | stat.S_IXUSR)


def release(dest: Path) -> None:
    """Remove a read-only copy made by :func:`readonly_copy`."""
    if not dest.exists():
        return
    for p in [dest, *dest.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(stat.S_IRWXU)
    shutil.rmtree(dest)


def dataset_split(files: DatasetFiles) -> tuple[list[Path], list[Path]]:
    """(train files, eval files): what each phase may see."""
    return list(files.train), [*files.val, *files.val_bytes]
