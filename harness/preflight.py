"""Everything `pgolf run` can check before the first GPU second is spent.

A damaged shard found by the trainer costs a whole train phase per seed and names a
staged copy that is gone after the run. Here every shard the run will use is read
once, in parallel, up front: header, size, every token id against the tokenizer's
vocabulary, and each val shard's byte sidecar (one entry per token, BOS entries 0).
The submission's code must compile. The first problem is a :class:`PreflightError`
naming the real file.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import PgolfError
from harness.rules import RULES
from harness.shards import ShardError, list_dataset, read_shard, sidecar_name, validate_shard

FMT = RULES.shards
CODE_SUFFIXES = (".py",)
MAX_WORKERS = 8  # page-cache or NVMe reads: a few threads saturate either


class PreflightError(PgolfError):
    """An input that would make a phase fail: refused before any phase starts."""


@dataclass(frozen=True)
class PreflightReport:
    code_files: int
    shards: int
    tokens: int
    vocab_size: int | None
    sidecars: int
    seconds: float

    def summary(self) -> str:
        vocab = f"ids < {self.vocab_size}" if self.vocab_size else "no tokenizer: ids not range-checked"
        return (
            f"preflight: {self.code_files} code file(s) compile; {self.shards} shard(s), "
            f"{self.tokens:,} tokens ({vocab}), {self.sidecars} byte sidecar(s) checked in {self.seconds:.1f} s"
        )


def check_code(submission_dir: Path) -> int:
    """Every ``*.py`` file of the submission compiles; returns how many there are."""
    entry = submission_dir / RULES.code_filename
    if not entry.is_file():
        raise PreflightError(f"{entry}: not found, expected the submission's {RULES.code_filename}")
    files = [
        p
        for p in sorted(submission_dir.rglob("*"))
        if p.suffix in CODE_SUFFIXES
        and p.is_file()
        and not any(
            part.startswith(".") or part == "__pycache__" for part in p.relative_to(submission_dir).parts
        )
    ]
    for p in files:
        try:
            compile(p.read_bytes(), str(p), "exec", dont_inherit=True)
        except SyntaxError as exc:
            raise PreflightError(
                f"{p}:{exc.lineno}: {type(exc).__name__}: {exc.msg}; expected Python source that compiles"
            ) from None
        except ValueError as exc:  # e.g. a NUL byte
            raise PreflightError(f"{p}: {exc}; expected Python source") from None
    return len(files)


def tokenizer_vocab(tokenizer: Path) -> int:
    import sentencepiece as spm

    try:
        sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
    except (OSError, RuntimeError) as exc:
        raise PreflightError(
            f"{tokenizer}: not a SentencePiece model ({str(exc).splitlines()[0] if str(exc) else 'unreadable'})"
        ) from None
    return int(sp.vocab_size())


def _check_val(val: Path, sidecar: Path | None, vocab: int | None) -> tuple[int, int]:
    info = validate_shard(val, vocab)
    if sidecar is None:
        return info.tokens, 0
    side = read_shard(sidecar)
    if side.size != info.tokens:
        raise PreflightError(
            f"{sidecar}: sidecar has {side.size} entries, expected {info.tokens} (one per token of {val.name})"
        )
    tokens = read_shard(val)
    bos = np.flatnonzero(tokens == FMT.bos_id)
    bad = bos[side[bos] != 0]
    if bad.size:
        i = int(bad[0])
        raise PreflightError(
            f"{sidecar}: entry {i} is {int(side[i])} for a BOS token of {val.name}, expected 0 "
            "(BOS has no bytes in the original text)"
        )
    return info.tokens, 1


def check_data(
    data_dir: Path, tokenizer: Path | None, *, need_train: bool = True, need_val: bool = True
) -> tuple[int, int, int | None, int]:
    """Validate every shard of ``data_dir``: (shards, tokens, vocab size, sidecars)."""
    try:
        files = list_dataset(data_dir)
    except ShardError as exc:
        raise PreflightError(str(exc)) from None
    if need_train and not files.train:
        raise PreflightError(f"{data_dir}: no {FMT.train_prefix}*{FMT.suffix} shards found")
    if need_val and not files.val:
        raise PreflightError(f"{data_dir}: no {FMT.val_prefix}*{FMT.suffix} shards found")
    vocab = tokenizer_vocab(tokenizer) if tokenizer is not None else None
    sidecars = {p.name: p for p in files.val_bytes}
    pairs: list[tuple[Path, Path | None]] = [(v, sidecars.pop(sidecar_name(v.name), None)) for v in files.val]
    if sidecars:
        orphan = next(iter(sidecars.values()))
        raise PreflightError(
            f"{orphan}: byte sidecar without its val shard {orphan.name.replace('bytes_', '')}"
        )
    if tokenizer is not None and "caseops" in tokenizer.name:
        missing = next((v for v, s in pairs if s is None), None)
        if missing is not None:
            raise PreflightError(
                f"{missing}: byte sidecar {sidecar_name(missing.name)} missing "
                "(CaseOps val_bpb is counted from the sidecar)"
            )
    workers = max(1, min(MAX_WORKERS, os.cpu_count() or 1))
    try:
        with ThreadPoolExecutor(workers) as pool:
            train = list(pool.map(lambda p: validate_shard(p, vocab).tokens, files.train))
            val = list(pool.map(lambda vs: _check_val(vs[0], vs[1], vocab), pairs))
    except ShardError as exc:
        raise PreflightError(str(exc)) from None
    shards = len(files.train) + len(files.val) + sum(s for _, s in val)
    return shards, sum(train) + sum(t for t, _ in val), vocab, sum(s for _, s in val)


def preflight(
    submission_dir: Path, data_dir: Path, tokenizer: Path | None, *, native: bool = True
) -> PreflightReport:
    """Refuse (PreflightError, one line, the real path) whatever would make a phase fail."""
    t0 = time.monotonic()
    n_code = check_code(submission_dir)
    shards, tokens, vocab, sidecars = check_data(data_dir, tokenizer, need_train=native, need_val=native)
    return PreflightReport(n_code, shards, tokens, vocab, sidecars, time.monotonic() - t0)
