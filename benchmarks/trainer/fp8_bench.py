"""The trainer's GEMMs in bf16 against FP8 (`torch._scaled_mm`, row-wise scales) on the GPU
(issue 6: is FP8 a lever towards 1.4 M tokens/s?). One 131,072-token micro-batch; for each
linear layer the forward (x W^T), the input gradient (g W) and the weight gradient (g^T x).
The FP8 figures are the bare GEMM; the row-wise quantisation (amax + scale + cast, compiled)
is timed on its own, since in the trainer Inductor would fuse it into the producing kernel.

usage: python benchmarks/trainer/fp8_bench.py OUT_JSON   (on the GPU)
"""

from __future__ import annotations

import json
import sys

import torch
from cuda_timing import cuda_ms  # this directory (scripts run from here on sys.path)

M = 131072
LAYERS = {  # name: (out features N, in features K, count per micro-batch)
    "attn.c_q / proj": (512, 512, 22),
    "attn.c_k, c_v": (256, 512, 22),
    "mlp.fc": (2048, 512, 11),
    "mlp.proj": (512, 2048, 11),
    "lm head": (8192, 512, 1),
}
E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2


def rowwise(x: torch.Tensor, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """x (rows, cols) -> fp8 values and per-row fp32 scales with x ~= q * scale."""
    amax = x.abs().amax(dim=1, keepdim=True).float().clamp_min(1e-12)
    scale = amax / torch.finfo(dtype).max
    return (x.float() / scale).to(dtype), scale


def fp8_mm(a_q, a_s, bt_q, bt_s):
    """a (M, K) row-major, bt (N, K) row-major: a @ bt^T with row-wise scales on both."""
    return torch._scaled_mm(a_q, bt_q.t(), scale_a=a_s, scale_b=bt_s.t(), out_dtype=torch.bfloat16)


def bench_layer(name: str, n: int, k: int, count: int, quant) -> dict:
    dev = "cuda"
    x = torch.randn(M, k, device=dev, dtype=torch.bfloat16)
    w = torch.randn(n, k, device=dev, dtype=torch.bfloat16) / k**0.5
    g = torch.randn(M, n, device=dev, dtype=torch.bfloat16)
    flops = 2 * M * n * k
    bf16 = {
        "fwd": cuda_ms(lambda: x @ w.t(), n=10, min_ms=400),
        "dgrad": cuda_ms(lambda: g @ w, n=10, min_ms=400),
        "wgrad": cuda_ms(lambda: g.t() @ x, n=10, min_ms=400),
    }
    xq, xs = quant(x, E4M3)
    wq, ws = quant(w, E4M3)
    wtq, wts = quant(w.t().contiguous(), E4M3)  # W^T rows = input features (dgrad's output columns)
    grad_dtype = E5M2
    try:  # gradients in e5m2 (range over precision), where row-wise scaling accepts it
        fp8_mm(*quant(g[:256], E5M2), wtq, wts)
    except RuntimeError as e:
        print(f"e5m2 x e4m3 row-wise refused ({str(e).splitlines()[0]}); gradients in e4m3")
        grad_dtype = E4M3
    gq, gs = quant(g, grad_dtype)
    gtq, gts = quant(g.t().contiguous(), grad_dtype)
    xtq, xts = quant(x.t().contiguous(), E4M3)
    fp8 = {
        "fwd": cuda_ms(lambda: fp8_mm(xq, xs, wq, ws), n=10, min_ms=400),
        "dgrad": cuda_ms(lambda: fp8_mm(gq, gs, wtq, wts), n=10, min_ms=400),
        "wgrad": cuda_ms(lambda: fp8_mm(gtq, gts, xtq, xts), n=10, min_ms=400),
    }
    # accuracy of the FP8 forward against bf16 (relative Frobenius error)
    ref = x.float() @ w.float().t()
    err = ((fp8_mm(xq, xs, wq, ws).float() - ref).norm() / ref.norm()).item()
    err_bf16 = (((x @ w.t()).float() - ref).norm() / ref.norm()).item()
    q_ms = {
        "x_e4m3": cuda_ms(lambda: quant(x, E4M3), n=10, min_ms=400),
        "g": cuda_ms(lambda: quant(g, grad_dtype), n=10, min_ms=400),
    }
    row = {
        "layer": name,
        "N": n,
        "K": k,
        "count": count,
        "bf16_ms": bf16,
        "fp8_ms": fp8,
        "quant_ms": q_ms,
        "bf16_tflops": {p: flops / (t * 1e-3) / 1e12 for p, t in bf16.items()},
        "fp8_tflops": {p: flops / (t * 1e-3) / 1e12 for p, t in fp8.items()},
        "fwd_rel_err": {"fp8": err, "bf16": err_bf16},
        "grad_dtype": str(grad_dtype),
    }
    print(
        f"{name:18s} N={n:5d} K={k:5d} x{count:2d} | bf16 ms fwd {bf16['fwd']:.3f} dgrad {bf16['dgrad']:.3f} "
        f"wgrad {bf16['wgrad']:.3f} | fp8 fwd {fp8['fwd']:.3f} dgrad {fp8['dgrad']:.3f} wgrad {fp8['wgrad']:.3f}"
        f" | quant x {q_ms['x_e4m3']:.3f} g {q_ms['g']:.3f} | fwd err fp8 {err:.2e} bf16 {err_bf16:.2e}",
        flush=True,
    )
    return row


def main(out: str) -> None:
    torch.manual_seed(0)
    torch._dynamo.config.recompile_limit = 64  # one graph per tensor shape (runs/21 hit the default 8)
    quant = torch.compile(rowwise, dynamic=False)
    rows = []
    totals = {"bf16": 0.0, "fp8": 0.0, "fp8_fwd_dgrad_bf16_wgrad": 0.0, "quant": 0.0}
    for name, (n, k, count) in LAYERS.items():
        row = bench_layer(name, n, k, count, quant)
        rows.append(row)
        bf16, fp8, q_ms = row["bf16_ms"], row["fp8_ms"], row["quant_ms"]
        totals["bf16"] += count * sum(bf16.values())
        totals["fp8"] += count * sum(fp8.values())
        totals["fp8_fwd_dgrad_bf16_wgrad"] += count * (fp8["fwd"] + fp8["dgrad"] + bf16["wgrad"])
        totals["quant"] += count * (q_ms["x_e4m3"] + q_ms["g"])
        torch.cuda.empty_cache()
    print("per micro-batch (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in totals.items()))
    result = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "M": M,
        "rows": rows,
        "totals_ms": totals,
    }
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
