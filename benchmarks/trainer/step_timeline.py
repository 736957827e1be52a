"""Where a whole training step's wall time goes (issue 6): the trainer's own step functions
(`fwd_bwd`, `optimizer_step`) run the way `train()` runs them, timed whole and in parts, then two
steps are traced and the GPU timeline is scanned for idle gaps.

usage: python benchmarks/trainer/step_timeline.py OUT_DIR    (on the GPU; DATA_PATH and the
trainer's other env overrides as for the trainer). Writes OUT_DIR/timeline.json and
OUT_DIR/trace.json.gz (chrome://tracing / Perfetto) and prints a summary.

What it answers: the steady-state step is ~36 ms longer than six compiled micro-batches timed
alone. Either the GPU idles inside a step (gaps: host launch, syncs, allocator) or the kernels
themselves run slower inside the loop (clocks, memory layout). "GPU busy" vs "wall" tells which.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "submission_template"))
import train_gpt as T


def busy_and_gaps(events: list[dict], t0: float, t1: float, min_gap_us: float = 50.0):
    """Union of GPU kernel/memcpy intervals within [t0, t1] and the idle gaps between them."""
    spans = sorted(
        (e["ts"], e["ts"] + e.get("dur", 0), e["name"])
        for e in events
        if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset") and t0 <= e["ts"] <= t1
    )
    busy, gaps, end, prev = 0.0, [], None, None
    for s, e, name in spans:
        if end is None:
            busy += e - s
            end, prev = e, name
            continue
        if s > end:
            busy += e - s
            if s - end >= min_gap_us:
                gaps.append({"at_us": end - t0, "gap_us": s - end, "after": prev[:90], "before": name[:90]})
            end, prev = e, name
        elif e > end:
            busy += e - end
            end, prev = e, name
    return busy, gaps


def label_at(events: list[dict], ts: float) -> str:
    """The innermost record_function label on the host at time ts."""
    best = ""
    best_dur = float("inf")
    for e in events:
        inside = e.get("cat") == "user_annotation" and e["ts"] <= ts <= e["ts"] + e.get("dur", 0)
        if inside and e.get("dur", 0) < best_dur:
            best, best_dur = e["name"], e.get("dur", 0)
    return best


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    hp = T.Hyperparameters()
    rt = T.Runtime(hp)
    torch.manual_seed(hp.SEED)
    model = T.build_model(hp.model_config(), hp, rt)
    opts = T.make_optimizers(model, hp, rt)
    ema = [p.detach().clone().float() for p in model.parameters()]
    loss_fn = torch.compile(model, dynamic=False) if hp.COMPILE else model
    stream = T.TrainStream(hp.DATA_PATH, hp.VOCAB_SIZE)
    accum = T.grad_accum_steps(hp, rt.world)

    def fetch() -> list:
        win = stream.next_window(hp.TRAIN_BATCH_TOKENS)
        return T.local_batches(win, hp.TRAIN_SEQ_LEN, rt.rank, rt.world, accum, rt.device)

    step = 0

    def loop_step(batches, labels: bool = False) -> list:
        """One iteration of train()'s loop: fwd/bwd, optimiser, prefetch, the per-step sync."""
        nonlocal step
        with record_function("fwd_bwd"):
            T.fwd_bwd(loss_fn, batches, rt)
        with record_function("optimizer_step"):
            T.optimizer_step(model, opts, ema, hp, rt, step)
        with record_function("prefetch"):
            nxt = fetch()
        with record_function("sync"):
            rt.sync()
        step += 1
        return nxt

    t0 = time.perf_counter()
    batches = fetch()
    for _ in range(6):
        batches = loop_step(batches)
    rt.sync()
    res: dict = {
        "warmup_s": time.perf_counter() - t0,
        "accum": accum,
        "micro_tokens": hp.TRAIN_BATCH_TOKENS // accum,
    }

    def timed(fn, n: int) -> float:
        rt.sync()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        rt.sync()
        return 1000 * (time.perf_counter() - t) / n

    def full():
        nonlocal batches
        batches = loop_step(batches)

    def fb_only():
        T.fwd_bwd(loss_fn, batches, rt)
        model.zero_grad(set_to_none=True)
        rt.sync()

    def micro_only():
        x, y = batches[0]
        with rt.autocast():
            loss = loss_fn(x, y)
        loss.backward()

    res["step_ms"] = timed(full, 10)
    res["fwd_bwd_step_ms"] = timed(fb_only, 6)
    res["micro_ms"] = timed(micro_only, 12)
    model.zero_grad(set_to_none=True)
    opt_ms = []
    for _ in range(6):
        T.fwd_bwd(loss_fn, batches, rt)
        rt.sync()
        t = time.perf_counter()
        T.optimizer_step(model, opts, ema, hp, rt, step)
        rt.sync()
        opt_ms.append(1000 * (time.perf_counter() - t))
    res["optimizer_step_ms"] = sorted(opt_ms)[len(opt_ms) // 2]
    res["step_ms_again"] = timed(full, 10)  # drift check (clocks, thermals)

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            with record_function("step"):
                batches = loop_step(batches)
    trace = out / "trace.json"
    prof.export_chrome_trace(str(trace))
    data = json.loads(trace.read_text())
    with gzip.open(str(trace) + ".gz", "wt") as f:
        json.dump(data, f)
    trace.unlink()
    ev = data["traceEvents"] if isinstance(data, dict) else data
    steps = sorted(
        (e for e in ev if e.get("cat") == "user_annotation" and e["name"] == "step"), key=lambda e: e["ts"]
    )
    per = []
    for s in steps[1:]:  # the first traced step carries the profiler's start-up
        a, b = s["ts"], s["ts"] + s["dur"]
        busy, gaps = busy_and_gaps(ev, a, b)
        for g in gaps:
            g["host"] = label_at(ev, a + g["at_us"])
        kern = [e for e in ev if e.get("cat") == "kernel" and a <= e["ts"] <= b]
        per.append(
            {
                "wall_ms": (b - a) / 1000,
                "gpu_busy_ms": busy / 1000,
                "idle_ms": (b - a - busy) / 1000,
                "kernels": len(kern),
                "kernel_sum_ms": sum(e["dur"] for e in kern) / 1000,
                "top_gaps": sorted(gaps, key=lambda g: -g["gap_us"])[:15],
                "gap_ms_by_host_label": {
                    lab: round(sum(g["gap_us"] for g in gaps if g["host"] == lab) / 1000, 3)
                    for lab in sorted({g["host"] for g in gaps})
                },
            }
        )
    res["traced_steps"] = per
    labels = {}
    for e in ev:
        if e.get("cat") == "user_annotation" and e["name"] in (
            "fwd_bwd",
            "optimizer_step",
            "prefetch",
            "sync",
        ):
            labels.setdefault(e["name"], []).append(e["dur"] / 1000)
    res["host_ms_by_label"] = {k: round(sum(v) / len(v), 3) for k, v in labels.items()}
    (out / "timeline.json").write_text(json.dumps(res, indent=2))
    print(json.dumps({k: v for k, v in res.items() if k != "traced_steps"}, indent=2))
    for i, s in enumerate(per):
        print(
            f"traced step {i + 1}: wall {s['wall_ms']:.1f} ms, GPU busy {s['gpu_busy_ms']:.1f} ms, "
            f"idle {s['idle_ms']:.1f} ms, {s['kernels']} kernels; idle by host phase {s['gap_ms_by_host_label']}"
        )
        for g in s["top_gaps"][:8]:
            print(
                f"   gap {g['gap_us'] / 1000:7.3f} ms at {g['at_us'] / 1000:8.1f} ms [{g['host']}] after {g['after'][:60]}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
