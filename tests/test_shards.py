"""Shard files: the format of DESIGN §2 and every way a file can be wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.rules import RULES
from harness.shards import (
    ShardError,
    list_dataset,
    read_shard,
    validate_dataset_dir,
    validate_shard,
    write_shard,
)

FMT = RULES.shards


def header(magic: int = FMT.magic, version: int = FMT.version, n: int = 0) -> bytes:
    h = np.zeros(FMT.header_ints, dtype="<i4")
    h[:3] = magic, version, n
    return h.tobytes()


def test_write_then_read_round_trips_little_endian(tmp_path: Path) -> None:
    path = tmp_path / "fineweb_train_000000.bin"
    write_shard(path, [1, 2, 65535, 300])
    raw = path.read_bytes()
    assert len(raw) == FMT.header_bytes + 4 * 2
    assert np.frombuffer(raw[:12], "<i4").tolist() == [FMT.magic, FMT.version, 4]
    assert raw[FMT.header_bytes :] == bytes([1, 0, 2, 0, 255, 255, 44, 1])
    assert read_shard(path).tolist() == [1, 2, 65535, 300]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (header(magic=123, n=0), "bad magic 123, expected 20240520"),
        (header(version=2, n=0), "unsupported version 2, expected 1"),
        (header(n=3) + b"\x01\x00" * 2, "truncated: header says 3 tokens"),
        (header(n=1) + b"\x01\x00" * 2, "header says 1 tokens (1026 bytes) but the file has 1028 bytes"),
        (header()[:100], "truncated header (100 bytes"),
    ],
)
def test_each_corruption_is_a_one_line_error_naming_the_file(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "fineweb_val_000000.bin"
    path.write_bytes(content)
    with pytest.raises(ShardError) as err:
        validate_shard(path)
    text = str(err.value)
    assert str(path) in text and message in text and "\n" not in text


def test_token_id_at_or_above_vocab_is_rejected_with_its_position(tmp_path: Path) -> None:
    path = write_shard(tmp_path / "fineweb_train_000000.bin", [1, 5, 8191, 8192, 7]).path
    assert validate_shard(path, vocab_size=8193).tokens == 5
    with pytest.raises(ShardError, match=r"token id 8192 at position 3 is >= vocab size 8192"):
        validate_shard(path, vocab_size=8192)


def test_dataset_dir_needs_a_sidecar_per_val_shard_of_matching_length(tmp_path: Path) -> None:
    write_shard(tmp_path / "fineweb_train_000000.bin", [1, 2, 3])
    write_shard(tmp_path / "fineweb_val_000000.bin", [1, 4, 5])
    with pytest.raises(ShardError, match=r"byte sidecar fineweb_val_bytes_000000\.bin missing"):
        validate_dataset_dir(tmp_path, vocab_size=8192, require_sidecar=True)
    write_shard(tmp_path / "fineweb_val_bytes_000000.bin", [0, 3])
    with pytest.raises(ShardError, match="sidecar has 2 entries, expected 3"):
        validate_dataset_dir(tmp_path, vocab_size=8192, require_sidecar=True)
    write_shard(tmp_path / "fineweb_val_bytes_000000.bin", [0, 3, 4])
    files = validate_dataset_dir(tmp_path, vocab_size=8192, require_sidecar=True)
    assert [p.name for p in files.train] == ["fineweb_train_000000.bin"]
    assert [p.name for p in files.val_bytes] == ["fineweb_val_bytes_000000.bin"]


def test_dataset_listing_keeps_the_frozen_name_order_and_ignores_other_files(tmp_path: Path) -> None:
    for i in (2, 0, 1):
        write_shard(tmp_path / f"fineweb_train_{i:06d}.bin", [1])
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "fineweb_train_x.bin").write_text("x")
    assert [p.name for p in list_dataset(tmp_path).train] == [f"fineweb_train_{i:06d}.bin" for i in range(3)]


def test_the_shipped_proxy_shards_validate(proxy_dir: Path) -> None:
    files = validate_dataset_dir(proxy_dir / "sp8192_caseops", vocab_size=8192, require_sidecar=True)
    assert len(files.train) == 2 and len(files.val) == 1
    plain = validate_dataset_dir(proxy_dir / "sp8192", vocab_size=8192)
    assert plain.val_bytes == ()
