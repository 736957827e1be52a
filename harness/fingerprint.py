"""The environment a run happened in: what a reviewer needs to reproduce or doubt it."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from harness import __version__
from harness.protocol import ENV_IMAGE

FLASH_ATTN_DISTRIBUTIONS = ("flash_attn_3", "flash-attn-3", "flash-attn-4", "flash_attn", "flash-attn")


def first_distribution(*names: str) -> tuple[str | None, str | None]:
    """(name, version) of the first of ``names`` that is installed; (None, None) when none is."""
    for name in names:
        try:
            return name, importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None, None


def gpus() -> dict[str, Any]:
    """GPU model, count and driver from nvidia-smi; empty fields when there is none."""
    info: dict[str, Any] = {"gpu_count": 0, "gpu_model": None, "driver_version": None}
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return info
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return info
    rows = [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]
    if rows:
        info["gpu_count"] = len(rows)
        models = sorted({r[0] for r in rows})
        info["gpu_model"] = models[0] if len(models) == 1 else " + ".join(models)
        info["driver_version"] = rows[0][1] if len(rows[0]) > 1 else None
    return info


def torch_versions() -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"torch_version": None, "cuda_version": None}
    return {"torch_version": str(torch.__version__), "cuda_version": torch.version.cuda}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(*, code_sha256: str, lock_sha256: str | None) -> dict[str, Any]:
    """Everything about this machine and software that could change a result."""
    flash_dist, flash_version = first_distribution(*FLASH_ATTN_DISTRIBUTIONS)
    return {
        **gpus(),
        **torch_versions(),
        "flash_attn_version": flash_version,
        "flash_attn_distribution": flash_dist,  # which pip name that version belongs to
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "harness_version": __version__,
        "image": os.environ.get(ENV_IMAGE),
        "code_sha256": code_sha256,
        "data_lock_sha256": lock_sha256,
    }


def hardware_line(fp: dict[str, Any], nproc: int, device: str) -> str:
    """``8xNVIDIA H100 80GB HBM3`` / ``2 CPU processes``: how many of what ran the trainer."""
    if device == "cuda" and fp.get("gpu_model"):
        return f"{nproc}x{fp['gpu_model']}"
    return f"{nproc} CPU process{'es' if nproc != 1 else ''}"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
