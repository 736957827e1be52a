"""The CaseOps transform (``lossless_caps_caseops_v1``) and its byte accounting.

Case is moved out of words into private-use control characters so the
tokenizer sees lowercase words only; the transform is exactly invertible.
Over maximal runs of ASCII letters:

- all lowercase: unchanged;
- all uppercase, length >= 2: ALLCAPS + lowercase;
- capitalised (incl. a single capital): TITLE + lowercase;
- other mixed case: TITLE if the first letter is upper, then each later
  upper letter preceded by CAPNEXT, all lowercased.

A literal control character in the input becomes ESC + itself.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import numpy.typing as npt

TITLE = "\ue001"
ALLCAPS = "\ue002"
CAPNEXT = "\ue003"
ESC = "\ue004"
CONTROLS = frozenset((TITLE, ALLCAPS, CAPNEXT, ESC))

_WORD_OR_CONTROL = re.compile(r"[A-Za-z]+|[\ue001-\ue004]")


def _encode_word(word: str) -> str:
    if word.islower():
        return word
    if word.isupper():
        return (ALLCAPS if len(word) >= 2 else TITLE) + word.lower()
    if word[0].isupper() and word[1:].islower():
        return TITLE + word.lower()
    out = [TITLE + word[0].lower() if word[0].isupper() else word[0]]
    for ch in word[1:]:
        out.append(CAPNEXT + ch.lower() if ch.isupper() else ch)
    return "".join(out)


def encode(text: str) -> str:
    """Apply CaseOps to ``text``."""

    def replace(m: re.Match[str]) -> str:
        s = m.group(0)
        return ESC + s if s in CONTROLS else _encode_word(s)

    return _WORD_OR_CONTROL.sub(replace, text)


_DECODE_TOKEN = re.compile(r"\ue004[\s\S]|\ue002[a-z]*|\ue001[a-z]|\ue003[a-z]")


def decode(text: str) -> str:
    """Invert :func:`encode` (a control that :func:`encode` could not have written passes through)."""

    def replace(m: re.Match[str]) -> str:
        head, rest = m.group(0)[0], m.group(0)[1:]
        # ESC: the escaped character itself; ALLCAPS: the run; TITLE/CAPNEXT: one letter.
        return rest if head == ESC else rest.upper()

    return _DECODE_TOKEN.sub(replace, text)


def original_byte_weights(transformed: str) -> npt.NDArray[np.int64]:
    """For each UTF-8 byte of ``transformed``, how many bytes of the original text it stands for.

    Controls that :func:`encode` inserted count 0; an escaped literal control and
    every other character count their own UTF-8 length (put on their first byte,
    so any span that holds the whole character counts it once).
    """
    weights: list[int] = []
    escaped = False
    for ch in transformed:
        n = len(ch.encode("utf-8"))
        inserted = ch in CONTROLS and not escaped
        escaped = inserted and ch == ESC
        weights.append(0 if inserted else n)
        weights.extend([0] * (n - 1))
    return np.asarray(weights, dtype=np.int64)


def encode_with_byte_counts(sp: Any, text: str) -> tuple[list[int], list[int]]:
    """Token ids of ``encode(text)`` under SentencePiece model ``sp`` and, per token,
    the number of bytes of the ORIGINAL ``text`` it stands for (the val sidecar's rule).

    The counts come from the tokenizer's surface spans, so text that its
    normaliser folds away (collapsed whitespace, NFKC) is still counted, in the
    piece whose span covers it; bytes outside every span (leading or trailing
    whitespace) go to the first / last piece. Per document they sum to
    ``len(text.encode())``.
    """
    transformed = encode(text)
    cumulative = np.concatenate([[0], np.cumsum(original_byte_weights(transformed))])
    pieces = sp.encode(transformed, out_type="proto").pieces
    ids = [int(p.id) for p in pieces]
    if not pieces:
        return ids, []
    bounds = [int(p.begin) for p in pieces] + [len(transformed.encode("utf-8"))]
    bounds[0] = 0
    counts = [int(cumulative[bounds[i + 1]] - cumulative[bounds[i]]) for i in range(len(pieces))]
    return ids, counts
