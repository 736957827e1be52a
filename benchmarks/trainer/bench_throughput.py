"""Steady-state training throughput of the reference trainer at full size (issue 6).

Runs submission_template/train_gpt.py (train phase, no export) once per configuration, reads
its `:::PGOLF` step events, and reports tokens/s per GPU after the first WARM steps, peak
memory and model FLOPs utilisation. FLOPs per token are counted from the model shape:
6 x (matrix params + tied head) for the matmuls, 6 x layers x dim x (seq+1)/2 x 2 for causal
attention (QK^T and AV, forward + backward).

usage: python benchmarks/trainer/bench_throughput.py DATA_PATH OUT_JSON [config ...]
BENCH_STEPS sets the compiled runs' step count (default 30); `old_compile` runs the carried
pre-change copy .carry/old/train_gpt.py, so before/after come from one device call. Each result
also lists the per-step train losses: same data and seed, so the curves should agree to rounding.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRAINER = REPO / "submission_template" / "train_gpt.py"
OLD_TRAINER = REPO / ".carry" / "old" / "train_gpt.py"  # the pre-change copy, carried (git-excluded)
PEAK_BF16_FLOPS = 989e12  # H100 SXM dense bf16 (datasheet)

CONFIGS = {
    "compile_sdpa_native": {"COMPILE": "1", "SDPA_GQA": "native"},
    "compile_sdpa_repeat": {"COMPILE": "1", "SDPA_GQA": "repeat"},
    "eager_sdpa_native": {"COMPILE": "0", "SDPA_GQA": "native"},
    "compile_flash": {"COMPILE": "1", "USE_FLASH_ATTN": "1"},  # flash-attn 3, or 4's CuTe kernels
    "compile_sdpa": {"COMPILE": "1", "USE_FLASH_ATTN": "0"},
    "eager_flash": {"COMPILE": "0", "USE_FLASH_ATTN": "1"},
    # issue 6 tuning: the same script before the change (old copy) and the new code's variants
    "old_compile": {"COMPILE": "1", "SDPA_GQA": "native", "TRAINER": str(OLD_TRAINER)},
    "new_compile": {"COMPILE": "1", "SDPA_GQA": "native"},
    "new_mixgrad_auto": {"COMPILE": "1", "MIX_GRAD": "auto"},
    "new_resid_bf16": {"COMPILE": "1", "RESID_BF16": "1"},
    "new_micro196k": {"COMPILE": "1", "MAX_MICRO_BATCH_TOKENS": "196608"},
    # issue 6, second round: host-side prefetch (default on), compiled Muon direction,
    # Inductor coordinate-descent tuning of the Triton kernels
    "prefetch_off": {"COMPILE": "1", "PREFETCH": "0"},
    "prefetch_on": {"COMPILE": "1", "PREFETCH": "1"},
    "muon_compile": {"COMPILE": "1", "MUON_COMPILE": "1"},
    "cd_tuning": {"COMPILE": "1", "COMPILE_TUNING": "1"},
    "muon_compile_cd_tuning": {"COMPILE": "1", "MUON_COMPILE": "1", "COMPILE_TUNING": "1"},
    "all_resid_bf16": {"COMPILE": "1", "MUON_COMPILE": "1", "COMPILE_TUNING": "1", "RESID_BF16": "1"},
    # third round: Inductor max-autotune (Triton GEMM templates with fused epilogues, when they win)
    "max_autotune": {"COMPILE": "1", "TORCHINDUCTOR_MAX_AUTOTUNE": "1"},
    "resid_bf16": {"COMPILE": "1", "RESID_BF16": "1"},
}
STEPS = {"1": int(os.environ.get("BENCH_STEPS", "30")), "0": 12}  # compiled / eager steps
WARM = {"1": 8, "0": 4}


def flops_per_token(layers=11, dim=512, heads=8, kv_heads=4, mlp=4, vocab=8192, seq=2048) -> float:
    kv = dim // heads * kv_heads
    matrix = layers * (2 * dim * dim + 2 * dim * kv + 2 * mlp * dim * dim)
    return 6 * (matrix + vocab * dim) + 6 * layers * dim * (seq + 1)


def run(name: str, env_extra: dict, data: str) -> dict:
    compiled = env_extra.get("COMPILE", "1")
    env = dict(os.environ, PGOLF_PHASE="train", DATA_PATH=data, EXPORT_MODE="none", STEP_LOG_EVERY="1")
    env.update(ITERATIONS=str(STEPS[compiled]), MAX_WALLCLOCK_SECONDS="100000", EXPORT_RESERVE_SECONDS="0")
    env.update(ARTIFACT_DIR="/tmp/pg/bench_art", PYTHONUNBUFFERED="1", **env_extra)
    t0 = time.time()
    trainer = env.pop("TRAINER", str(TRAINER))
    limit = float(os.environ.get("BENCH_CONFIG_TIMEOUT", "0")) or None  # seconds per config
    try:
        p = subprocess.run([sys.executable, trainer], env=env, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as e:
        return {
            "name": name,
            "error": f"over BENCH_CONFIG_TIMEOUT={limit:.0f}s",
            "stdout_tail": str(e.stdout)[-1500:],
        }
    steps, peak, head = [], None, ""
    for line in p.stdout.splitlines():
        if line.startswith(":::PGOLF "):
            ev = json.loads(line[9:])
            if ev["event"] == "step":
                steps.append(ev)
        elif line.startswith("peak memory"):
            peak = float(line.split()[2])
        elif line.startswith("model ") or line.startswith("compile warmup"):
            head += line + "; "
    if p.returncode != 0 or len(steps) < 3:
        return {"name": name, "error": (p.stderr or p.stdout)[-2000:], "rc": p.returncode}
    w = WARM[compiled]
    a, b = steps[w - 1], steps[-1]
    t_a, t_b = a["step_ms"] * a["step"] / 1000, b["step_ms"] * b["step"] / 1000
    tok_s = (b["tokens"] - a["tokens"]) / (t_b - t_a)
    seq = int(env.get("TRAIN_SEQ_LEN", "2048"))
    fpt = flops_per_token(seq=seq)
    return {
        "name": name,
        "env": env_extra,
        "steps_timed": b["step"] - a["step"],
        "step_ms_steady": 1000 * (t_b - t_a) / (b["step"] - a["step"]),
        "tokens_per_s": tok_s,
        "peak_mem_gib": peak,
        "flops_per_token": fpt,
        "mfu_vs_989T": tok_s * fpt / PEAK_BF16_FLOPS,
        "wall_s": time.time() - t0,
        "log": head,
        "losses": [s["train_loss"] for s in steps],  # per step (STEP_LOG_EVERY=1): the curve to compare
    }


def main() -> int:
    data, out = sys.argv[1], Path(sys.argv[2])
    names = sys.argv[3:] or ["compile_sdpa_native", "eager_sdpa_native", "compile_sdpa_repeat"]
    results = []
    for n in names:
        r = run(n, CONFIGS[n], data)
        results.append(r)
        print(json.dumps(r), flush=True)
        out.write_text(json.dumps(results, indent=2))
    for r in results:
        if "tokens_per_s" in r:
            print(
                f"{r['name']:<22s} {r['tokens_per_s'] / 1e6:6.3f} M tok/s  {r['step_ms_steady']:7.1f} ms/step  "
                f"peak {r['peak_mem_gib']} GiB  MFU {100 * r['mfu_vs_989T']:.1f}%"
            )
    for r in results:  # loss curves side by side (same data and seed: should agree to rounding)
        if "losses" in r:
            ls = r["losses"]
            print(
                f"{r['name']:<22s} loss "
                + " ".join(f"{ls[i]:.3f}" for i in range(0, len(ls), 5))
                + f" last {ls[-1]:.4f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
