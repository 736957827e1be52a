"""Benchmark: `pgolf fetch` vs. a one-by-one `hf_hub_download` loop, 100 ms added per request.

The loop is how the challenge's own downloader works (one `hf_hub_download` per file: a HEAD,
then a GET). The server is tests/hubserver.py on loopback with a fixed latency per request, the
repo a CaseOps-layout dataset of 32 small files (29 train shards, the val shard and its byte
sidecar, the tokenizer). Both sides use the same installed huggingface_hub client, in-process,
after it is imported. Target: the harness at least 4x faster. Writes
benchmarks/results/fetch_bench.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from hubserver import FakeRepo, HubServer  # noqa: E402

from harness.fetch import FetchOptions, fetch  # noqa: E402
from harness.rules import RULES  # noqa: E402
from harness.variants import VARIANTS  # noqa: E402

TARGET_RATIO = 4.0


def shard(tokens: np.ndarray) -> bytes:
    fmt = RULES.shards
    header = np.zeros(fmt.header_ints, dtype=fmt.header_int_dtype)
    header[0], header[1], header[2] = fmt.magic, fmt.version, tokens.size
    return header.tobytes() + tokens.astype(fmt.token_dtype).tobytes()


def build_repo(tokenizer: Path, n_train: int, tokens_per_shard: int) -> FakeRepo:
    v = VARIANTS["caseops"]
    rng = np.random.default_rng(0)
    files = {
        f"{v.dataset_path}/fineweb_train_{i:06d}.bin": shard(rng.integers(0, v.vocab_size, tokens_per_shard))
        for i in range(n_train)
    }
    files[f"{v.dataset_path}/fineweb_val_000000.bin"] = shard(rng.integers(0, v.vocab_size, tokens_per_shard))
    files[f"{v.dataset_path}/fineweb_val_bytes_000000.bin"] = shard(rng.integers(0, 8, tokens_per_shard))
    files[f"{v.root}/{v.tokenizer_files[0]}"] = tokenizer.read_bytes()
    return FakeRepo.build(v.repo_id, files)


def run_harness(endpoint: str, dest: Path, workers: int) -> float:
    t0 = time.perf_counter()
    fetch(FetchOptions(data_dir=dest, endpoint=endpoint, workers=workers, progress=False))
    return time.perf_counter() - t0


def run_loop(endpoint: str, dest: Path, repo: FakeRepo) -> float:
    from huggingface_hub import hf_hub_download

    t0 = time.perf_counter()
    for path in repo.files:
        hf_hub_download(repo.repo_id, path, repo_type="dataset", local_dir=dest, endpoint=endpoint)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "fetch_bench.json")
    args = ap.parse_args()

    shared = Path(os.environ.get("PGOLF_SHARED_DIR", REPO.parent / "shared"))
    tokenizer = shared / "tokenizers" / VARIANTS["caseops"].tokenizer_files[0].split("/")[-1]
    if not tokenizer.is_file():
        print(f"fetch_bench: skipped: CaseOps tokenizer not found at {tokenizer} (set PGOLF_SHARED_DIR)")
        return 0

    repo = build_repo(tokenizer, n_train=29, tokens_per_shard=16_384)
    n_files = len(repo.files)
    total_bytes = sum(len(f.data) for f in repo.files.values())
    results: dict[str, list[float]] = {"harness": [], "hf_hub_download_loop": []}
    requests: dict[str, int] = {}
    work = Path(tempfile.mkdtemp(prefix="pgolf-fetch-bench-"))
    os.environ["HF_HOME"] = str(work / "hf-home")  # the loop's cache writes stay in the scratch dir
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    try:
        with HubServer([repo], latency_s=args.latency_ms / 1000) as server:
            for i in range(args.repeats):
                n0 = len(server.requests)
                results["harness"].append(run_harness(server.endpoint, work / f"harness{i}", args.workers))
                requests["harness"] = len(server.requests) - n0
                n0 = len(server.requests)
                results["hf_hub_download_loop"].append(run_loop(server.endpoint, work / f"loop{i}", repo))
                requests["hf_hub_download_loop"] = len(server.requests) - n0
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    ratio = med["hf_hub_download_loop"] / med["harness"]
    report = {
        "benchmark": "fetch",
        "what": "32 small files, added latency per request, harness (parallel, no per-file HEAD) "
        "vs hf_hub_download one by one",
        "latency_ms": args.latency_ms,
        "files": n_files,
        "bytes": total_bytes,
        "workers": args.workers,
        "repeats": args.repeats,
        "seconds": results,
        "median_s": med,
        "requests_per_run": requests,
        "speedup": round(ratio, 2),
        "target_speedup": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
        "python": platform.python_version(),
        "huggingface_hub": __import__("huggingface_hub").__version__,
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"fetch_bench: {n_files} files ({total_bytes / 1e6:.1f} MB), {args.latency_ms:.0f} ms per request")
    print(f"{'method':<24}{'median s':>10}{'requests':>10}")
    for k in results:
        print(f"{k:<24}{med[k]:>10.2f}{requests[k]:>10}")
    print(
        f"speedup {ratio:.1f}x (target >= {TARGET_RATIO:.0f}x): {'ok' if ratio >= TARGET_RATIO else 'MISSED'}"
    )
    print(f"written: {args.out}")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
