"""Eval variants as R ranks score them, all R on one GPU (issue 20): what an 8-GPU pod's TTT gets.

On one GPU, eval_ttt.py's carried TTT adapters learn from the whole val stream in order; on a pod
each rank learns only from its own contiguous eighth, unless TTT_SYNC_PHASES shares what the ranks
learnt. This runs the pod's split on one GPU: start it with torch.distributed.run --nproc_per_node=R;
the ranks talk over gloo (NCCL refuses two ranks on one GPU) and share cuda:0, so the trainer's
Runtime is built for one process and then told its rank. The scores are the pod's (same ranges,
same segments, same syncs); the seconds are not (R processes take turns on one GPU).

usage: torchrun --nproc_per_node=R benchmarks/trainer/eval_ranks.py OUT_PREFIX [name:K=V,K=V ...]
Environment as eval_ttt.py's (ARTIFACT_DIR, DATA_PATH, TOKENIZER_PATH). Rank 0 writes OUT_PREFIX.md
and .json after every variant.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_ttt import load_trainer, parse_variant, variant_hparams

VARIANTS = [
    "ttt alone:EVAL_MODE=ttt,TTT_SYNC_PHASES=0",
    "ttt (defaults, 4 phases):EVAL_MODE=ttt",
]


def main() -> int:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    prefix = Path(sys.argv[1])
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo")
    os.environ.update(WORLD_SIZE="1", RANK="0", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
    T = load_trainer()
    hp = T.Hyperparameters()
    rt = T.Runtime(hp)
    rt.rank, rt.world, rt.distributed, rt.master = rank, world, True, rank == 0
    model = T.load_model_from_artifact(os.path.join(hp.ARTIFACT_DIR, T.ARTIFACT_NAME), hp, rt)
    tokens, tok_bytes, _ = T.load_validation(hp)
    rows = []
    for name, settings in [parse_variant(v) for v in (sys.argv[2:] or VARIANTS)]:
        vhp = variant_hparams(T, name, settings)
        dist.barrier()
        t0 = time.perf_counter()
        res = T.evaluate(model, tokens, tok_bytes, vhp, rt, mode=vhp.EVAL_MODE)
        dist.barrier()
        dt = time.perf_counter() - t0
        rows.append({"name": name, "settings": settings, "ranks": world, "val_bpb": res["val_bpb"],
                     "eval_s_all_ranks_one_gpu": dt})  # fmt: skip
        if rank == 0:
            print(f"{name} ({world} ranks): val_bpb {res['val_bpb']:.6f} {dt:.1f}s", flush=True)
            md = "| variant | settings | ranks | val_bpb | s (all ranks, one GPU) |\n| --- | --- | ---: | ---: | ---: |\n"
            md += "".join(
                f"| {r['name']} | {','.join(f'{k}={v}' for k, v in r['settings'].items())} | {r['ranks']} "
                f"| {r['val_bpb']:.5f} | {r['eval_s_all_ranks_one_gpu']:.1f} |\n"
                for r in rows
            )
            prefix.with_suffix(".md").write_text(md)
            prefix.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
