"""Bits per byte: the challenge's metric, and the two ways to count a token's bytes (DESIGN §2).

val_bpb = (sum of token NLL in nats) / ln 2 / (UTF-8 bytes of the original text).
Bytes come from the val byte sidecar when there is one (CaseOps: always), else
from the tokenizer's pieces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.errors import PgolfError

SPACE_MARK = "\u2581"  # SentencePiece's "▁"


def bits_per_byte(nll_sum_nats: float, n_bytes: int) -> float:
    """Summed NLL (nats) over a text of ``n_bytes`` UTF-8 bytes, in bits per byte."""
    if n_bytes <= 0:
        raise PgolfError(f"byte count must be positive, got {n_bytes}")
    return nll_sum_nats / math.log(2) / n_bytes


def loss_to_bpb(mean_loss_nats: float, n_tokens: int, n_bytes: int) -> float:
    """Mean per-token loss over ``n_tokens`` scored tokens -> bits per byte."""
    return bits_per_byte(mean_loss_nats * n_tokens, n_bytes)


@dataclass(frozen=True)
class PieceTable:
    """Per vocabulary id: bytes of the piece without its leading ▁, whether it had one,
    and whether the id is a boundary (control / unknown) token after which a space is not counted."""

    base_bytes: npt.NDArray[np.int64]
    leading_space: npt.NDArray[np.bool_]
    is_boundary: npt.NDArray[np.bool_]

    @classmethod
    def from_sentencepiece(cls, sp: Any) -> PieceTable:
        n = int(sp.get_piece_size())
        base = np.zeros(n, dtype=np.int64)
        space = np.zeros(n, dtype=np.bool_)
        boundary = np.zeros(n, dtype=np.bool_)
        for i in range(n):
            if sp.is_control(i) or sp.is_unknown(i):
                boundary[i] = True
                continue
            if sp.is_byte(i):
                base[i] = 1
                continue
            piece: str = sp.id_to_piece(i)
            if piece.startswith(SPACE_MARK):
                space[i] = True
                piece = piece[1:]
            base[i] = len(piece.encode("utf-8"))
        return cls(base, space, boundary)

    def token_bytes(
        self, tokens: npt.NDArray[np.integer], prev_token: int | None = None
    ) -> npt.NDArray[np.int64]:
        """Bytes per token of a token stream. ``prev_token`` is the token before ``tokens[0]``
        (None: the stream starts a document, as after BOS)."""
        ids = np.asarray(tokens, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.base_bytes.size):
            raise PgolfError(f"token id out of range for a vocabulary of {self.base_bytes.size}")
        prev = np.empty_like(ids)
        if ids.size:
            prev[0] = -1 if prev_token is None else prev_token
            prev[1:] = ids[:-1]
        after_boundary = np.where(prev < 0, True, self.is_boundary[np.maximum(prev, 0)])
        return self.base_bytes[ids] + (self.leading_space[ids] & ~after_boundary)


def token_bytes_from_pieces(sp: Any, tokens: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
    """The tokenizer rule: bytes of each token of ``tokens`` under SentencePiece model ``sp``."""
    return PieceTable.from_sentencepiece(sp).token_bytes(tokens)


def token_bytes_from_sidecar(sidecar: npt.NDArray[np.integer], n_tokens: int) -> npt.NDArray[np.int64]:
    """The sidecar rule: the sidecar already holds each token's original byte count."""
    if len(sidecar) != n_tokens:
        raise PgolfError(f"byte sidecar has {len(sidecar)} entries, expected {n_tokens} (one per token)")
    return np.asarray(sidecar, dtype=np.int64)
