"""`pgolf doctor`: the judgement of a machine for a record run.

nvidia-smi outputs below are written by hand from its documented formats (the CSV of
``--query-gpu ... --format=csv,noheader,nounits``, the banner of plain ``nvidia-smi``, the
header of ``nvidia-smi -q``, the tab-separated matrix of ``nvidia-smi topo -m``), for an
8x H100 SXM node, a PCIe node and a 7-GPU node. No GPU exists here, so the end-to-end
tests put a stand-in ``nvidia-smi`` on PATH that prints them.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import doctor
from harness.doctor import Facts, evaluate, form_factor, parse_gpu_query, parse_smi_versions, parse_topology
from harness.rules import RULES
from harness.shards import write_shard
from harness.variants import VARIANTS, get_variant

REPO = Path(__file__).resolve().parents[1]

SXM_BUSES = ["18", "2A", "3A", "5D", "9A", "AB", "BA", "DB"]
QUERY_8X_SXM = "".join(
    f"{i}, NVIDIA H100 80GB HBM3, 00000000:{bus}:00.0, 81559, 570.124.06, Disabled\n"
    for i, bus in enumerate(SXM_BUSES)
)
QUERY_8X_PCIE = "".join(
    f"{i}, NVIDIA H100 PCIe, 00000000:{bus}:00.0, 81559, 570.124.06, Disabled\n"
    for i, bus in enumerate(SXM_BUSES)
)
QUERY_7X_SXM = "".join(QUERY_8X_SXM.splitlines(keepends=True)[:7])

BANNER = """\
Sun Nov 22 12:00:00 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 570.124.06             Driver Version: 570.124.06     CUDA Version: 12.8     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |
|                                         |                        |               MIG M. |
|=========================================+========================+======================|
|   0  NVIDIA H100 80GB HBM3          On  |   00000000:18:00.0 Off |                    0 |
| N/A   31C    P0             71W /  700W |       1MiB /  81559MiB |      0%      Default |
|                                         |                        |             Disabled |
+-----------------------------------------+------------------------+----------------------+
"""

Q_HEADER = """\

==============NVSMI LOG==============

Timestamp                                 : Sun Nov 22 12:00:00 2026
Driver Version                            : 550.54.15
CUDA Version                              : 12.4

Attached GPUs                             : 8
GPU 00000000:18:00.0
    Product Name                          : NVIDIA H100 80GB HBM3
"""


def topo(links: list[list[str]], nics: int = 2) -> str:
    """A ``nvidia-smi topo -m`` matrix: GPU rows/columns, NIC columns, affinity columns, legend."""
    n = len(links)
    head = [f"GPU{i}" for i in range(n)] + [f"NIC{k}" for k in range(nics)]
    head += ["CPU Affinity", "NUMA Affinity", "GPU NUMA ID"]
    rows = ["\t" + "\t".join(head)]
    for i in range(n):
        cells = [" X " if i == j else links[i][j] for j in range(n)]
        cells += ["PXB" if k == i // 4 else "SYS" for k in range(nics)]
        cells += ["0-51,104-155" if i < n // 2 else "52-103,156-207", "0" if i < n // 2 else "1", "N/A"]
        rows.append(f"GPU{i}\t" + "\t".join(cells))
    for k in range(nics):
        rows.append(f"NIC{k}\t" + "\t".join(["PXB"] * n + [" X " if j == k else "SYS" for j in range(nics)]))
    legend = """
Legend:

  X    = Self
  SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)
  NODE = Connection traversing PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node
  PHB  = Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)
  PXB  = Connection traversing multiple PCIe bridges (without traversing the PCIe Host Bridge)
  PIX  = Connection traversing at most a single PCIe bridge
  NV#  = Connection traversing a bonded set of # NVLinks

NIC Legend:

  NIC0: mlx5_0
  NIC1: mlx5_1
"""
    return "\n".join(rows) + "\n" + legend


def all_links(n: int, kind: str) -> list[list[str]]:
    return [[kind] * n for _ in range(n)]


def pcie_links(n: int) -> list[list[str]]:
    return [["NODE" if (i < n // 2) == (j < n // 2) else "SYS" for j in range(n)] for i in range(n)]


TOPO_8X_SXM = topo(all_links(8, "NV18"))
TOPO_8X_PCIE = topo(pcie_links(8))


def gpu_facts(query: str = QUERY_8X_SXM, topology: str = TOPO_8X_SXM, **over: object) -> Facts:
    """Facts of a healthy GPU node, from captured nvidia-smi text through the real parsers."""
    gpus = parse_gpu_query(query)
    driver, cuda = parse_smi_versions(BANNER)
    f = Facts(
        python="3.12.3",
        machine="Linux x86_64",
        pgolf_image="ghcr.io/example/pgolf:0.1.0",
        smi_path="/usr/bin/nvidia-smi",
        gpus=gpus,
        driver_version=driver,
        driver_cuda=cuda,
        topology=parse_topology(topology),
        torch_version="2.9.1+cu128",
        torch_cuda="12.8",
        torch_cuda_available=True,
        torch_device_count=len(gpus),
        flash_attn_version="3.0.0",
        brotli_version="1.2.0",
        tools={"lrzip": "/usr/bin/lrzip", "zstd": "/usr/bin/zstd", "bwrap": "/usr/bin/bwrap"},
        sandbox=True,
        sandbox_detail="bubblewrap (/usr/bin/bwrap): user, PID, IPC, UTS, network and mount namespaces",
        shm_bytes=500 * 10**9,
        data_dir="/data",
        free_bytes=500 * 10**9,
    )
    for k, v in over.items():
        setattr(f, k, v)
    return f


def by_name(f: Facts) -> dict[str, doctor.Check]:
    return {c.name: c for c in evaluate(f)}


# ---------------------------------------------------------------- parsers


def test_gpu_query_rows() -> None:
    gpus = parse_gpu_query(QUERY_8X_SXM)
    assert [g.index for g in gpus] == list(range(8))
    assert gpus[3].name == "NVIDIA H100 80GB HBM3"
    assert gpus[3].bus_id == "00000000:5D:00.0"
    assert gpus[3].memory_mib == 81559
    assert gpus[3].driver_version == "570.124.06"
    assert gpus[3].mig_mode == "Disabled"


def test_gpu_query_with_not_supported_fields() -> None:
    # Consumer cards answer "[N/A]" for MIG; memory may be "[N/A]" under some drivers.
    (g,) = parse_gpu_query("0, NVIDIA GeForce RTX 4090, 00000000:01:00.0, [N/A], 550.54.15, [N/A]\n")
    assert g.memory_mib is None and g.mig_mode == "[N/A]"


def test_gpu_query_rejects_a_row_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="expected 6 comma-separated fields"):
        parse_gpu_query("0, NVIDIA H100 80GB HBM3\n")


def test_driver_and_cuda_from_banner_and_from_q() -> None:
    assert parse_smi_versions(BANNER) == ("570.124.06", "12.8")
    assert parse_smi_versions(Q_HEADER) == ("550.54.15", "12.4")
    assert parse_smi_versions("garbage") == (None, None)


def test_topology_matrix_of_an_hgx_node() -> None:
    t = parse_topology(TOPO_8X_SXM)
    assert t.gpus == tuple(f"GPU{i}" for i in range(8))
    pairs = t.pairs()
    assert len(pairs) == 28
    assert {k for _, _, k in pairs} == {"NV18"}


def test_topology_matrix_of_a_pcie_node() -> None:
    t = parse_topology(TOPO_8X_PCIE)
    assert t.links[(0, 1)] == "NODE"
    assert t.links[(0, 7)] == "SYS"
    assert t.links[(7, 0)] == "SYS"


def test_topology_without_a_matrix() -> None:
    with pytest.raises(ValueError, match="GPU0"):
        parse_topology("Failed to initialize NVML: Driver/library version mismatch\n")


def test_form_factor_from_name() -> None:
    assert form_factor("NVIDIA H100 80GB HBM3") == "SXM"
    assert form_factor("NVIDIA H100 PCIe") == "PCIe"
    assert form_factor("NVIDIA H100 NVL") == "NVL"
    assert form_factor("NVIDIA A100-SXM4-80GB") == "SXM"
    assert form_factor("NVIDIA GeForce RTX 4090") == "unknown"


# ---------------------------------------------------------------- judgement


def test_8x_h100_sxm_with_everything_passes() -> None:
    checks = evaluate(gpu_facts())
    assert [c for c in checks if c.status != "pass" and c.name != "data"] == []
    assert doctor.record_possible(checks)
    named = {c.name: c for c in checks}
    assert named["gpu count"].detail == "8x NVIDIA H100 80GB HBM3"
    assert "all 28 GPU pairs over NVLink (NV18)" in named["nvlink"].detail


def test_seven_gpus_make_a_record_run_impossible() -> None:
    f = gpu_facts(QUERY_7X_SXM, topo(all_links(7, "NV18")))
    checks = by_name(f)
    assert checks["gpu count"].status == "fail"
    assert f"a record run needs {RULES.record_gpu_count}" in checks["gpu count"].detail
    assert not doctor.record_possible(evaluate(f))


def test_pcie_h100s_make_a_record_run_impossible() -> None:
    f = gpu_facts(QUERY_8X_PCIE, TOPO_8X_PCIE)
    checks = by_name(f)
    assert checks["gpu count"].status == "pass"
    assert checks["gpu model"].status == "fail" and "PCIe" in checks["gpu model"].detail
    assert checks["nvlink"].status == "fail" and "no NVLink" in checks["nvlink"].detail


def test_partial_nvlink_is_a_warning_naming_the_pairs() -> None:
    links = all_links(8, "NV18")
    links[2][6] = links[6][2] = "SYS"
    checks = by_name(gpu_facts(topology=topo(links)))
    assert checks["nvlink"].status == "warn"
    assert "GPU2-GPU6 SYS" in checks["nvlink"].detail


def test_other_gpu_models_fail() -> None:
    query = "".join(
        f"{i}, NVIDIA A100-SXM4-80GB, 00000000:{i:02X}:00.0, 81920, 550.54.15, Disabled\n" for i in range(8)
    )
    checks = by_name(gpu_facts(query))
    assert checks["gpu model"].status == "fail"
    assert RULES.record_gpu_model in checks["gpu model"].detail


def test_mig_enabled_fails() -> None:
    query = QUERY_8X_SXM.replace(
        "0, NVIDIA H100 80GB HBM3, 00000000:18:00.0, 81559, 570.124.06, Disabled",
        "0, NVIDIA H100 80GB HBM3, 00000000:18:00.0, 81559, 570.124.06, Enabled",
    )
    assert by_name(gpu_facts(query))["mig"].status == "fail"


def test_torch_that_cannot_see_the_gpus_fails_and_names_the_fabric_manager() -> None:
    checks = by_name(gpu_facts(torch_cuda_available=False, torch_device_count=0))
    assert checks["torch"].status == "fail"
    assert "0 of 8 GPUs" in checks["torch"].detail and "fabricmanager" in checks["torch"].detail


def test_cpu_torch_on_a_gpu_node_fails() -> None:
    checks = by_name(gpu_facts(torch_version="2.13.0+cpu", torch_cuda=None, torch_cuda_available=False))
    assert checks["torch"].status == "fail" and "CPU build" in checks["torch"].detail


def test_driver_older_than_torch_cuda() -> None:
    assert by_name(gpu_facts(driver_cuda="11.8"))["driver"].status == "fail"
    assert by_name(gpu_facts(driver_cuda="12.4"))["driver"].status == "warn"
    assert by_name(gpu_facts(driver_cuda="12.8"))["driver"].status == "pass"


def test_missing_flash_attn_and_lrzip_warn_only() -> None:
    f = gpu_facts(flash_attn_version=None, flash_attn_error="ModuleNotFoundError: flash_attn_interface")
    f.tools["lrzip"] = None
    checks = evaluate(f)
    named = {c.name: c for c in checks}
    assert named["flash-attn"].status == "warn" and named["lrzip"].status == "warn"
    assert doctor.record_possible(checks)


def test_docker_default_shm_fails_on_a_gpu_node() -> None:
    checks = by_name(gpu_facts(shm_bytes=64 << 20))
    assert checks["shm"].status == "fail" and "--ipc=host" in checks["shm"].detail


def test_no_network_namespace_warns_with_the_fallback() -> None:
    checks = by_name(gpu_facts(sandbox=False, sandbox_detail="bwrap cannot create namespaces here"))
    assert checks["isolation"].status == "warn" and "not-verifiable" in checks["isolation"].detail


def test_cpu_only_machine_is_reported_as_such() -> None:
    f = Facts(
        python="3.11.7", machine="Linux x86_64", smi_error="nvidia-smi not found", torch_version="2.13.0+cpu"
    )
    checks = evaluate(f)
    gpu = next(c for c in checks if c.name == "gpu")
    assert gpu.status == "fail" and gpu.detail.startswith("CPU only")
    assert "rehearse" in gpu.detail
    assert not any(c.name in ("nvlink", "driver", "gpu count") for c in checks)
    assert next(c for c in checks if c.name == "torch").status == "pass"


# ---------------------------------------------------------------- data and disk, on real files


def make_dataset(data_dir: Path, with_lock: bool = True) -> Path:
    v = get_variant("caseops")
    d = data_dir / "datasets" / v.dataset
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = {
        "fineweb_train_000000.bin": rng.integers(0, v.vocab_size, 1000),
        "fineweb_train_000001.bin": rng.integers(0, v.vocab_size, 1000),
        "fineweb_val_000000.bin": rng.integers(0, v.vocab_size, 500),
        "fineweb_val_bytes_000000.bin": rng.integers(0, 8, 500),
    }
    for name, tokens in files.items():
        write_shard(d / name, tokens)
    if with_lock:
        entries = [
            {"path": f"datasets/{v.dataset}/{n}", "size": (d / n).stat().st_size, "sha256": "0" * 64}
            for n in files
        ]
        (data_dir / f"{v.dataset}.lock.json").write_text(json.dumps({"files": entries}))
    return d


def test_fetched_data_passes(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    data = doctor.gather_facts(tmp_path).data
    assert data is not None
    f = gpu_facts(data=data, data_dir=str(tmp_path))
    check = by_name(f)["data"]
    assert check.status == "pass"
    assert "2 train, 1 val, 1 byte sidecars" in check.detail and "lock file" in check.detail


def test_truncated_shard_fails(tmp_path: Path) -> None:
    d = make_dataset(tmp_path)
    with (d / "fineweb_train_000001.bin").open("r+b") as fh:
        fh.truncate(1500)
    check = by_name(gpu_facts(data=doctor.gather_facts(tmp_path).data))["data"]
    assert check.status == "fail"
    assert "fineweb_train_000001.bin" in check.detail


def test_missing_sidecar_fails(tmp_path: Path) -> None:
    d = make_dataset(tmp_path, with_lock=False)
    (d / "fineweb_val_bytes_000000.bin").unlink()
    check = by_name(gpu_facts(data=doctor.gather_facts(tmp_path).data))["data"]
    assert check.status == "fail" and "fineweb_val_bytes_000000.bin" in check.detail


def test_unfetched_data_warns_and_disk_is_compared_with_a_full_fetch(tmp_path: Path) -> None:
    facts = doctor.gather_facts(tmp_path / "nothing-here", need_bytes=10**18)
    checks = by_name(gpu_facts(data=facts.data, free_bytes=facts.free_bytes, need_bytes=facts.need_bytes))
    assert checks["data"].status == "warn" and "pgolf fetch" in checks["data"].detail
    assert checks["disk"].status == "warn" and "a full fetch needs" in checks["disk"].detail


# ---------------------------------------------------------------- the command, end to end


def run_doctor(*args: str, path_prefix: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        [sys.executable, "-m", "harness", "doctor", *args], capture_output=True, text=True, env=env, cwd=REPO
    )


def fake_smi(bin_dir: Path, query: str, topology: str) -> Path:
    """An ``nvidia-smi`` that answers only the exact invocations documented for the fields doctor reads."""
    bin_dir.mkdir()
    (bin_dir / "query.txt").write_text(query)
    (bin_dir / "banner.txt").write_text(BANNER)
    (bin_dir / "topo.txt").write_text(topology)
    fields = ",".join(doctor.GPU_QUERY_FIELDS)
    script = f"""#!/bin/sh
d=$(dirname "$0")
case "$*" in
  "--query-gpu={fields} --format=csv,noheader,nounits") cat "$d/query.txt" ;;
  "") cat "$d/banner.txt" ;;
  "topo -m") cat "$d/topo.txt" ;;
  *) echo "nvidia-smi: unexpected arguments: $*" >&2; exit 6 ;;
esac
"""
    smi = bin_dir / "nvidia-smi"
    smi.write_text(script)
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_doctor_on_this_cpu_machine(tmp_path: Path) -> None:
    proc = run_doctor("--data-dir", str(tmp_path))
    if "nvidia-smi not found" not in proc.stdout:
        pytest.skip("this machine has nvidia-smi: the CPU-only report is covered by the evaluate tests")
    assert proc.returncode == 1
    assert proc.stdout.startswith("CPU only")
    lines = [ln for ln in proc.stdout.splitlines() if ln[:4] in ("PASS", "WARN", "FAIL")]
    assert len(lines) >= 8
    assert "record run: impossible here (failed: gpu)" in proc.stdout


def test_doctor_json(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    proc = run_doctor("--json", "--data-dir", str(tmp_path))
    report = json.loads(proc.stdout)
    assert proc.returncode == (0 if report["record_possible"] else 1)
    assert report["facts"]["data"]["train_shards"] == 2
    assert {c["status"] for c in report["checks"]} <= {"pass", "warn", "fail"}
    assert next(c for c in report["checks"] if c["name"] == "data")["status"] == "pass"


def test_doctor_with_a_stand_in_8x_h100_nvidia_smi(tmp_path: Path) -> None:
    bin_dir = fake_smi(tmp_path / "bin", QUERY_8X_SXM, TOPO_8X_SXM)
    proc = run_doctor("--json", "--data-dir", str(tmp_path), path_prefix=bin_dir)
    report = json.loads(proc.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["gpu count"]["status"] == "pass"
    assert checks["gpu model"]["status"] == "pass"
    assert checks["nvlink"]["status"] == "pass"
    assert report["facts"]["driver_cuda"] == "12.8"
    assert report["facts"]["topology"]["links"]["GPU0-GPU7"] == "NV18"
    # The torch here has no CUDA: a real finding, and the only thing between this and a record.
    assert checks["torch"]["status"] == "fail"
    assert proc.returncode == 1


def test_doctor_with_a_stand_in_7_gpu_pcie_node(tmp_path: Path) -> None:
    query = "".join(QUERY_8X_PCIE.splitlines(keepends=True)[:7])
    bin_dir = fake_smi(tmp_path / "bin", query, topo(pcie_links(7)))
    proc = run_doctor("--data-dir", str(tmp_path), path_prefix=bin_dir)
    assert proc.returncode == 1
    out = proc.stdout
    assert "FAIL gpu count" in out and "7x NVIDIA H100 PCIe" in out
    assert "FAIL gpu model" in out and "FAIL nvlink" in out


def test_unknown_variant_is_a_one_line_error(tmp_path: Path) -> None:
    proc = run_doctor("--variant", "sp9999", "--data-dir", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"pgolf doctor: error: unknown variant 'sp9999': expected one of {', '.join(VARIANTS)}"
    ]
