"""How fast can the recipe's training step be on one H100 (issue 6's 1.4 M tokens/s target)?

A floor per 131,072-token micro-batch, from measured parts only:
  * GEMMs and attention at the time the library kernels take in the trainer (cuBLAS; flash-attn 4),
    measured under the 700 W power cap (runs/14 trace, runs/14 and runs/20);
  * every other kernel moving only the bytes it must (inputs read once, outputs written once,
    the GEMMs' own inputs and outputs counted in their time) at the copy bandwidth measured on
    the same kind of machine (runs/21: 2.98 TB/s for an fp32 clone; Inductor's mix + rms_norm
    forward ran at 2.97).
Then the same floor with the changes that could lower it: LeakyReLU^2 folded into the GEMMs'
epilogues (a hand-written GEMM), a bf16 residual stream (measured to cost 0.005-0.007 bpb), FP8
GEMMs for forward and input gradients (runs/21: at most 8.1 ms less, before the casts).

usage: python benchmarks/trainer/roofline.py   (prints a markdown table; no GPU needed)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

TOKENS = 131_072  # one micro-batch
LAYERS, DIM, VOCAB, MLP_MULT = 11, 512, 8192, 4
COPY_BYTES_PER_S = 2.977e12  # runs/21 norm.json: fp32 clone on the H100

# measured per micro-batch in the trainer (ms)
GEMM_MS = 41.7  # runs/14 trace: cuBLAS, incl. the optimiser's share
ATTENTION_MS = 31.5  # flash-attn 4 forward + backward, 11 layers (runs/14 attn_bench, runs/20)
MEASURED_OTHER_MS = {"residual stream, norms, RoPE": 31.3, "LeakyReLU^2": 9.7, "softcap + cross-entropy": 5.1}
FP8_GEMM_SAVING_MS = 47.4 - 39.3  # runs/21 fp8.json: bf16 vs FP8 forward + input gradient, bf16 weight grads


@dataclass(frozen=True)
class Stream:
    """Bytes per element of the tensors the memory-bound kernels move (D elements per token)."""

    resid: int = 4  # the residual stream (fp32)
    act: int = 2  # bf16 activations and their gradients
    leaky_in_epilogue: bool = False  # LeakyReLU^2 computed inside the MLP GEMMs


def layer_bytes_per_token(s: Stream) -> dict[str, int]:
    """Minimum bytes per token per layer, by kernel, with library GEMMs (their I/O not counted)."""
    d, r, a, h = DIM, s.resid, s.act, MLP_MULT * DIM * s.act
    kernels = {
        # x_prev + f_prev (previous MLP output), x0 -> xm, h1 = rms_norm(xm) * ln_scale
        "fwd mix + norm": d * (r + a + r + r + a),
        # q (D), k (D/2) -> rms_norm, RoPE, gain
        "fwd q/k norm + RoPE": d * (a + a // 2) * 2,
        # xm + attention output -> x2, h2
        "fwd attn residual + norm": d * (r + a + r + a),
        # d_act, x2's gradient, back through the norm; out: dx2 and the attention output's gradient
        "bwd attn residual + norm": d * (r + a + r + r + a),
        # dq, dk and q, k in; dq, dk out
        "bwd q/k norm + RoPE": d * (a + a // 2) * 3,
        # x, x0, the three q/k/v input gradients, dx2 in; dx out (+ bf16 copy for the MLP), dx0 accumulated
        "bwd mix + norm": d * (r + r + 3 * a + r + r + a + 2 * r),
    }
    if not s.leaky_in_epilogue:
        kernels["fwd LeakyReLU^2"] = 2 * h  # u in, act out
        kernels["bwd LeakyReLU^2"] = 3 * h  # d_act, u in; du out
    return kernels


def cross_entropy_bytes_per_token() -> int:
    """Softcap + cross-entropy forward and backward fused: bf16 logits read once, gradient written once."""
    return VOCAB * 2 * 2


def floor_ms(s: Stream, fp8: bool = False) -> dict[str, float]:
    mem = LAYERS * sum(layer_bytes_per_token(s).values()) + cross_entropy_bytes_per_token()
    mem_ms = mem * TOKENS / COPY_BYTES_PER_S * 1e3
    gemm = GEMM_MS - (FP8_GEMM_SAVING_MS if fp8 else 0.0)
    return {
        "gemm": gemm,
        "attention": ATTENTION_MS,
        "memory-bound": mem_ms,
        "total": gemm + ATTENTION_MS + mem_ms,
    }


def tokens_per_s(ms: float) -> float:
    return TOKENS / (ms * 1e-3)


def main() -> None:
    measured = GEMM_MS + ATTENTION_MS + sum(MEASURED_OTHER_MS.values())
    rows = [
        ("measured now (flash-attn 4, fp32 stream)", GEMM_MS, ATTENTION_MS, measured - GEMM_MS - ATTENTION_MS)
    ]
    base = Stream()
    cases = [
        ("floor: library GEMMs, fp32 stream (the recipe)", base, False),
        ("floor + LeakyReLU^2 in GEMM epilogues", replace(base, leaky_in_epilogue=True), False),
        ("floor + epilogues + bf16 stream", Stream(resid=2, leaky_in_epilogue=True), False),
        ("floor + epilogues + bf16 stream + FP8 GEMMs", Stream(resid=2, leaky_in_epilogue=True), True),
    ]
    for name, s, fp8 in cases:
        f = floor_ms(s, fp8)
        rows.append((name, f["gemm"], f["attention"], f["memory-bound"]))
    print(
        "| per 131,072-token micro-batch | GEMMs ms | attention ms | memory-bound ms | total ms | M tokens/s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, g, at, m in rows:
        total = g + at + m
        print(f"| {name} | {g:.1f} | {at:.1f} | {m:.1f} | {total:.1f} | {tokens_per_s(total) / 1e6:.3f} |")
    print()
    print("bytes per token per layer (fp32 stream, library GEMMs):")
    for k, v in layer_bytes_per_token(base).items():
        print(f"  {k:28s} {v:6d}")
    print(f"  cross-entropy (per token, once) {cross_entropy_bytes_per_token()}")
    print(f"1.4 M tokens/s = {TOKENS / 1.4e6 * 1e3:.1f} ms per micro-batch")


if __name__ == "__main__":
    main()
