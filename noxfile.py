"""Sessions: tests, lint, typecheck, docker, bench.

Torch is pinned to the CPU build these machines carry (an unpinned torch pulls
a multi-GB CUDA build); the Docker image pins its own CUDA torch.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

CPU_TORCH = "torch==2.13.0"
SKYPILOT = "0.14.1"  # the version tests/test_pods.py parses the task with


def install_project(session: nox.Session, *extras: str) -> None:
    session.install(CPU_TORCH)
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)


def ensure_bwrap(session: nox.Session) -> dict[str, str]:
    """Debian's bubblewrap where root can install it (CI): then the sandbox tests must run, not skip."""
    if shutil.which("bwrap") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        session.run("apt-get", "update", "-q", external=True)
        session.run("apt-get", "install", "-y", "-q", "bubblewrap", external=True)
    return {"PGOLF_REQUIRE_BWRAP": "1"} if shutil.which("bwrap") else {}


def skypilot_python(session: nox.Session) -> dict[str, str]:
    """A venv holding only SkyPilot (as users install its `sky` CLI: pipx/uv tool), made once."""
    venv = Path(session.cache_dir) / f"skypilot-{SKYPILOT}"
    python = venv / "bin" / "python"
    if not python.exists():
        session.run(sys.executable, "-m", "venv", str(venv), external=True)
        session.run(str(python), "-m", "pip", "install", "-q", f"skypilot=={SKYPILOT}", external=True)
    return {"PGOLF_SKY_PYTHON": str(python)}


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (real trainer, real hub client, real processes, real sandbox).

    SkyPilot's own parser checks `pgolf launch`'s task (tests/test_pods.py) from an environment of its
    own: SkyPilot pins click < 8.2, huggingface_hub 2.x needs click >= 8.4.2.
    """
    install_project(session, "test", "launch")
    env = {**ensure_bwrap(session), **skypilot_python(session)}
    session.run("pytest", "-ra", *session.posargs, env=env)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", "harness", "tests", "noxfile.py", "benchmarks")
    session.run("ruff", "format", "--check", "harness", "tests", "noxfile.py", "benchmarks")


@nox.session
def docker(session: nox.Session) -> None:
    """Build docker/Dockerfile and run it (tests/test_docker.py): the fast stand-in (CPU torch on a
    local debootstrap base) and, by hand only, the real image (torch 2.9.1 for CUDA 12.8 from
    PyPI, ~4 GB of wheels): its build time, size, imports and a CPU rehearsal inside it.

    Starts dockerd (installing Debian's docker.io) when no engine answers; needs root then.
    Unlike the `tests` session, where these tests skip with the reason, an engine that
    cannot be had is a failure here. A flash-attn 3 wheel is installed when
    PGOLF_FLASH_ATTN_WHEEL_URL and PGOLF_FLASH_ATTN_WHEEL_SHA256 name one reachable from here.
    """
    install_project(session, "test")
    session.run(
        "pytest",
        "-ra",
        "-s",
        "tests/test_docker.py",
        *session.posargs,
        env={"PGOLF_REQUIRE_DOCKER": "1", "PGOLF_DOCKER_REAL": "1"},
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmarks/*_bench.py (posargs: names to run, e.g. `fetch`); results in benchmarks/results/."""
    install_project(session)
    session.run("python", "benchmarks/run_all.py", *session.posargs)


@nox.session
def typecheck(session: nox.Session) -> None:
    install_project(session, "dev")
    session.run("mypy")
