"""Turn documents into a shard dataset (the layout of DESIGN §2 and the proxy corpus).

Every document is BOS + its tokens; the first ``floor(n * val_fraction)``
documents are the val split (one shard, plus a byte sidecar under CaseOps),
the rest are packed whole into train shards of at most ``max_shard_tokens``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import caseops
from harness.errors import PgolfError
from harness.rules import RULES
from harness.shards import write_shard

FMT = RULES.shards


@dataclass(frozen=True)
class EncodedDoc:
    tokens: list[int]
    byte_counts: list[int] | None  # original bytes per token (CaseOps only); BOS counts 0


def encode_doc(sp: Any, text: str, transform: str | None) -> EncodedDoc:
    if transform is None:
        return EncodedDoc([FMT.bos_id, *sp.encode(text)], None)
    if transform == "caseops_v1":
        ids, counts = caseops.encode_with_byte_counts(sp, text)
        return EncodedDoc([FMT.bos_id, *ids], [0, *counts])
    raise PgolfError(f"unknown text transform {transform!r}: expected None or 'caseops_v1'")


def pack_whole_docs(docs: Iterable[list[int]], max_tokens: int) -> list[list[int]]:
    """Greedy packing of whole documents, in order, into shards of at most ``max_tokens``."""
    shards: list[list[int]] = []
    current: list[int] = []
    for doc in docs:
        if len(doc) > max_tokens:
            raise PgolfError(f"a document of {len(doc)} tokens exceeds the shard size {max_tokens}")
        if current and len(current) + len(doc) > max_tokens:
            shards.append(current)
            current = []
        current.extend(doc)
    if current:
        shards.append(current)
    return shards


def build_dataset(
    texts: Sequence[str],
    sp: Any,
    out_dir: Path,
    *,
    transform: str | None,
    val_fraction: float = 0.1,
    max_shard_tokens: int = 2_000_000,
) -> list[Path]:
    """Write val (+ sidecar) and train shards for ``texts`` into ``out_dir``; return the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    n_val = math.floor(len(texts) * val_fraction)
    encoded = [encode_doc(sp, t, transform) for t in texts]
    val = encoded[:n_val]
    written = [
        write_shard(out_dir / f"{FMT.val_prefix}000000{FMT.suffix}", _concat(d.tokens for d in val)).path
    ]
    if transform is not None:
        counts = _concat(d.byte_counts or [] for d in val)
        written.append(write_shard(out_dir / f"{FMT.val_bytes_prefix}000000{FMT.suffix}", counts).path)
    for i, shard in enumerate(pack_whole_docs((d.tokens for d in encoded[n_val:]), max_shard_tokens)):
        written.append(write_shard(out_dir / f"{FMT.train_prefix}{i:06d}{FMT.suffix}", shard).path)
    return written


def _concat(parts: Iterable[list[int]]) -> np.ndarray:
    out: list[int] = []
    for p in parts:
        out.extend(p)
    return np.asarray(out, dtype=np.int64)
