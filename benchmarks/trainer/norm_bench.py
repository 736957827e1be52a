"""The block's residual-mix + rms_norm (the trainer's largest Inductor kernels) in isolation on
the GPU, against a plain fp32 copy as the achievable memory bandwidth: how far from the memory
roofline is the compiled kernel, i.e. what a hand-written kernel could win (issue 6). (runs/22-23
also timed a full trainer Block with a hand-written Triton backward for this op, commit 553eb28:
that kernel was removed again, RESULTS.md "Fourth round" says why.)

usage: python benchmarks/trainer/norm_bench.py OUT_JSON   (on the GPU)
"""

from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F
from cuda_timing import cuda_ms  # this directory (scripts run from here on sys.path)

M, D = 131072, 512


def mix_norm(x, x0, m0, m1, s: float = 0.5):
    xm = x * m0 + x0 * m1
    return xm, (F.rms_norm(xm, (D,)) * s).to(torch.bfloat16)


def main(out: str) -> None:
    dev = "cuda"
    x, x0 = (torch.randn(M, D, device=dev) for _ in range(2))
    m0, m1 = (torch.randn(D, device=dev, requires_grad=True) for _ in range(2))
    fwd = torch.compile(mix_norm, dynamic=False)
    copy_ms = cuda_ms(lambda: x.clone(), n=10, min_ms=400)
    with torch.no_grad():
        fwd_ms = cuda_ms(lambda: fwd(x, x0, m0, m1), n=10, min_ms=400)
    elem = M * D
    copy_bytes = 8 * elem
    fwd_bytes = (4 + 4 + 4 + 2) * elem  # read x, x0; write xm (fp32), h (bf16)

    xg, x0g = x.clone().requires_grad_(), x0.clone().requires_grad_()
    g_xm, g_h = torch.randn(M, D, device=dev), torch.randn(M, D, device=dev, dtype=torch.bfloat16)

    def fwd_bwd():
        xm, h = fwd(xg, x0g, m0, m1)
        torch.autograd.backward((xm, h), (g_xm, g_h))

    both_ms = cuda_ms(fwd_bwd, n=10, min_ms=400)
    # backward at least: read x, x0, g_xm (fp32), g_h (bf16); write dx, dx0 (fp32)
    bwd_bytes = (4 * 3 + 2 + 4 * 2) * elem
    res = {
        "device": torch.cuda.get_device_name(),
        "copy_ms": copy_ms,
        "copy_TBps": copy_bytes / copy_ms / 1e9,
        "fwd_ms": fwd_ms,
        "fwd_TBps": fwd_bytes / fwd_ms / 1e9,
        "fwd_bwd_ms": both_ms,
        "fwd_bwd_min_bytes_TBps": (fwd_bytes + bwd_bytes) / both_ms / 1e9,
        "fwd_at_copy_bandwidth_ms": fwd_bytes / (copy_bytes / copy_ms),
        "fwd_bwd_at_copy_bandwidth_ms": (fwd_bytes + bwd_bytes) / (copy_bytes / copy_ms),
    }
    for k, v in res.items():
        print(f"{k:30s} {v if isinstance(v, str) else f'{v:.3f}'}")
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
