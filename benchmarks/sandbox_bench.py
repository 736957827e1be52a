"""Sandbox setup overhead per phase on CPU: a phase's real bwrap spec vs the same command bare.

The command is ``python -c pass`` (the interpreter start a phase pays anyway); the spec is
the one `pgolf run` builds for a train phase with 80 train shards bound one by one. The
overhead is the median difference over the repeats. Target: at most
``PHASE_WALLS.sandbox_setup_budget_s`` (0.5 s). Results: benchmarks/results/sandbox_bench.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.rules import PHASE_WALLS
from harness.sandbox import PhaseInputs, bwrap_argv, host_facts, phase_spec, sandbox_level

REPEATS = 15
SHARDS = 80
OUT = Path(__file__).resolve().parent / "results" / "sandbox_bench.json"


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    level = sandbox_level()
    if not level.available:
        print(f"sandbox_bench: skipped, {level.reason}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        shards = []
        for i in range(SHARDS):
            p = data / f"fineweb_train_{i:06d}.bin"
            p.write_bytes(b"\0" * 1024)
            shards.append(p)
        for d in ("code", "artifact"):
            (root / d).mkdir()
        inputs = PhaseInputs(
            code_dir=root / "code",
            data_files=tuple(shards),
            artifact_dir=root / "artifact",
            artifact_writable=True,
            out_dir=None,
            tokenizer=None,
            hidden=(data, root),
            env=dict(os.environ),
        )
        t0 = time.perf_counter()
        spec = phase_spec(inputs, host_facts())
        spec_s = time.perf_counter() - t0
        command = [sys.executable, "-c", "pass"]
        argv = bwrap_argv(spec, command, level.bwrap or "bwrap")
        bare, boxed = [], []
        for _ in range(REPEATS):  # interleaved: both see the same machine load
            bare.append(timed(command))
            boxed.append(timed(argv))
    bare_s, boxed_s = statistics.median(bare), statistics.median(boxed)
    overhead = boxed_s - bare_s + spec_s
    budget = PHASE_WALLS.sandbox_setup_budget_s
    result = {
        "bwrap": level.bwrap,
        "repeats": REPEATS,
        "bound_shards": SHARDS,
        "bare_median_s": round(bare_s, 4),
        "sandboxed_median_s": round(boxed_s, 4),
        "spec_build_s": round(spec_s, 4),
        "overhead_s": round(overhead, 4),
        "ratio": round(boxed_s / bare_s, 3),
        "budget_s": budget,
        "within_budget": overhead <= budget,
    }
    print("| command | median s |\n| --- | ---: |")
    print(f"| python -c pass | {bare_s:.4f} |\n| same, in the train phase's sandbox | {boxed_s:.4f} |")
    print(
        f"overhead per phase {overhead:.4f} s (spec {spec_s:.4f} s), budget {budget} s, ratio {result['ratio']}"
    )
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    return 0 if result["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
