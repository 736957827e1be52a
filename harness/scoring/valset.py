"""The validation stream as the harness reads it (DESIGN §2), checked against the fetch lock.

Targets are the official metric's: over the val shards concatenated in name order, every
position after the first is a target (BOS included), worth its byte count from the sidecar,
or from the tokenizer rule where there is none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.bpb import PieceTable
from harness.errors import PgolfError
from harness.fingerprint import file_sha256
from harness.rules import RULES
from harness.shards import ShardError, list_dataset, read_shard, sidecar_name


class ValSetError(PgolfError):
    """Val files that are missing, malformed or not the ones the lock file names."""


@dataclass(frozen=True)
class ValSet:
    tokens: npt.NDArray[np.uint16]  # the whole stream; position 0 is context only
    target_bytes: npt.NDArray[np.uint16]  # byte count of each position (position 0: unused)
    doc_starts: npt.NDArray[np.int64]  # positions > 0 holding BOS: where documents begin
    byte_source: str  # "sidecar" or "tokenizer"
    files: tuple[dict[str, Any], ...]  # {name, sha256, tokens, lock}
    lock: str  # what the files were checked against

    @property
    def n_targets(self) -> int:
        return max(0, int(self.tokens.size) - 1)

    @property
    def n_bytes(self) -> int:
        return int(self.target_bytes[1:].sum(dtype=np.int64))


def _lock_digests(lock_path: Path | None) -> tuple[dict[str, str], str]:
    """File name -> sha256 as the fetch lock lists them; and a word on what the lock was."""
    if lock_path is None:
        return {}, "no lock file: sha256 recorded, not compared"
    try:
        lock = json.loads(lock_path.read_text("utf-8"))
        entries = lock["files"]
        digests = {Path(e["path"]).name: str(e["sha256"]) for e in entries}
    except (OSError, ValueError, KeyError, TypeError):
        return {}, f"{lock_path.name} lists no files: sha256 recorded, not compared"
    return digests, f"checked against {lock_path.name}"


def load_valset(
    data_dir: Path, tokenizer_path: Path | None, lock_path: Path | None, token_limit: int = 0
) -> ValSet:
    """Read and check the val split of ``data_dir``. ``token_limit`` > 0 keeps that many targets
    (rehearsals and tests only; recorded in the result)."""
    try:
        files = list_dataset(data_dir)
    except ShardError as exc:
        raise ValSetError(str(exc)) from None
    if not files.val:
        raise ValSetError(f"{data_dir}: no {RULES.shards.val_prefix}*{RULES.shards.suffix} shards found")
    digests, lock_word = _lock_digests(lock_path)
    sidecars = {p.name: p for p in files.val_bytes}
    if sidecars and len(sidecars) != len(files.val):
        raise ValSetError(f"{data_dir}: {len(sidecars)} byte sidecars for {len(files.val)} val shards")
    toks: list[npt.NDArray[np.uint16]] = []
    sides: list[npt.NDArray[np.uint16]] = []
    seen: list[dict[str, Any]] = []
    for p in files.val:
        paths = [p] + ([sidecars[sidecar_name(p.name)]] if sidecars else [])
        for f in paths:
            digest = file_sha256(f)
            want = digests.get(f.name)
            if want is not None and want != digest:
                raise ValSetError(
                    f"{f}: sha256 {digest} differs from the lock's {want} (corrupt or replaced)"
                )
            seen.append({"name": f.name, "sha256": digest, "in_lock": want is not None})
        try:
            t = np.asarray(read_shard(p))
            toks.append(t)
            if sidecars:
                s = np.asarray(read_shard(paths[1]))
                if s.size != t.size:
                    raise ValSetError(f"{paths[1]}: {s.size} byte counts for {t.size} tokens of {p.name}")
                sides.append(s)
        except ShardError as exc:
            raise ValSetError(str(exc)) from None
    tokens = np.concatenate(toks).astype(np.uint16)
    if sidecars:
        nbytes = np.concatenate(sides).astype(np.uint16)
        source = "sidecar"
    else:
        if tokenizer_path is None:
            raise ValSetError(
                f"{data_dir}: val shards without byte sidecars need the tokenizer (--tokenizer)"
            )
        import sentencepiece as spm

        table = PieceTable.from_sentencepiece(spm.SentencePieceProcessor(model_file=str(tokenizer_path)))
        nbytes = table.token_bytes(tokens).astype(np.uint16)
        source = "tokenizer"
    if token_limit > 0:
        tokens, nbytes = tokens[: token_limit + 1], nbytes[: token_limit + 1]
    if tokens.size < 2:
        raise ValSetError(f"{data_dir}: the val split holds {tokens.size} token(s), expected at least 2")
    starts = np.flatnonzero(tokens == RULES.shards.bos_id)
    return ValSet(
        tokens=tokens,
        target_bytes=nbytes,
        doc_starts=starts[starts > 0].astype(np.int64),
        byte_source=source,
        files=tuple(seen),
        lock=lock_word,
    )
