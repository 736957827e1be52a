"""Which targets each rank scores, and where its segments end. Pure functions.

The reference trainer mirrors these two functions for its local (standalone / v1) segment
source, so its own number and the witnessed one come from the same segments.

- ``rank_ranges``: world contiguous ranges of target positions covering ``[1, n)``; every
  boundary but the ends is a document start (a BOS position), the one nearest to the equal
  split ``1 + i * (n - 1) // world`` (ties: the earlier). A range may be empty.
- ``segment_end``: from ``pos``, whole documents up to ``max_targets`` targets; a document
  longer than that is cut at ``max_targets`` (else no segment could hold it).
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt


def rank_ranges(doc_starts: npt.NDArray[np.int64], n_positions: int, world: int) -> list[tuple[int, int]]:
    bounds = [1]
    for i in range(1, world):
        ideal = 1 + i * (n_positions - 1) // world
        j = int(np.searchsorted(doc_starts, ideal))
        below = int(doc_starts[j - 1]) if j > 0 else None
        above = int(doc_starts[j]) if j < doc_starts.size else None
        if below is None and above is None:
            b = n_positions
        elif below is None or (above is not None and above - ideal < ideal - below):
            b = above  # type: ignore[assignment]
        else:
            b = below
        bounds.append(max(bounds[-1], b))
    bounds.append(n_positions)
    return list(itertools.pairwise(bounds))


def segment_end(doc_starts: npt.NDArray[np.int64], pos: int, end: int, max_targets: int) -> int:
    limit = min(end, pos + max_targets)
    if limit == end:
        return end
    j = int(np.searchsorted(doc_starts, limit, side="right")) - 1
    if j >= 0 and int(doc_starts[j]) > pos:
        return int(doc_starts[j])
    return limit
