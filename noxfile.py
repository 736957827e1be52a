"""Sessions: tests, lint, typecheck, docker, bench.

Torch is pinned to the CPU build these machines carry (an unpinned torch pulls
a multi-GB CUDA build); the Docker image pins its own CUDA torch.
"""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

CPU_TORCH = "torch==2.13.0"


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


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (real trainer, real hub client, real processes, real sandbox)."""
    install_project(session, "test")
    session.run("pytest", "-ra", *session.posargs, env=ensure_bwrap(session))


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", "harness", "tests", "noxfile.py", "benchmarks")
    session.run("ruff", "format", "--check", "harness", "tests", "noxfile.py", "benchmarks")


@nox.session
def docker(session: nox.Session) -> None:
    """Build docker/Dockerfile on a local stand-in base and run pgolf in it (tests/test_docker.py).

    Starts dockerd (installing Debian's docker.io) when no engine answers; needs root then.
    Unlike the `tests` session, where these tests skip with the reason, an engine that
    cannot be had is a failure here.
    """
    install_project(session, "test")
    session.run(
        "pytest", "-ra", "-s", "tests/test_docker.py", *session.posargs, env={"PGOLF_REQUIRE_DOCKER": "1"}
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
