"""Causal GQA attention at the trainer's shape (issue 6): PyTorch SDPA backends against
flash-attn's CuTe kernels (FA4's `flash_attn.cute`, which has Hopper forward and backward)
when importable. Same inputs for all; outputs and gradients checked against SDPA.

usage: python benchmarks/trainer/attn_bench.py OUT_JSON   (on the GPU)
Shape from env: ATTN_B (64 = one 131,072-token micro-batch of 2048), ATTN_T, ATTN_H, ATTN_KV, ATTN_D.
FLOPs: causal, forward 2 matmuls x 2 x B x H x T^2 x D / 2; backward 2.5 x forward.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from cuda_timing import cuda_ms  # this directory (scripts run from here on sys.path)
from torch.nn.attention import SDPBackend, sdpa_kernel

B = int(os.environ.get("ATTN_B", "64"))
T = int(os.environ.get("ATTN_T", "2048"))
H = int(os.environ.get("ATTN_H", "8"))
KV = int(os.environ.get("ATTN_KV", "4"))
D = int(os.environ.get("ATTN_D", "64"))


def sdpa(backend):
    def run(q, k, v):  # (B, T, H, D) in and out, like flash-attn
        ctx = sdpa_kernel([backend]) if backend is not None else torch.enable_grad()
        with ctx:
            y = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, enable_gqa=KV != H
            )
        return y.transpose(1, 2)

    return run


def fa4():
    from flash_attn.cute import flash_attn_func  # type: ignore

    def run(q, k, v):
        y = flash_attn_func(q, k, v, causal=True)
        return y[0] if isinstance(y, tuple) else y

    return run


def main() -> int:
    out = Path(sys.argv[1])
    torch.manual_seed(0)
    dev = "cuda"
    q = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(B, T, KV, D, device=dev, dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(B, T, KV, D, device=dev, dtype=torch.bfloat16, requires_grad=True)
    dy = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16)
    fwd_flops = 4 * B * H * T * T * D / 2
    impls = {
        "sdpa_default": lambda: sdpa(None),
        "sdpa_cudnn": lambda: sdpa(SDPBackend.CUDNN_ATTENTION),
        "sdpa_flash": lambda: sdpa(SDPBackend.FLASH_ATTENTION),
        "sdpa_efficient": lambda: sdpa(SDPBackend.EFFICIENT_ATTENTION),
        "fa4_cute": fa4,
    }
    ref = None
    results = []
    for name, make in impls.items():
        r: dict = {"name": name, "shape": [B, T, H, KV, D]}
        try:
            fn = make()
            t0 = time.perf_counter()
            for t in (q, k, v):
                t.grad = None
            y = fn(q, k, v)
            y.backward(dy)
            torch.cuda.synchronize()
            r["first_call_s"] = round(time.perf_counter() - t0, 2)  # JIT compile for the CuTe kernels
            got = (y.detach().float(), q.grad.float(), k.grad.float(), v.grad.float())
            if ref is None:
                ref = got
            r["max_abs_err_vs_sdpa_default"] = [
                round(float((a - b).abs().max()), 5) for a, b in zip(got, ref, strict=True)
            ]

            def fwd(fn=fn):
                with torch.no_grad():
                    fn(q, k, v)

            def fwd_bwd(fn=fn):
                y = fn(q, k, v)
                torch.autograd.backward(y, dy, inputs=[q, k, v])

            r["fwd_ms"] = round(cuda_ms(fwd), 3)
            r["fwd_bwd_ms"] = round(cuda_ms(fwd_bwd), 3)
            r["bwd_ms"] = round(r["fwd_bwd_ms"] - r["fwd_ms"], 3)
            r["fwd_tflops"] = round(fwd_flops / r["fwd_ms"] / 1e9, 1)
            r["bwd_tflops"] = round(2.5 * fwd_flops / r["bwd_ms"] / 1e9, 1)
        except Exception as e:  # a backend that refuses this shape, or flash-attn not installed
            r["error"] = f"{type(e).__name__}: {str(e)[:300]}"
        results.append(r)
        print(json.dumps(r), flush=True)
        out.write_text(json.dumps(results, indent=2))
    print(
        f"{'impl':<16s} {'fwd ms':>8s} {'bwd ms':>8s} {'fwd TF/s':>9s} {'bwd TF/s':>9s}  max err (y, dq, dk, dv)"
    )
    for r in results:
        if "fwd_ms" in r:
            print(
                f"{r['name']:<16s} {r['fwd_ms']:8.3f} {r['bwd_ms']:8.3f} {r['fwd_tflops']:9.1f} {r['bwd_tflops']:9.1f}  "
                f"{r['max_abs_err_vs_sdpa_default']}"
            )
        else:
            print(f"{r['name']:<16s} {r['error'][:120]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
