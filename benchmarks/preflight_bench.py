"""Benchmark: `pgolf run`'s preflight (harness/preflight.py) reading every shard before a run.

A dataset in the challenge's layout (N train shards, a val shard and its byte sidecar, random
ids below 8192) is written to a temporary folder, then checked twice from the page cache: with
the preflight's thread pool and with one thread (the reference, same run). Prints a table,
the throughput, and what a full CaseOps download (80 train shards of 100 M tokens) would take at
that rate; writes benchmarks/results/preflight_bench.json. Target: the pool at least as fast as
one thread, and the full download under 60 s at the measured rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness import preflight as pf  # noqa: E402
from harness.shards import write_shard  # noqa: E402

FULL_TRAIN_TOKENS = 80 * 100_000_000  # what `pgolf fetch` brings for the caseops variant, roughly
TARGET_FULL_S = 60.0


def build(d: Path, shards: int, tokens: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(shards):
        write_shard(d / f"fineweb_train_{i:06d}.bin", rng.integers(1, 8192, tokens, dtype=np.uint16))
    val = rng.integers(2, 8192, tokens, dtype=np.uint16)
    val[::1000] = 1  # a document every 1000 tokens
    write_shard(d / "fineweb_val_000000.bin", val)
    write_shard(d / "fineweb_val_bytes_000000.bin", np.where(val == 1, 0, 3).astype(np.uint16))


def timed(d: Path, workers: int, repeats: int) -> float:
    pf.MAX_WORKERS = workers
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        pf.check_data(d, None)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=10_000_000, help="tokens per shard")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pgolf-preflight-bench-") as tmp:
        d = Path(tmp)
        build(d, args.shards, args.tokens)
        nbytes = sum(p.stat().st_size for p in d.iterdir())
        pool_workers = min(8, os.cpu_count() or 1)
        one = timed(d, 1, args.repeats)
        pool = timed(d, pool_workers, args.repeats)
    rate = nbytes / pool
    full_s = (FULL_TRAIN_TOKENS * 2) / rate
    result = {
        "bytes": nbytes,
        "shards": args.shards + 2,
        "one_thread_s": round(one, 3),
        "pool_s": round(pool, 3),
        "pool_workers": pool_workers,
        "speedup": round(one / pool, 2),
        "gb_per_s": round(rate / 1e9, 2),
        "full_caseops_estimate_s": round(full_s, 1),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "note": "page cache warm; a cold NVMe read adds its own rate",
    }
    out = REPO / "benchmarks" / "results" / "preflight_bench.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'':24}{'seconds':>10}")
    print(f"{'one thread':24}{one:>10.3f}")
    print(f"{f'pool ({pool_workers} threads)':24}{pool:>10.3f}   x{one / pool:.2f}")
    print(f"{nbytes / 1e6:.0f} MB at {rate / 1e9:.2f} GB/s; a full CaseOps download: ~{full_s:.0f} s")
    ok = pool <= one * 1.05 and full_s <= TARGET_FULL_S
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
