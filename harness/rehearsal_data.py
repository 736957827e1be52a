"""The data `pgolf rehearse` runs on, shipped inside the package (no download).

A cut of the dev proxy corpus (CaseOps variant): whole documents from the start of
its first train shard, the first whole documents of its val shard with the
matching slice of the byte sidecar, and the CaseOps tokenizer. ``build`` makes it
from the proxy corpus (reproducibly: the cut is a prefix of whole documents);
``embedded`` finds and verifies the shipped copy.

    python -m harness.rehearsal_data build --proxy ../shared/data/proxy --tokenizers ../shared/tokenizers
    python -m harness.rehearsal_data path     # where the shipped copy is (a rehearsal's data dir)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.errors import PgolfError
from harness.fingerprint import file_sha256
from harness.rules import RULES
from harness.shards import read_shard, sidecar_name, write_shard

FMT = RULES.shards
VARIANT = "sp8192_caseops"
TOKENIZER = "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model"
VOCAB_SIZE = 8192
TRAIN_TOKENS = 1_000_000  # enough for a few minutes of a tiny CPU model
VAL_TOKENS = 100_000  # the eval phase of a tiny model on a laptop CPU stays within seconds
MANIFEST = "manifest.json"
PACKAGE = "harness.data.rehearsal"


def _doc_prefix(tokens: npt.NDArray[np.uint16], max_tokens: int) -> int:
    """Length of the longest prefix of whole documents (each starts with BOS) within ``max_tokens``."""
    starts = np.flatnonzero(tokens == FMT.bos_id)
    if starts.size == 0 or starts[0] != 0:
        raise PgolfError(f"shard does not start with BOS ({FMT.bos_id}): not whole documents")
    ends = np.append(starts[1:], tokens.size)
    fits = ends[ends <= max_tokens]
    if fits.size == 0:
        raise PgolfError(f"the first document is longer than {max_tokens} tokens")
    return int(fits[-1])


def unigram_bpb(train: npt.NDArray[np.uint16], val: npt.NDArray[np.uint16], val_bytes: int) -> float:
    """Add-one-smoothed unigram fit on train's non-BOS tokens, its bits on val's non-BOS tokens per byte."""
    t = train[train != FMT.bos_id].astype(np.int64)
    v = val[val != FMT.bos_id].astype(np.int64)
    counts = np.bincount(t, minlength=VOCAB_SIZE).astype(np.float64) + 1.0
    logp = np.log2(counts / counts.sum())
    return float(-logp[v].sum() / val_bytes)


def build(proxy: Path, tokenizers: Path, out: Path) -> dict[str, Any]:
    src = proxy / VARIANT
    out.mkdir(parents=True, exist_ok=True)
    train_src = src / f"{FMT.train_prefix}000000{FMT.suffix}"
    val_src = src / f"{FMT.val_prefix}000000{FMT.suffix}"
    side_src = src / sidecar_name(val_src.name)
    train = np.asarray(read_shard(train_src))
    val = np.asarray(read_shard(val_src))
    side = np.asarray(read_shard(side_src))
    n_train = _doc_prefix(train, TRAIN_TOKENS)
    n_val = _doc_prefix(val, VAL_TOKENS)
    files = {
        train_src.name: (train[:n_train], train_src),
        val_src.name: (val[:n_val], val_src),
        side_src.name: (side[:n_val], side_src),
    }
    for name, (tokens, _) in files.items():
        write_shard(out / name, tokens)
    tok = out / TOKENIZER
    tok.write_bytes((tokenizers / TOKENIZER).read_bytes())
    val_bytes = int(side[:n_val].astype(np.int64).sum())
    manifest: dict[str, Any] = {
        "variant": VARIANT,
        "source": "dev proxy corpus (see README.md): whole-document prefixes of its shards",
        "vocab_size": VOCAB_SIZE,
        "files": {
            name: {
                "sha256": file_sha256(out / name),
                "bytes": (out / name).stat().st_size,
                "tokens": int(tokens.size),
                "docs": int((tokens == FMT.bos_id).sum()) if "bytes" not in name else None,
                "cut_from": f"{VARIANT}/{src_path.name}",
                "source_tokens": int(read_shard(src_path).size),
                "source_sha256": file_sha256(src_path),
            }
            for name, (tokens, src_path) in files.items()
        },
        "tokenizer": {"file": TOKENIZER, "sha256": file_sha256(tok), "bytes": tok.stat().st_size},
        "val": {"tokens": n_val, "docs": int((val[:n_val] == FMT.bos_id).sum()), "original_bytes": val_bytes},
        "train": {"tokens": n_train, "docs": int((train[:n_train] == FMT.bos_id).sum())},
        "unigram_bpb": round(unigram_bpb(train[:n_train], val[:n_val], val_bytes), 6),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    return manifest


@dataclass(frozen=True)
class Embedded:
    data_dir: Path
    tokenizer: Path
    manifest: dict[str, Any]

    @property
    def unigram_bpb(self) -> float:
        return float(self.manifest["unigram_bpb"])


def embedded(verify: bool = True) -> Embedded:
    """The shipped rehearsal data; with ``verify``, every file's sha256 is checked."""
    root = Path(str(resources.files(PACKAGE)))
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise PgolfError(f"{mpath}: rehearsal data missing from the installed package (reinstall pgolf)")
    manifest = json.loads(mpath.read_text("utf-8"))
    if verify:
        expect = {
            **{n: f["sha256"] for n, f in manifest["files"].items()},
            TOKENIZER: manifest["tokenizer"]["sha256"],
        }
        for name, sha in expect.items():
            p = root / name
            if not p.is_file():
                raise PgolfError(f"{p}: rehearsal data file missing (reinstall pgolf)")
            if file_sha256(p) != sha:
                raise PgolfError(f"{p}: sha256 differs from {mpath} (expected {sha}); reinstall pgolf")
    return Embedded(data_dir=root, tokenizer=root / TOKENIZER, manifest=manifest)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.rehearsal_data")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="cut the rehearsal data from the proxy corpus")
    b.add_argument(
        "--proxy", type=Path, required=True, help="the proxy corpus folder (holds sp8192_caseops/)"
    )
    b.add_argument("--tokenizers", type=Path, required=True)
    b.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "data" / "rehearsal")
    sub.add_parser("path", help="print the folder of the shipped data (a rehearsal's DATA_DIR)")
    args = ap.parse_args(argv)
    if args.cmd == "path":
        print(embedded(verify=False).data_dir)
        return 0
    m = build(args.proxy, args.tokenizers, args.out)
    total = sum(f["bytes"] for f in m["files"].values()) + m["tokenizer"]["bytes"]
    print(f"wrote {args.out}: {total} bytes, unigram bpb {m['unigram_bpb']}")
    return 0 if math.isfinite(m["unigram_bpb"]) else 1


if __name__ == "__main__":
    sys.exit(main())
