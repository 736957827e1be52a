"""Preflight of the machine for a record run (``pgolf doctor``).

Two halves, so the judgement is testable without the hardware:

- :func:`gather_facts` asks the machine (``nvidia-smi``, torch, flash-attn, tools,
  disk, data) and keeps raw answers in a :class:`Facts`;
- :func:`evaluate` is pure: it turns :class:`Facts` into one :class:`Check` per
  line, each ``pass`` / ``warn`` / ``fail``. A ``fail`` means a record run is
  impossible on this machine as it is (wrong GPU count or model, PCIe cards, no
  CUDA torch, ...); ``warn`` means it will run but something is worse than it
  should be (no flash-attn, small /dev/shm, data not fetched yet).

The ``nvidia-smi`` parsers are pure functions over its text output, so tests feed
them captured outputs of 8xH100 SXM, PCIe and odd machines.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from harness.rules import RULES

Status = Literal["pass", "warn", "fail"]

# `nvidia-smi --query-gpu=<these> --format=csv,noheader,nounits`, in this order.
GPU_QUERY_FIELDS = ("index", "name", "pci.bus_id", "memory.total", "driver_version", "mig.mode.current")
# Below this, NCCL and torch's shared-memory transport fail or crawl; Docker's default is 64 MiB.
MIN_SHM_BYTES = 1 << 30
# What a full fetch of one variant plus run directories may take (fetch itself checks the exact
# size the repo announces; this is the offline estimate doctor can make).
DEFAULT_NEED_BYTES = 20 * 10**9
# The torch build the challenge's reference pods use: other versions run, but step times differ.
REFERENCE_TORCH = "2.9.1"
SMI_TIMEOUT_S = 30


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    bus_id: str
    memory_mib: int | None
    driver_version: str
    mig_mode: str


@dataclass(frozen=True)
class Topology:
    """The GPU-to-GPU part of ``nvidia-smi topo -m``: link kind per ordered pair."""

    gpus: tuple[str, ...]
    links: dict[tuple[int, int], str]

    def pairs(self) -> list[tuple[int, int, str]]:
        n = len(self.gpus)
        return [(i, j, self.links[(i, j)]) for i in range(n) for j in range(i + 1, n) if (i, j) in self.links]


@dataclass
class DataFacts:
    variant: str
    dataset_dir: str
    lock_file: str | None = None
    train_shards: int = 0
    val_shards: int = 0
    sidecars: int = 0
    needs_sidecar: bool = False
    problems: list[str] = field(default_factory=list)
    verified_against_lock: bool = False
    # Differences from the variant's canonical facts (harness/variants.py CANONICAL).
    canonical_mismatches: list[str] = field(default_factory=list)


@dataclass
class Facts:
    python: str
    machine: str
    pgolf_image: str | None = None
    smi_path: str | None = None
    smi_error: str | None = None
    gpus: list[GpuInfo] = field(default_factory=list)
    driver_version: str | None = None
    driver_cuda: str | None = None
    topology: Topology | None = None
    topology_error: str | None = None
    torch_version: str | None = None
    torch_cuda: str | None = None
    torch_cuda_available: bool = False
    torch_device_count: int = 0
    torch_error: str | None = None
    flash_attn_version: str | None = None
    flash_attn_error: str | None = None
    brotli_version: str | None = None
    tools: dict[str, str | None] = field(default_factory=dict)
    sandbox: bool | None = None  # bwrap makes a phase's namespaces here
    sandbox_detail: str = ""
    shm_bytes: int | None = None
    data_dir: str = ""
    free_bytes: int | None = None
    need_bytes: int = DEFAULT_NEED_BYTES
    data: DataFacts | None = None


# ---------------------------------------------------------------- nvidia-smi parsers (pure)


def _int_or_none(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None


def parse_gpu_query(text: str) -> list[GpuInfo]:
    """Rows of ``nvidia-smi --query-gpu=GPU_QUERY_FIELDS --format=csv,noheader,nounits``."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(GPU_QUERY_FIELDS):
            raise ValueError(
                f"nvidia-smi row {line!r}: expected {len(GPU_QUERY_FIELDS)} comma-separated fields"
            )
        index, name, bus_id, memory, driver, mig = cells
        gpus.append(GpuInfo(int(index), name, bus_id, _int_or_none(memory), driver, mig))
    return gpus


def parse_smi_versions(text: str) -> tuple[str | None, str | None]:
    """(driver version, highest CUDA version the driver supports) from ``nvidia-smi`` or ``nvidia-smi -q``."""
    driver = re.search(r"Driver Version\s*:\s*([0-9][0-9.]*)", text)
    cuda = re.search(r"CUDA Version\s*:\s*([0-9][0-9.]*)", text)
    return (driver.group(1) if driver else None, cuda.group(1) if cuda else None)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_topology(text: str) -> Topology:
    """The GPU matrix of ``nvidia-smi topo -m`` (tab-separated; legend and NIC rows ignored)."""
    lines = [_ANSI.sub("", line) for line in text.splitlines()]
    header_at = next((k for k, line in enumerate(lines) if re.match(r"^\s+GPU0\b", line)), None)
    if header_at is None:
        raise ValueError("nvidia-smi topo -m: no header row starting with GPU0")
    header = [c.strip() for c in lines[header_at].split("\t")]
    columns = {name: k for k, name in enumerate(header) if re.fullmatch(r"GPU\d+", name)}
    gpus = tuple(sorted(columns, key=lambda g: int(g[3:])))
    links: dict[tuple[int, int], str] = {}
    for line in lines[header_at + 1 :]:
        cells = [c.strip() for c in line.split("\t")]
        row = cells[0]
        if not re.fullmatch(r"GPU\d+", row):
            if not row:
                break  # the blank line before the legend ends the matrix
            continue  # NIC rows
        i = gpus.index(row)
        for j, col in enumerate(gpus):
            k = columns[col]
            if k < len(cells) and i != j:
                links[(i, j)] = cells[k]
    return Topology(gpus, links)


def form_factor(name: str) -> str:
    """'SXM', 'PCIe', 'NVL' or 'unknown' from the marketing name nvidia-smi prints.

    H100 SXM5 boards report "NVIDIA H100 80GB HBM3"; the PCIe card "NVIDIA H100 PCIe";
    the NVL card "NVIDIA H100 NVL".
    """
    if "PCIe" in name or "PCIE" in name:
        return "PCIe"
    if re.search(r"\bNVL\b", name):
        return "NVL"
    if "SXM" in name or "HBM3" in name:
        return "SXM"
    return "unknown"


# ---------------------------------------------------------------- judgement (pure)


def _is_nvlink(kind: str) -> bool:
    return re.fullmatch(r"NV\d+", kind) is not None


def _version_tuple(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    parts = re.findall(r"\d+", text)
    return tuple(int(p) for p in parts[:2]) if parts else None


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def evaluate(f: Facts) -> list[Check]:
    checks: list[Check] = []
    add = checks.append
    want_n, want_model = RULES.record_gpu_count, RULES.record_gpu_model

    image = f"image {f.pgolf_image}" if f.pgolf_image else "not in the pgolf image (PGOLF_IMAGE unset)"
    add(Check("python", "pass", f"Python {f.python} on {f.machine}; {image}"))

    # GPUs
    if not f.gpus:
        why = f.smi_error or "nvidia-smi not found"
        add(
            Check(
                "gpu",
                "fail",
                f"CPU only: no NVIDIA GPU visible ({why}). A record run needs {want_n}x {want_model} "
                f"({RULES.record_gpu_form_factor}); `pgolf rehearse` runs here on the CPU",
            )
        )
    else:
        names = sorted({g.name for g in f.gpus})
        count_detail = f"{len(f.gpus)}x {', '.join(names)}"
        if len(f.gpus) < want_n:
            add(Check("gpu count", "fail", f"{count_detail}: a record run needs {want_n}"))
        elif len(f.gpus) > want_n:
            add(
                Check(
                    "gpu count",
                    "warn",
                    f"{count_detail}: a record run uses exactly {want_n} (--nproc {want_n})",
                )
            )
        else:
            add(Check("gpu count", "pass", count_detail))
        wrong = [g for g in f.gpus if want_model not in g.name]
        kinds = sorted({form_factor(g.name) for g in f.gpus})
        if any(k != RULES.record_gpu_form_factor for k in kinds):
            add(
                Check(
                    "gpu model",
                    "fail",
                    f"form factor {', '.join(kinds)} ({', '.join(names)}): the record hardware is "
                    f"{want_model} {RULES.record_gpu_form_factor}",
                )
            )
        elif wrong:
            add(Check("gpu model", "fail", f"{', '.join(names)}: the record hardware is {want_model}"))
        else:
            add(Check("gpu model", "pass", f"{want_model}, {RULES.record_gpu_form_factor}"))
        mig = sorted({g.index for g in f.gpus if g.mig_mode.lower() == "enabled"})
        if mig:
            add(
                Check(
                    "mig",
                    "fail",
                    f"MIG mode enabled on GPU {', '.join(map(str, mig))}: disable it for a record run",
                )
            )

    # Interconnect
    if len(f.gpus) >= 2:
        if f.topology is None:
            add(
                Check(
                    "nvlink", "warn", f"topology unknown ({f.topology_error or 'nvidia-smi topo -m failed'})"
                )
            )
        else:
            pairs = f.topology.pairs()
            nv = [p for p in pairs if _is_nvlink(p[2])]
            if pairs and len(nv) == len(pairs):
                kinds = sorted({p[2] for p in nv})
                add(Check("nvlink", "pass", f"all {len(pairs)} GPU pairs over NVLink ({', '.join(kinds)})"))
            elif not nv:
                seen = sorted({p[2] for p in pairs})
                add(
                    Check(
                        "nvlink",
                        "fail",
                        f"no NVLink between any GPUs (links: {', '.join(seen) or 'none'}): PCIe-only, "
                        f"not the {RULES.record_gpu_form_factor} record hardware",
                    )
                )
            else:
                slow = [
                    f"{f.topology.gpus[i]}-{f.topology.gpus[j]} {k}" for i, j, k in pairs if not _is_nvlink(k)
                ]
                add(Check("nvlink", "warn", f"{len(slow)} GPU pairs without NVLink: {', '.join(slow[:6])}"))

    # Driver vs torch's CUDA
    if f.gpus:
        driver_cuda = _version_tuple(f.driver_cuda)
        torch_cuda = _version_tuple(f.torch_cuda)
        detail = f"driver {f.driver_version or '?'} (CUDA {f.driver_cuda or '?'}), torch built for CUDA {f.torch_cuda}"
        if driver_cuda is None or torch_cuda is None:
            add(Check("driver", "warn", detail))
        elif driver_cuda[0] < torch_cuda[0]:
            add(Check("driver", "fail", f"{detail}: the driver is too old for this torch"))
        elif driver_cuda < torch_cuda:
            add(Check("driver", "warn", f"{detail}: relies on CUDA minor-version compatibility"))
        else:
            add(Check("driver", "pass", detail))

    # torch
    if f.torch_version is None:
        add(Check("torch", "fail", f"torch not importable ({f.torch_error or 'not installed'})"))
    else:
        ref = (
            ""
            if f.torch_version.startswith(REFERENCE_TORCH)
            else f"; the reference pods use {REFERENCE_TORCH}"
        )
        if not f.gpus:
            cuda = f"CUDA {f.torch_cuda}" if f.torch_cuda else "CPU build"
            add(Check("torch", "pass", f"torch {f.torch_version} ({cuda}){ref}"))
        elif not f.torch_cuda:
            add(Check("torch", "fail", f"torch {f.torch_version} is a CPU build on a GPU machine"))
        elif not f.torch_cuda_available or f.torch_device_count != len(f.gpus):
            hint = f.torch_error or "CUDA not available to torch"
            add(
                Check(
                    "torch",
                    "fail",
                    f"torch {f.torch_version} sees {f.torch_device_count} of {len(f.gpus)} GPUs ({hint}); "
                    "on NVSwitch machines nvidia-fabricmanager must be running (CUDA error 802 otherwise)",
                )
            )
        else:
            status: Status = "pass" if not ref else "warn"
            add(
                Check(
                    "torch",
                    status,
                    f"torch {f.torch_version}, CUDA {f.torch_cuda}, {f.torch_device_count} devices{ref}",
                )
            )

    # flash-attn: optional for correctness, worth a lot of step time on H100.
    if f.flash_attn_version:
        add(Check("flash-attn", "pass", f"{f.flash_attn_version} imports"))
    else:
        where = "" if f.gpus else " (expected on a CPU machine)"
        add(
            Check(
                "flash-attn",
                "warn",
                f"neither flash_attn_3 nor flash-attn 4 importable{where}: {f.flash_attn_error or 'not installed'}; "
                "attention: PyTorch SDPA (the trainer's fallback)",
            )
        )

    # Compressors and isolation tools
    if f.brotli_version:
        add(Check("brotli", "pass", f"brotli {f.brotli_version}"))
    else:
        add(Check("brotli", "fail", "the Python brotli module is missing: artifacts cannot be compressed"))
    for tool, why in (("lrzip", "artifacts compressed with lrzip"), ("zstd", "zstd-compressed artifacts")):
        path = f.tools.get(tool)
        if path:
            add(Check(tool, "pass", path))
        else:
            add(Check(tool, "warn", f"not found: {why} cannot be built or checked here"))
    if f.sandbox:
        add(Check("isolation", "pass", f"every phase in a sandbox: {f.sandbox_detail}"))
    elif f.sandbox is False:
        add(
            Check(
                "isolation",
                "warn",
                f"no sandbox: {f.sandbox_detail}; runs go on unsandboxed and every isolation verdict is "
                "not-verifiable",
            )
        )
    else:
        add(Check("isolation", "warn", "sandbox support not probed"))

    if f.shm_bytes is not None:
        if f.shm_bytes < MIN_SHM_BYTES:
            add(
                Check(
                    "shm",
                    "warn" if not f.gpus else "fail",
                    f"/dev/shm is {_human_bytes(f.shm_bytes)}: NCCL needs more; run the container with --ipc=host",
                )
            )
        else:
            add(Check("shm", "pass", f"/dev/shm {_human_bytes(f.shm_bytes)}"))

    # Disk and data
    data = f.data
    have_data = (
        data is not None and data.lock_file is not None and not data.problems and data.train_shards > 0
    )
    if f.free_bytes is None:
        add(Check("disk", "warn", f"{f.data_dir}: cannot read free space"))
    else:
        need = 0 if have_data else f.need_bytes
        detail = f"{_human_bytes(f.free_bytes)} free at {f.data_dir}"
        if f.free_bytes < need:
            add(Check("disk", "warn", f"{detail}; a full fetch needs about {_human_bytes(need)}"))
        else:
            add(Check("disk", "pass", detail))
    if data is not None:
        counts = f"{data.train_shards} train, {data.val_shards} val"
        if data.needs_sidecar:
            counts += f", {data.sidecars} byte sidecars"
        if data.problems:
            add(Check("data", "fail", f"{data.dataset_dir}: {'; '.join(data.problems[:3])}"))
        elif data.lock_file is None:
            add(
                Check(
                    "data",
                    "warn",
                    f"variant {data.variant} not fetched into {f.data_dir} (no lock file): run `pgolf fetch`",
                )
            )
        else:
            how = (
                "sizes match the fetch lock file, headers valid"
                if data.verified_against_lock
                else "headers valid"
            )
            add(Check("data", "pass", f"{data.variant}: {counts} shards ({how})"))
        if data.canonical_mismatches:
            add(Check("data facts", "warn", f"{data.variant}: {'; '.join(data.canonical_mismatches)}"))
    return checks


def record_possible(checks: Sequence[Check]) -> bool:
    return not any(c.status == "fail" for c in checks)


def report_dict(facts: Facts, checks: Sequence[Check]) -> dict[str, Any]:
    return {
        "record_possible": record_possible(checks),
        "cpu_only": not facts.gpus,
        "checks": [asdict(c) for c in checks],
        "facts": asdict(facts),
    }


def report_json(facts: Facts, checks: Sequence[Check]) -> str:
    def default(obj: object) -> object:
        return str(obj)

    d = report_dict(facts, checks)
    if d["facts"]["topology"] is not None:  # tuple keys are not JSON
        topo = d["facts"]["topology"]
        topo["links"] = {f"{topo['gpus'][i]}-{topo['gpus'][j]}": k for (i, j), k in topo["links"].items()}
    return json.dumps(d, indent=2, default=default)


# ---------------------------------------------------------------- asking the machine


def _run(cmd: list[str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SMI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return 124, f"{' '.join(cmd)}: no answer in {SMI_TIMEOUT_S} s"
    except OSError as exc:
        return 127, f"{cmd[0]}: {exc.strerror}"
    return proc.returncode, proc.stdout if proc.returncode == 0 else (proc.stderr or proc.stdout).strip()


def _gather_gpus(f: Facts) -> None:
    smi = shutil.which("nvidia-smi")
    f.smi_path = smi
    if smi is None:
        f.smi_error = "nvidia-smi not found"
        return
    rc, out = _run([smi, f"--query-gpu={','.join(GPU_QUERY_FIELDS)}", "--format=csv,noheader,nounits"])
    if rc != 0:
        f.smi_error = f"nvidia-smi failed: {out.splitlines()[0] if out else rc}"
        return
    try:
        f.gpus = parse_gpu_query(out)
    except ValueError as exc:
        f.smi_error = str(exc)
        return
    rc, out = _run([smi])
    if rc == 0:
        f.driver_version, f.driver_cuda = parse_smi_versions(out)
    if not f.driver_version and f.gpus:
        f.driver_version = f.gpus[0].driver_version
    if len(f.gpus) >= 2:
        rc, out = _run([smi, "topo", "-m"])
        if rc != 0:
            f.topology_error = out.splitlines()[0] if out else f"exit {rc}"
        else:
            try:
                f.topology = parse_topology(out)
            except ValueError as exc:
                f.topology_error = str(exc)


def _gather_python_packages(f: Facts) -> None:
    try:
        import torch

        f.torch_version = str(torch.__version__)
        f.torch_cuda = torch.version.cuda
        f.torch_cuda_available = bool(torch.cuda.is_available())
        f.torch_device_count = int(torch.cuda.device_count()) if f.torch_cuda_available else 0
    except Exception as exc:  # any import-time failure is a finding, not a crash
        f.torch_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    f.flash_attn_version, f.flash_attn_error = _flash_attn_found()
    try:
        import brotli

        f.brotli_version = getattr(brotli, "__version__", None) or metadata.version("brotli")
    except Exception:
        f.brotli_version = None


def _gather_data(data_dir: Path, variant_name: str) -> DataFacts:
    from harness.shards import ShardError, list_dataset, read_header, sidecar_name
    from harness.variants import check_canonical, get_variant

    variant = get_variant(variant_name)
    dataset_dir = data_dir / "datasets" / variant.dataset
    d = DataFacts(variant=variant.name, dataset_dir=str(dataset_dir), needs_sidecar=variant.sidecar)
    lock_path = data_dir / f"{variant.dataset}.lock.json"
    if lock_path.is_file():
        d.lock_file = str(lock_path)
    if not dataset_dir.is_dir():
        return d
    files = list_dataset(dataset_dir)
    d.train_shards, d.val_shards, d.sidecars = len(files.train), len(files.val), len(files.val_bytes)
    # Header and size of every shard: seconds even for 16 GB. The sha256 of every file was
    # checked by `pgolf fetch` when it wrote the lock file; `pgolf fetch` offline re-checks it.
    for p in (*files.train, *files.val, *files.val_bytes):
        try:
            read_header(p)
        except ShardError as exc:
            d.problems.append(str(exc).replace(str(dataset_dir) + "/", ""))
    if not files.val:
        d.problems.append("no validation shards")
    d.canonical_mismatches = check_canonical(variant.name, dataset_dir)
    if variant.sidecar:
        names = {p.name for p in files.val_bytes}
        missing = [sidecar_name(p.name) for p in files.val if sidecar_name(p.name) not in names]
        if missing:
            d.problems.append(f"byte sidecar missing: {', '.join(missing[:3])}")
    if d.lock_file is not None:
        try:
            lock = json.loads(lock_path.read_text("utf-8"))
            entries = lock["files"]
            for e in entries:
                local = data_dir / e["path"]
                if not local.is_file():
                    d.problems.append(f"{e['path']}: listed in {lock_path.name} but missing")
                elif local.stat().st_size != int(e["size"]):
                    d.problems.append(
                        f"{e['path']}: {local.stat().st_size} bytes, lock file says {e['size']}"
                    )
            d.verified_against_lock = True
        except (OSError, ValueError, KeyError, TypeError) as exc:
            d.problems.append(f"{lock_path.name}: unreadable lock file ({type(exc).__name__})")
    return d


def _free_bytes(path: Path) -> int | None:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def _flash_attn_found() -> tuple[str | None, str | None]:
    """(what imports, None) or (None, why not): flash-attn 3 (`flash_attn_interface`), else
    flash-attn 4's CuTe kernels (`flash_attn.cute`), in the trainer's order of preference."""
    errors = []
    for module, dist, label in (
        ("flash_attn_interface", "flash_attn_3", "flash_attn_3"),
        ("flash_attn.cute", "flash-attn-4", "flash-attn 4 (flash_attn.cute)"),
    ):
        try:
            importlib.import_module(module)
        except Exception as exc:  # any import-time failure is a finding, not a crash
            errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0])
            continue
        try:
            return f"{label} {metadata.version(dist)}", None
        except metadata.PackageNotFoundError:
            return f"{label} (unknown version)", None
    return None, "; ".join(errors)


def gather_facts(data_dir: Path, variant: str = "caseops", need_bytes: int = DEFAULT_NEED_BYTES) -> Facts:
    f = Facts(
        python=platform.python_version(),
        machine=f"{platform.system()} {platform.machine()}",
        pgolf_image=os.environ.get("PGOLF_IMAGE") or None,
        data_dir=str(data_dir),
        need_bytes=need_bytes,
    )
    _gather_gpus(f)
    _gather_python_packages(f)
    f.tools = {tool: shutil.which(tool) for tool in ("lrzip", "zstd")}
    from harness.sandbox import find_bwrap, sandbox_level

    f.tools["bwrap"] = find_bwrap()
    level = sandbox_level()
    f.sandbox, f.sandbox_detail = level.available, level.reason
    try:
        f.shm_bytes = shutil.disk_usage("/dev/shm").total
    except OSError:
        f.shm_bytes = None
    f.free_bytes = _free_bytes(data_dir)
    f.data = _gather_data(data_dir, variant)
    return f


def default_data_dir() -> Path:
    return Path(os.environ.get("PGOLF_DATA_DIR") or "data")
