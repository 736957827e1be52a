"""Bits per byte and the two byte-count paths of DESIGN §2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from harness.bpb import (
    PieceTable,
    bits_per_byte,
    loss_to_bpb,
    token_bytes_from_pieces,
    token_bytes_from_sidecar,
)
from harness.errors import PgolfError
from harness.shards import read_shard


def test_bpb_is_nats_over_ln2_over_bytes() -> None:
    assert bits_per_byte(math.log(2) * 1000, 1000) == pytest.approx(1.0)
    assert bits_per_byte(2.0 * 500, 2000) == pytest.approx(0.5 / math.log(2))
    assert loss_to_bpb(2.0, 500, 2000) == pytest.approx(bits_per_byte(1000.0, 2000))
    with pytest.raises(PgolfError, match="byte count must be positive"):
        bits_per_byte(1.0, 0)


def _sp(tokenizers_dir: Path, name: str):  # type: ignore[no-untyped-def]
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(tokenizers_dir / name))


def test_piece_rule_counts_leading_space_except_after_a_boundary(tokenizers_dir: Path) -> None:
    sp = _sp(tokenizers_dir, "fineweb_8192_bpe.model")
    ids = sp.encode("hello world, café")
    # As the first token of a document (after BOS) the leading space is not a byte of the text.
    with_bos = np.asarray([1, *ids])
    counts = token_bytes_from_pieces(sp, with_bos)
    assert counts[0] == 0
    assert counts.sum() == len("hello world, café".encode())
    table = PieceTable.from_sentencepiece(sp)
    byte_piece = sp.piece_to_id("<0xC3>")
    assert table.base_bytes[byte_piece] == 1 and not table.leading_space[byte_piece]


def test_piece_rule_on_the_plain_proxy_val_split(proxy_dir: Path, tokenizers_dir: Path) -> None:
    """Summed piece bytes = the manifest's per-piece count = the UTF-8 length of the decoded text.

    The tokenizer normalises (NFKC, collapsed whitespace), so this is less than the
    original text's length: that is why CaseOps needs its sidecar.
    """
    manifest = json.loads((proxy_dir / "sp8192" / "manifest.json").read_text())
    sp = _sp(tokenizers_dir, manifest["tokenizer"]["file"])
    tokens = np.asarray(read_shard(proxy_dir / "sp8192" / "fineweb_val_000000.bin"))
    counts = token_bytes_from_pieces(sp, tokens)
    assert int(counts.sum()) == manifest["val"]["piece_table_bytes"]
    docs = np.split(tokens, np.nonzero(tokens == 1)[0][1:])
    decoded = sum(len(sp.decode(d[1:].tolist()).encode("utf-8")) for d in docs)
    assert int(counts.sum()) == decoded
    assert int(counts.sum()) < manifest["val"]["original_bytes"]


def test_sidecar_rule_sums_to_the_original_val_bytes(proxy_dir: Path) -> None:
    manifest = json.loads((proxy_dir / "sp8192_caseops" / "manifest.json").read_text())
    tokens = read_shard(proxy_dir / "sp8192_caseops" / "fineweb_val_000000.bin")
    sidecar = read_shard(proxy_dir / "sp8192_caseops" / "fineweb_val_bytes_000000.bin")
    counts = token_bytes_from_sidecar(sidecar, len(tokens))
    assert int(counts.sum()) == manifest["val"]["original_bytes"]
    assert (counts[np.asarray(tokens) == 1] == 0).all()
    with pytest.raises(PgolfError, match="expected 3"):
        token_bytes_from_sidecar(sidecar[:2], 3)
