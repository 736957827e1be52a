"""The challenge's metric, witnessed: pure float64 accounting over committed segments."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from harness.bpb import bits_per_byte


@dataclass(frozen=True)
class Score:
    val_loss: float  # mean target NLL, nats
    val_bpb: float
    val_tokens: int  # targets scored
    val_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "val_loss": self.val_loss,
            "val_bpb": self.val_bpb,
            "val_tokens": self.val_tokens,
            "val_bytes": self.val_bytes,
        }


def score(segment_nll_sums: list[float], n_targets: int, n_bytes: int) -> Score:
    """Per-segment float64 NLL sums (nats) -> the metric; ``math.fsum`` makes the order irrelevant."""
    total = math.fsum(segment_nll_sums)
    return Score(total / n_targets, bits_per_byte(total, n_bytes), n_targets, n_bytes)


@dataclass(frozen=True)
class ClaimCheck:
    key: str
    claimed: float | int | None
    witnessed: float | int
    rel_diff: float | None  # None: nothing claimed

    @property
    def agrees(self) -> bool:
        return self.rel_diff is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "claimed": self.claimed,
            "witnessed": self.witnessed,
            "rel_diff": self.rel_diff,
        }


def compare_claim(claimed: dict[str, Any], witnessed: Score) -> list[ClaimCheck]:
    """What the trainer says against what the harness measured, key by key (relative differences)."""
    out = []
    for key, w in witnessed.as_dict().items():
        c = claimed.get(key)
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c):
            out.append(ClaimCheck(key, None, w, None))
            continue
        out.append(ClaimCheck(key, c, w, abs(c - w) / max(abs(w), 1e-300)))
    return out
