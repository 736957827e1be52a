"""Where a full-size training step spends its time (issue 6 tuning): times the compiled
forward+backward per micro-batch, the optimiser step, and lists the top CUDA kernels.

usage: python benchmarks/trainer/profile_step.py   (on the GPU; env overrides as for the trainer)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "submission_template"))
import train_gpt as T


def timed(fn, n=5):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - t0) / n


def main() -> None:
    hp = T.Hyperparameters()
    rt = T.Runtime(hp)
    model = T.build_model(hp.model_config(), hp, rt)
    opts = T.make_optimizers(model, hp, rt)
    compiled = torch.compile(model, dynamic=False)
    micro = int(os.environ.get("PROFILE_MICRO_TOKENS", "65536"))
    b = micro // hp.TRAIN_SEQ_LEN
    x = torch.randint(0, hp.VOCAB_SIZE, (b, hp.TRAIN_SEQ_LEN), device="cuda")
    y = torch.randint(0, hp.VOCAB_SIZE, (b, hp.TRAIN_SEQ_LEN), device="cuda")

    def fb():
        with rt.autocast():
            loss = compiled(x, y)
        loss.backward()

    def fwd_only():
        with torch.no_grad(), rt.autocast():
            compiled.hidden(x)

    def opt():
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.3)
        for o in opts:
            o.step()

    t0 = time.perf_counter()
    fb()
    torch.cuda.synchronize()
    print(f"compile {time.perf_counter() - t0:.1f}s")
    ms_fb = timed(fb)
    ms_opt = timed(opt)
    print(
        f"micro {micro} tokens: fwd+bwd {ms_fb:.1f} ms ({micro / ms_fb / 1e3:.3f} M tok/s), optimiser {ms_opt:.1f} ms"
    )
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fb()
        opt()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=30, max_name_column_width=110))
    dump = os.environ.get("PROFILE_DUMP")  # file: the Inductor sources of the slowest Triton kernels
    cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if dump and cache:
        avgs = sorted(prof.key_averages(), key=lambda e: -e.device_time_total)
        names = [e.key for e in avgs if e.key.startswith("triton_")][:8]
        srcs = {}
        for f in Path(cache).rglob("*.py"):
            text = f.read_text(errors="replace")
            for n in names:
                if n not in srcs and f"def {n}(" in text:
                    srcs[n] = f"# ==== {n} ({f.name})\n" + text
        Path(dump).write_text("\n\n".join(srcs.get(n, f"# ==== {n}: source not found") for n in names))


if __name__ == "__main__":
    main()
