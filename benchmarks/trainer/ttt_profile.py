"""Where the time of score-first TTT goes (issue 20): one artifact, the first SEGMENTS segments of
rank 0's val stream, score() and committed() timed apart (synchronised), then torch.profiler over
a few more segments, its top operators by device and by host time.

usage: python benchmarks/trainer/ttt_profile.py OUT.txt [SEGMENTS]   (env: as eval_ttt.py, + TTT_*)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_ttt import load_trainer


def main() -> int:
    out = Path(sys.argv[1])
    n_segs = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    T = load_trainer()
    hp = T.Hyperparameters()
    hp.EVAL_MODE = "ttt"
    rt = T.Runtime(hp)
    model = T.load_model_from_artifact(os.path.join(hp.ARTIFACT_DIR, T.ARTIFACT_NAME), hp, rt)
    tokens, tok_bytes, _ = T.load_validation(hp)
    scorer = T.make_scorer(model, hp, rt)
    source = T.LocalSegments(tokens, tok_bytes, 0, 1)
    lines = []
    t_score, t_commit, targets = [], [], 0
    for i in range(n_segs + 10):
        seg = source.next(scorer.max_targets, scorer.context)
        if seg is None:
            raise SystemExit(f"the val stream holds {i} segments: expected SEGMENTS + 10 = {n_segs + 10}")
        if i == n_segs:  # the last 10 under the profiler
            prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                                      torch.profiler.ProfilerActivity.CUDA])  # fmt: skip
            prof.__enter__()
        rt.sync()
        t0 = time.perf_counter()
        scorer.score(seg)
        rt.sync()
        t1 = time.perf_counter()
        scorer.committed(seg)
        rt.sync()
        t2 = time.perf_counter()
        if 5 <= i < n_segs:  # after warm-up
            t_score.append(t1 - t0)
            t_commit.append(t2 - t1)
            targets += seg.n_targets
    prof.__exit__(None, None, None)
    scorer.close()
    s, c = np.array(t_score), np.array(t_commit)
    lines.append(f"{len(s)} segments, {targets / len(s):.0f} targets each: score {1e3 * s.mean():.1f} ms "
                 f"(median {1e3 * np.median(s):.1f}), committed {1e3 * c.mean():.1f} ms "
                 f"(median {1e3 * np.median(c):.1f}); {targets / (s.sum() + c.sum()):,.0f} tok/s")  # fmt: skip
    avg = prof.key_averages()
    lines.append(avg.table(sort_by="self_cuda_time_total", row_limit=25))
    lines.append(avg.table(sort_by="self_cpu_time_total", row_limit=25))
    out.write_text("\n".join(lines))
    print(lines[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
