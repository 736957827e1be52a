"""The walls of a phase: a bubblewrap sandbox, described as data (DESIGN §4.1).

A phase's ranks run inside ``bwrap`` with new user, PID, IPC, UTS, network (loopback
only) and mount namespaces. What a phase sees is a :class:`SandboxSpec`, built by the
pure :func:`phase_spec` from the phase's inputs and turned into bwrap's argv by the
pure :func:`bwrap_argv`:

- the system (``/usr``, ``/etc``, ``/opt``, ...) and the Python environment, read-only;
- the submission code at ``/pgolf/code`` (read-only, the working directory);
- its own data at ``/pgolf/data`` (each file bound read-only by itself: the other
  split is not in the view, and no hard link reaches the source);
- ``/pgolf/artifact`` (train: the seed's empty artifact folder, writable; eval: the
  harness's read-only copy), ``/pgolf/out`` (eval: where RESULT_PATH goes);
- a private empty ``/tmp``, ``/dev/shm`` and ``$HOME`` (``/pgolf/home``), gone with the phase;
- the GPU device nodes (``/dev/nvidia*``) when there are any.

The source data folder and the run directory are masked with empty tmpfs mounts
wherever a read-only system or Python path would otherwise show them. When the
phase's first process exits, its PID namespace ends and the kernel kills every
process left in it, whatever it did with ``setsid``, ``fork`` or its environment.

Where bwrap is missing or cannot make namespaces (Docker's default seccomp profile
refuses them), :func:`sandbox_level` says so and the runner goes on unsandboxed,
marking every isolation verdict ``not-verifiable``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

BWRAP_ENV = "PGOLF_BWRAP"  # path of the bwrap binary (else bwrap on PATH)
SANDBOX_ENV = "PGOLF_SANDBOX"  # "0": run phases unsandboxed (the `--no-sandbox` switch sets it)

ROOT = PurePosixPath("/pgolf")
CODE = ROOT / "code"
DATA = ROOT / "data"
ARTIFACT = ROOT / "artifact"
OUT = ROOT / "out"
HOME = ROOT / "home"
TOKENIZER = ROOT / "tokenizer"

# Host folders that make up "the system", bound read-only at the same place.
SYSTEM_DIRS = ("/usr", "/etc", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/sys")
# Docker's default seccomp and AppArmor profiles refuse the namespaces and mounts bwrap
# needs, and its masked /proc paths forbid mounting a new /proc.
DOCKER_FLAGS = "--security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined"


@dataclass(frozen=True)
class Bind:
    """A host path shown at ``dest`` inside the sandbox."""

    src: Path
    dest: PurePosixPath


@dataclass(frozen=True)
class Tmpfs:
    dest: PurePosixPath


PRIVATE = (Tmpfs(PurePosixPath("/tmp")), Tmpfs(PurePosixPath("/dev/shm")), Tmpfs(HOME))


@dataclass(frozen=True)
class SandboxSpec:
    """Everything a phase sees; nothing else from the host is visible."""

    private: tuple[Tmpfs, ...]  # empty and the phase's own: /tmp, /dev/shm, HOME
    system: tuple[PurePosixPath, ...]  # host folders shown read-only at the same place
    masks: tuple[Tmpfs, ...]  # empty mounts over what a system folder would show of the data/run
    ro_binds: tuple[Bind, ...]
    rw_binds: tuple[Bind, ...]
    symlinks: tuple[tuple[str, PurePosixPath], ...]  # (target, link): merged-/usr systems
    dev_nodes: tuple[Path, ...]  # host device nodes passed through (GPUs)
    env: tuple[tuple[str, str], ...]
    cwd: PurePosixPath
    network: bool = False  # False: a new network namespace with only loopback


@dataclass(frozen=True)
class HostFacts:
    """What :func:`phase_spec` needs to know about the host (gathered by :func:`host_facts`)."""

    system_dirs: tuple[Path, ...]  # existing real folders among SYSTEM_DIRS
    system_links: tuple[tuple[str, PurePosixPath], ...]  # (target, link) among SYSTEM_DIRS
    python_dirs: tuple[Path, ...]  # prefixes, sys.path and PYTHONPATH folders
    dev_nodes: tuple[Path, ...]


@dataclass(frozen=True)
class PhaseInputs:
    """The host side of one phase: which files it gets, where they are."""

    code_dir: Path
    data_files: tuple[Path, ...]
    artifact_dir: Path
    artifact_writable: bool
    out_dir: Path | None  # eval: RESULT_PATH's folder (writable)
    tokenizer: Path | None
    hidden: tuple[Path, ...]  # host folders the phase must not see (source data, run dir)
    env: Mapping[str, str]  # the phase's environment, host paths not yet mapped
    extra_binds: tuple[Bind, ...] = ()  # writable, e.g. a folder holding PGOLF_SCORE_SOCKET
    network: bool = False


def _under(path: PurePosixPath, roots: Iterable[PurePosixPath]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def phase_spec(inputs: PhaseInputs, host: HostFacts) -> SandboxSpec:
    """The sandbox of one phase (pure: paths in, spec out)."""
    shown = [PurePosixPath(d) for d in host.system_dirs]
    # Python folders after the system ones, skipping those a system folder already shows.
    for d in sorted(set(host.python_dirs), key=lambda p: len(p.parts)):
        if not _under(PurePosixPath(d), shown):
            shown.append(PurePosixPath(d))
    # Masks: where a shown folder would show the source data or the run directory.
    masks = [Tmpfs(PurePosixPath(h)) for h in sorted(set(inputs.hidden)) if _under(PurePosixPath(h), shown)]
    ro = [Bind(inputs.code_dir, CODE)]
    ro += [Bind(f, DATA / f.name) for f in inputs.data_files]
    if inputs.tokenizer is not None:
        ro.append(Bind(inputs.tokenizer, TOKENIZER / inputs.tokenizer.name))
    rw: list[Bind] = []
    (rw if inputs.artifact_writable else ro).append(Bind(inputs.artifact_dir, ARTIFACT))
    if inputs.out_dir is not None:
        rw.append(Bind(inputs.out_dir, OUT))
    rw += inputs.extra_binds
    env = dict(inputs.env)
    env.update(
        {
            "HOME": str(HOME),
            "TMPDIR": "/tmp",
            "PWD": str(CODE),
            "PYTHONUNBUFFERED": "1",
            # Only loopback exists: tell the collective backends so.
            "GLOO_SOCKET_IFNAME": "lo",
            "NCCL_SOCKET_IFNAME": "lo",
        }
    )
    env = {k: _map_path(v, inputs) for k, v in env.items()}
    return SandboxSpec(
        private=PRIVATE,
        system=tuple(shown),
        masks=tuple(masks),
        ro_binds=tuple(ro),
        rw_binds=tuple(rw),
        symlinks=host.system_links,
        dev_nodes=host.dev_nodes,
        env=tuple(sorted(env.items())),
        cwd=CODE,
        network=inputs.network,
    )


def _map_path(value: str, inputs: PhaseInputs) -> str:
    """A host path in the environment, as the sandbox shows it (other values unchanged)."""
    mapping: list[tuple[Path, PurePosixPath]] = [
        (inputs.code_dir, CODE),
        (inputs.artifact_dir, ARTIFACT),
    ]
    if inputs.out_dir is not None:
        mapping.append((inputs.out_dir, OUT))
    if inputs.tokenizer is not None:
        mapping.append((inputs.tokenizer, TOKENIZER / inputs.tokenizer.name))
    for b in inputs.extra_binds:
        mapping.append((b.src, b.dest))
    for host, inside in mapping:
        h = str(host)
        if value == h or value.startswith(h + "/"):
            return str(inside) + value[len(h) :]
    return value


def bwrap_argv(spec: SandboxSpec, command: Sequence[str], bwrap: str = "bwrap") -> list[str]:
    """bwrap's command line for ``spec`` running ``command`` (pure)."""
    argv = [bwrap, "--unshare-all"]
    if spec.network:
        argv.append("--share-net")
    # No process outlives bwrap; the sandbox cannot reach the harness's terminal.
    argv += ["--die-with-parent", "--new-session", "--proc", "/proc", "--dev", "/dev"]
    # Order matters: later mounts go on top. Private folders first (a Python folder may
    # live under /tmp), then the system, the masks over it, and the phase's own files.
    argv += [a for t in spec.private for a in ("--tmpfs", str(t.dest))]
    argv += [a for target, link in spec.symlinks for a in ("--symlink", target, str(link))]
    argv += [a for node in spec.dev_nodes for a in ("--dev-bind", str(node), str(node))]
    argv += [a for d in spec.system for a in ("--ro-bind", str(d), str(d))]
    argv += [a for t in spec.masks for a in ("--tmpfs", str(t.dest))]
    argv += [a for b in spec.ro_binds for a in ("--ro-bind", str(b.src), str(b.dest))]
    argv += [a for b in spec.rw_binds for a in ("--bind", str(b.src), str(b.dest))]
    argv += ["--remount-ro", "/", "--chdir", str(spec.cwd), "--clearenv"]
    for k, v in spec.env:
        argv += ["--setenv", k, v]
    return [*argv, "--", *command]


# ---------------------------------------------------------------- the host


def host_facts() -> HostFacts:
    dirs: list[Path] = []
    links: list[tuple[str, PurePosixPath]] = []
    for d in SYSTEM_DIRS:
        p = Path(d)
        if p.is_symlink():
            links.append((os.readlink(p), PurePosixPath(d)))
        elif p.is_dir():
            dirs.append(p)
    return HostFacts(
        system_dirs=tuple(dirs),
        system_links=tuple(links),
        python_dirs=tuple(python_dirs()),
        dev_nodes=tuple(sorted(Path("/dev").glob("nvidia*"))),
    )


def python_dirs() -> list[Path]:
    """Folders the trainer's Python needs: prefixes, sys.path and PYTHONPATH."""
    out: set[Path] = set()
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path]
    candidates += os.environ.get("PYTHONPATH", "").split(os.pathsep)
    candidates.append(str(Path(sys.executable).resolve().parent.parent))
    for c in candidates:
        if c and os.path.isabs(c) and os.path.isdir(c):
            out.add(Path(c).resolve())
    return sorted(out)


def find_bwrap() -> str | None:
    """bwrap from ``$PGOLF_BWRAP``, else from PATH."""
    explicit = os.environ.get(BWRAP_ENV)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("bwrap")


@dataclass(frozen=True)
class SandboxLevel:
    """Which walls this machine gives a phase."""

    bwrap: str | None  # the binary, when it works here
    reason: str  # why not, or what is used

    @property
    def available(self) -> bool:
        return self.bwrap is not None

    @property
    def name(self) -> str:
        return "bwrap" if self.available else "none"


@cache
def sandbox_level() -> SandboxLevel:
    """Whether bwrap can build a phase's namespaces here (probed once per process)."""
    if os.environ.get(SANDBOX_ENV) == "0":
        return SandboxLevel(None, "the sandbox is switched off (--no-sandbox)")
    bwrap = find_bwrap()
    if bwrap is None:
        return SandboxLevel(
            None, f"bubblewrap not found (install Debian's `bubblewrap`, or set ${BWRAP_ENV} to its bwrap)"
        )
    host = host_facts()
    spec = SandboxSpec(
        private=PRIVATE,
        system=tuple(PurePosixPath(d) for d in host.system_dirs),
        masks=(),
        ro_binds=(),
        rw_binds=(),
        symlinks=host.system_links,
        dev_nodes=(),
        env=(("PATH", "/usr/bin:/bin"),),
        cwd=PurePosixPath("/"),
    )
    try:
        proc = subprocess.run(bwrap_argv(spec, ["true"], bwrap), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return SandboxLevel(None, f"{bwrap} does not run: {exc}")
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return SandboxLevel(
            None,
            f"bwrap cannot create namespaces here ({err}); in Docker run with {DOCKER_FLAGS}",
        )
    return SandboxLevel(bwrap, f"bubblewrap ({bwrap}): user, PID, IPC, UTS, network and mount namespaces")
