"""The audits of witnessed scoring, as pure functions over what the trainer returned.

- normalization: at a few target positions the harness picks after the NLLs arrive, the full
  log-probability vector must be a distribution (logsumexp 0) whose entry for the target is
  minus the NLL returned there. The first part is ``normalization``; the second is
  ``score_order`` (the returned NLLs are the targets' own scores, in order).
- causality: a fresh process's NLLs for a segment cut at a target position must equal the main
  pass's NLLs of the targets before the cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class LogprobCheck:
    rank: int
    segment: int
    target_index: int  # within the segment
    target_id: int
    logsumexp: float
    entry: float  # the vector's log-prob of the target
    nll: float  # the NLL returned for that target

    @property
    def entry_error(self) -> float:
        return abs(self.entry + self.nll)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "segment": self.segment,
            "target_index": self.target_index,
            "target_id": self.target_id,
            "logsumexp": self.logsumexp,
            "entry": self.entry,
            "nll": self.nll,
        }


def check_logprobs(
    rank: int,
    segment: int,
    logprobs: npt.NDArray[np.float32],
    indices: list[int],
    target_ids: npt.NDArray[np.integer[Any]],
    nll: npt.NDArray[np.float32],
) -> list[LogprobCheck]:
    """One check per audited position (float64 logsumexp); ``logprobs`` is (k, vocab)."""
    lp = logprobs.astype(np.float64)
    top = lp.max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        lse = (top[:, 0] + np.log(np.exp(lp - top).sum(axis=1))).tolist()
    out = []
    for row, i in enumerate(indices):
        tid = int(target_ids[i])
        entry = float(lp[row, tid]) if tid < lp.shape[1] else float("-inf")
        out.append(LogprobCheck(rank, segment, i, tid, float(lse[row]), entry, float(nll[i])))
    return out


@dataclass(frozen=True)
class ReplayCheck:
    rank: int
    cut: int  # targets replayed (those before the cut)
    segment_targets: int
    max_abs_diff: float
    worst_index: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "cut": self.cut,
            "segment_targets": self.segment_targets,
            "max_abs_diff": self.max_abs_diff,
            "worst_index": self.worst_index,
        }


def compare_replay(
    rank: int, main_nll: npt.NDArray[np.float32], replay_nll: npt.NDArray[np.float32], segment_targets: int
) -> ReplayCheck:
    d = np.abs(main_nll[: replay_nll.size].astype(np.float64) - replay_nll.astype(np.float64))
    d = np.where(np.isnan(d), np.inf, d)
    worst = int(np.argmax(d)) if d.size else 0
    return ReplayCheck(rank, int(replay_nll.size), segment_targets, float(d[worst]) if d.size else 0.0, worst)
