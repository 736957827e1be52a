"""Timing of GPU work for the benchmark scripts beside this file (they run as scripts, so this
directory is on sys.path)."""

from __future__ import annotations

import torch


def cuda_ms(fn, n: int = 20, min_ms: float = 0.0) -> float:
    """Mean milliseconds per call of fn, by CUDA events, after 3 warm-up calls: n calls, or, when
    min_ms is set, repeated with more calls until one burst lasts at least min_ms (sustained load,
    e.g. under the power cap)."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    while True:
        start.record()
        for _ in range(n):
            fn()
        end.record()
        torch.cuda.synchronize()
        total = start.elapsed_time(end)
        if total >= min_ms:
            return total / n
        n = max(n * 2, int(n * min_ms / max(total, 1e-3)) + 1)
