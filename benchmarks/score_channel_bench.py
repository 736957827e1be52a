"""Benchmark: the scoring channel (eval protocol v2) moving a full-size val set.

A synthetic val split of the real one's size (47,851,520 targets, documents of ~1,000 tokens,
a byte sidecar) is written to a temp dir, read and hashed by the harness (``load_valset``), then
served by ``MainPass`` to 2 rank processes. Each rank runs the reference trainer's own client and
eval loop (``ScoreClient`` + ``score_stream`` from submission_template/train_gpt.py) with a
scorer that returns constants, asking for segments the size the flat scorer asks for at its
defaults (TRAIN_SEQ_LEN 2048, VAL_BATCH_TOKENS 131072, EVAL_SEGMENT_BATCHES 2: 260,097 targets),
normalization audits included.

Reference, same run: the same loop over ``LocalSegments`` (the trainer's in-process segment
source, no socket). Reported: aggregate targets/s, the channel's overhead over the reference,
the harness process's CPU seconds, and an honest extrapolation to 8 ranks:
``server CPU (serialised by the GIL) + per-rank client time x 2/8``.
Target: whole val set's channel overhead < 2 s at 8 ranks. Writes
benchmarks/results/score_channel_bench.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.rules import SCORING  # noqa: E402
from harness.scoring.session import WitnessedEval  # noqa: E402
from harness.scoring.valset import load_valset  # noqa: E402
from harness.shards import write_shard  # noqa: E402

TRAINER = REPO / "submission_template" / "train_gpt.py"
VAL_TARGETS = 47_851_520
TARGET_S_AT_8 = 2.0
SEQ, BATCH_TOKENS, VOCAB = 2048, 131_072, 8192
MAX_TARGETS = (2 * BATCH_TOKENS // SEQ - 1) * SEQ + 1  # FlatScorer at these settings (2 batches)


def load_trainer() -> Any:
    spec = importlib.util.spec_from_file_location("train_gpt", TRAINER)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class ConstScorer:
    """Returns constants: what is left is the channel's own cost."""

    max_targets, context = MAX_TARGETS, SEQ

    def score(self, seg: Any) -> np.ndarray:
        return np.full(seg.n_targets, 3.0, dtype=np.float32)

    def logprobs(self, seg: Any, idx: list[int]) -> np.ndarray:
        return np.full((len(idx), VOCAB), -np.log(VOCAB), dtype=np.float32)

    def committed(self, seg: Any) -> None:
        pass


class NoDist:
    distributed = False


def client(path: str, rank: int, world: int) -> None:
    t = load_trainer()
    c0, t0 = time.process_time(), time.perf_counter()
    res = t.score_stream(ConstScorer(), t.ScoreClient(path, rank, world), NoDist())
    print(json.dumps({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, **res}))


def make_val(d: Path, rng: np.random.Generator) -> None:
    n = VAL_TARGETS + 1
    tokens = rng.integers(2, VOCAB, n, dtype=np.uint16)
    starts = np.cumsum(rng.integers(200, 1800, n // 200))
    tokens[0] = 1
    tokens[starts[starts < n]] = 1
    nbytes = np.where(tokens == 1, 0, rng.integers(1, 7, n)).astype(np.uint16)
    half = n // 2
    write_shard(d / "fineweb_val_000000.bin", tokens[:half])
    write_shard(d / "fineweb_val_000001.bin", tokens[half:])
    write_shard(d / "fineweb_val_bytes_000000.bin", nbytes[:half])
    write_shard(d / "fineweb_val_bytes_000001.bin", nbytes[half:])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", nargs=3, metavar=("SOCKET", "RANK", "WORLD"))
    ap.add_argument("--world", type=int, default=2)
    args = ap.parse_args()
    if args.client:
        client(args.client[0], int(args.client[1]), int(args.client[2]))
        return 0
    world = args.world
    with tempfile.TemporaryDirectory(prefix="score-bench-") as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        make_val(d, np.random.default_rng(0))
        gen_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        vs = load_valset(d, None, None)
        load_s = time.perf_counter() - t0
        assert vs.n_targets == VAL_TARGETS
        print(
            f"synthetic val: {vs.n_targets:,d} targets, {vs.doc_starts.size:,d} docs (written in {gen_s:.1f} s)"
        )
        print(f"harness reads + hashes it: {load_s:.2f} s")

        # Reference: the trainer's loop over its in-process segment source, one rank after the other.
        t = load_trainer()
        ref_wall = []
        for rank in range(world):
            t0 = time.perf_counter()
            t.score_stream(ConstScorer(), t.LocalSegments(vs.tokens, vs.target_bytes, rank, world), NoDist())
            ref_wall.append(time.perf_counter() - t0)

        witness = WitnessedEval(vs, world)
        with witness.main_pass() as channel:
            sock = str(channel.socket)
            cpu0, t0 = time.process_time(), time.perf_counter()
            procs = [
                subprocess.Popen(
                    [sys.executable, __file__, "--client", sock, str(r), str(world)],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for r in range(world)
            ]
            outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
            wall = time.perf_counter() - t0
            server_cpu = time.process_time() - cpu0
        report = witness.report({})
        assert report.score is not None and abs(report.score.val_loss - 3.0) < 1e-12, report.verdicts
    rank_wall = [o["wall_s"] for o in outs]
    rank_cpu = [o["cpu_s"] for o in outs]
    segments = sum(r["segments"] for r in report.evidence["ranks"])
    audited = sum(r["audited_segments"] for r in report.evidence["ranks"])
    rate = VAL_TARGETS / max(rank_wall)
    overhead = max(rank_wall) - max(ref_wall)
    # 8 ranks: the server's threads share one GIL (its CPU time does not shrink with more ranks);
    # each rank's own work is an eighth of the set instead of a half.
    est8 = server_cpu + max(rank_wall) * world / 8
    rows = [
        ("ranks", f"{world}"),
        ("segments served / audited", f"{segments} / {audited}"),
        ("per-rank wall, channel (s)", ", ".join(f"{w:.2f}" for w in rank_wall)),
        ("per-rank wall, local reference (s)", ", ".join(f"{w:.2f}" for w in ref_wall)),
        ("per-rank client CPU (s)", ", ".join(f"{c:.2f}" for c in rank_cpu)),
        ("harness (server) CPU (s)", f"{server_cpu:.2f}"),
        ("whole pass wall incl. process start (s)", f"{wall:.2f}"),
        ("aggregate targets/s", f"{rate:,.0f}"),
        ("channel / local reference", f"{max(rank_wall) / max(ref_wall):.2f}x"),
        ("estimated overhead at 8 ranks (s)", f"{est8:.2f} (target < {TARGET_S_AT_8:g})"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    out = {
        "benchmark": "score_channel",
        "targets": VAL_TARGETS,
        "world": world,
        "max_targets": MAX_TARGETS,
        "context": SEQ,
        "segments": segments,
        "audited_segments": audited,
        "audit_rate": SCORING.audit_segment_rate,
        "load_valset_s": load_s,
        "rank_wall_s": rank_wall,
        "rank_cpu_s": rank_cpu,
        "reference_wall_s": ref_wall,
        "server_cpu_s": server_cpu,
        "pass_wall_s": wall,
        "aggregate_targets_per_s": rate,
        "overhead_vs_reference_s": overhead,
        "estimated_8_rank_overhead_s": est8,
        "target_s": TARGET_S_AT_8,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    res_dir = REPO / "benchmarks" / "results"
    res_dir.mkdir(exist_ok=True)
    (res_dir / "score_channel_bench.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0 if est8 < TARGET_S_AT_8 else 1


if __name__ == "__main__":
    sys.exit(main())
