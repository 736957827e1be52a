"""One rank of test_eval_scorers' phase-sync test, started by torch.distributed.run (gloo).

usage: ttt_sync_rank.py PROXY_DIR OUT_DIR SPEC [SPEC ...]
Scores the tiny model's proxy stream through score_stream (this rank's LocalSegments) with TTT once
per SPEC: P (carried adapters, TTT_SYNC_PHASES=P) or doc:P (TTT_RESET=doc), and writes
OUT_DIR/rank{r}_P{SPEC}.npz: the rank's NLLs by stream position, where each sync happened (targets
committed so far), and the adapters as one vector just before and just after each sync (recorded
around the scorer's own _average).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from test_eval_scorers import T, _hp, proxy_stream, tiny_model  # tests/ is this script's sys.path[0]


class RecordedSegments(T.LocalSegments):
    def __init__(self, tokens: np.ndarray, rank: int, world: int) -> None:
        super().__init__(tokens, np.ones_like(tokens), rank, world)
        self.nll = np.full(len(tokens), np.nan)

    def submit(self, seg: Any, nll: np.ndarray, logprobs: Any) -> None:
        self.nll[seg.start : seg.start + seg.n_targets] = nll


def adapters(scorer: Any) -> np.ndarray:
    return torch.cat([p[0].detach().reshape(-1) for p in scorer.params]).numpy().copy()


def score(model: Any, rt: Any, tokens: np.ndarray, spec: str, out: Path) -> None:
    """spec: P (carried adapters, TTT_SYNC_PHASES=P) or doc:P (the same, reset per document)."""
    reset, _, phases = spec.rpartition(":")
    scorer = T.make_scorer(
        model, _hp("ttt-carry", TTT_SYNC_PHASES=int(phases), TTT_RESET=reset or "never"), rt
    )
    before: list[np.ndarray] = []
    after: list[np.ndarray] = []
    at: list[int] = []
    average = scorer._average

    def recorded() -> None:
        before.append(adapters(scorer))
        at.append(scorer.done_targets)
        average()
        after.append(adapters(scorer))

    scorer._average = recorded
    source = RecordedSegments(tokens, rt.rank, rt.world)
    try:
        T.score_stream(scorer, source, rt)
    finally:
        scorer.close()
    np.savez(out / f"rank{rt.rank}_P{spec}.npz", nll=source.nll, at=np.array(at, dtype=np.int64),
             before=np.array(before), after=np.array(after), range=np.array([source.targets]))  # fmt: skip


def main() -> None:
    proxy, out = Path(sys.argv[1]), Path(sys.argv[2])
    rt = T.Runtime(_hp())
    model, tokens = tiny_model(rt), proxy_stream(proxy)
    for spec in sys.argv[3:]:
        score(model, rt, tokens, spec, out)
    rt.close()


if __name__ == "__main__":
    main()
