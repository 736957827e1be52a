"""Token shards: read (memory-mapped), write and validate (DESIGN §2).

A shard is a header of ``RULES.shards.header_ints`` little-endian int32
(magic, version, token count, zeros) followed by that many little-endian
uint16 token ids. Validation errors are :class:`ShardError`, one line each,
naming the file and what was expected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from harness.errors import PgolfError
from harness.rules import RULES

FMT = RULES.shards


class ShardError(PgolfError):
    """A shard file that does not match the format or its dataset."""


@dataclass(frozen=True)
class ShardInfo:
    path: Path
    tokens: int
    max_token: int | None = None


def _read_header(path: Path) -> npt.NDArray[np.int32]:
    try:
        with path.open("rb") as f:
            raw = f.read(FMT.header_bytes)
    except FileNotFoundError:
        raise ShardError(f"{path}: not found") from None
    except IsADirectoryError:
        raise ShardError(f"{path}: is a directory, expected a shard file") from None
    if len(raw) < FMT.header_bytes:
        raise ShardError(
            f"{path}: truncated header ({len(raw)} bytes, expected a {FMT.header_bytes}-byte header)"
        )
    return np.frombuffer(raw, dtype=FMT.header_int_dtype).astype(np.int32)


def read_header(path: Path) -> int:
    """Check magic, version and size against the header; return the token count."""
    path = Path(path)
    header = _read_header(path)
    if int(header[0]) != FMT.magic:
        raise ShardError(f"{path}: bad magic {int(header[0])}, expected {FMT.magic}")
    if int(header[1]) != FMT.version:
        raise ShardError(f"{path}: unsupported version {int(header[1])}, expected {FMT.version}")
    n_tokens = int(header[2])
    if n_tokens < 0:
        raise ShardError(f"{path}: negative token count {n_tokens} in header")
    expected = FMT.header_bytes + n_tokens * FMT.token_bytes
    actual = path.stat().st_size
    if actual < expected:
        raise ShardError(
            f"{path}: truncated: header says {n_tokens} tokens ({expected} bytes), file has {actual} bytes"
        )
    if actual > expected:
        raise ShardError(
            f"{path}: header says {n_tokens} tokens ({expected} bytes) but the file has {actual} bytes"
        )
    return n_tokens


def read_shard(path: Path) -> np.memmap:
    """The shard's tokens as a read-only uint16 memory map (header checked first)."""
    path = Path(path)
    n_tokens = read_header(path)
    return np.memmap(path, dtype=FMT.token_dtype, mode="r", offset=FMT.header_bytes, shape=(n_tokens,))


def write_shard(path: Path, tokens: Iterable[int] | npt.NDArray[np.integer]) -> ShardInfo:
    """Write tokens as a shard; ids must fit uint16. Written atomically."""
    path = Path(path)
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        raise ShardError(f"{path}: tokens must be one-dimensional, got shape {arr.shape}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= FMT.max_vocab):
        raise ShardError(f"{path}: token ids must be in [0, {FMT.max_vocab}), got {arr.min()}..{arr.max()}")
    header = np.zeros(FMT.header_ints, dtype=FMT.header_int_dtype)
    header[0], header[1], header[2] = FMT.magic, FMT.version, arr.size
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(header.tobytes())
        f.write(arr.astype(FMT.token_dtype).tobytes())
    tmp.replace(path)
    return ShardInfo(path=path, tokens=int(arr.size), max_token=int(arr.max()) if arr.size else None)


def validate_shard(path: Path, vocab_size: int | None = None) -> ShardInfo:
    """Full check: header, size and (when ``vocab_size`` is given) every token id < vocab_size."""
    path = Path(path)
    tokens = read_shard(path)
    max_token = int(tokens.max()) if tokens.size else None
    if vocab_size is not None and max_token is not None and max_token >= vocab_size:
        first_bad = int(np.argmax(tokens >= vocab_size))
        raise ShardError(
            f"{path}: token id {int(tokens[first_bad])} at position {first_bad} is >= vocab size {vocab_size}"
        )
    return ShardInfo(path=path, tokens=int(tokens.size), max_token=max_token)


def shard_kind(name: str) -> str | None:
    """'train', 'val' or 'val_bytes' for a conforming shard file name, else None."""
    if not name.endswith(FMT.suffix):
        return None
    # val_bytes first: its prefix starts with the val prefix.
    for kind, prefix in (
        ("val_bytes", FMT.val_bytes_prefix),
        ("val", FMT.val_prefix),
        ("train", FMT.train_prefix),
    ):
        if name.startswith(prefix) and name[len(prefix) : -len(FMT.suffix)].isdigit():
            return kind
    return None


def sidecar_name(val_name: str) -> str:
    """``fineweb_val_000003.bin`` -> ``fineweb_val_bytes_000003.bin``."""
    return FMT.val_bytes_prefix + val_name[len(FMT.val_prefix) :]


@dataclass(frozen=True)
class DatasetFiles:
    train: tuple[Path, ...]
    val: tuple[Path, ...]
    val_bytes: tuple[Path, ...]


def list_dataset(directory: Path) -> DatasetFiles:
    """Shard files of a dataset directory, each kind in name order (the frozen order)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ShardError(f"{directory}: not a directory, expected a folder of shard files")
    found: dict[str, list[Path]] = {"train": [], "val": [], "val_bytes": []}
    for p in sorted(directory.iterdir()):
        kind = shard_kind(p.name)
        if kind is not None:
            found[kind].append(p)
    return DatasetFiles(tuple(found["train"]), tuple(found["val"]), tuple(found["val_bytes"]))


def validate_dataset_dir(
    directory: Path,
    vocab_size: int | None = None,
    require_sidecar: bool = False,
    require_train: bool = True,
    require_val: bool = True,
) -> DatasetFiles:
    """Validate every shard of a dataset directory and the val/sidecar pairing."""
    files = list_dataset(directory)
    if require_train and not files.train:
        raise ShardError(f"{directory}: no {FMT.train_prefix}*{FMT.suffix} shards found")
    if require_val and not files.val:
        raise ShardError(f"{directory}: no {FMT.val_prefix}*{FMT.suffix} shards found")
    for p in files.train:
        validate_shard(p, vocab_size)
    sidecars = {p.name: p for p in files.val_bytes}
    for p in files.val:
        info = validate_shard(p, vocab_size)
        side = sidecars.pop(sidecar_name(p.name), None)
        if side is None:
            if require_sidecar:
                raise ShardError(f"{p}: byte sidecar {sidecar_name(p.name)} missing (CaseOps val needs one)")
            continue
        side_tokens = read_header(side)
        if side_tokens != info.tokens:
            raise ShardError(
                f"{side}: sidecar has {side_tokens} entries, expected {info.tokens} (one per token of {p.name})"
            )
    for orphan in sidecars.values():
        raise ShardError(f"{orphan}: byte sidecar without its val shard {FMT.val_prefix}...{FMT.suffix}")
    return files
