"""The data variants ``pgolf fetch`` knows (DESIGN §2): where each lives and what it must contain.

Repo paths are relative to the repo's ``root`` folder; the local layout under DATA_DIR mirrors
what is below ``root`` (``datasets/<dataset>/...``, ``tokenizers/...``), which is the layout the
challenge's own downloader produces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import PgolfError

CASEOPS_REPO = "romeerp/parameter-golf-caseops-v1"
STANDARD_REPO = "willdepueoai/parameter-golf"


@dataclass(frozen=True)
class Variant:
    name: str
    repo_id: str
    root: str
    vocab_size: int
    # The dataset folder under ``<root>/datasets/``. Manifest-driven variants confirm it (and
    # learn their tokenizer files) from ``<root>/manifest.json``.
    dataset: str
    tokenizer_files: tuple[str, ...] = ()
    manifest: bool = False
    sidecar: bool = False

    @property
    def manifest_path(self) -> str:
        return f"{self.root}/manifest.json"

    @property
    def dataset_path(self) -> str:
        return f"{self.root}/datasets/{self.dataset}"


def _standard(name: str, vocab: int) -> Variant:
    return Variant(
        name=name,
        repo_id=STANDARD_REPO,
        root="datasets",
        vocab_size=vocab,
        dataset=f"fineweb10B_{name}",
        manifest=True,
    )


VARIANTS: dict[str, Variant] = {
    "caseops": Variant(
        name="caseops",
        repo_id=CASEOPS_REPO,
        root="datasets",
        vocab_size=8192,
        dataset="fineweb10B_sp8192_lossless_caps_caseops_v1_reserved",
        tokenizer_files=("tokenizers/fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model",),
        sidecar=True,
    ),
    "sp512": _standard("sp512", 512),
    "sp1024": _standard("sp1024", 1024),
    "sp2048": _standard("sp2048", 2048),
    "sp4096": _standard("sp4096", 4096),
    "sp8192": _standard("sp8192", 8192),
    "byte260": _standard("byte260", 260),
}

DEFAULT_VARIANT = "caseops"


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise PgolfError(f"unknown variant {name!r}: expected one of {', '.join(VARIANTS)}") from None


@dataclass(frozen=True)
class CanonicalFacts:
    """What a complete, untouched copy of a variant holds, where a public source says so.

    ``val_tokens_logged`` is the validation size the challenge's trainers print (``val_tokens:``),
    which is the header total trimmed to whole sequences: ``(total - 1) // seq_len * seq_len`` at
    ``logged_seq_len``. None: no source we could check gives the number.
    """

    train_shards: int | None
    val_docs: int | None
    val_tokens_logged: int | None
    logged_seq_len: int | None
    source: str


# Sources: issue 16 and the CaseOps records' train logs (80 train shards, val_tokens 47,851,520 at
# TRAIN_SEQ_LEN 2048); the challenge README ("the fixed first-50k-document set"); train logs of the
# records in shared/data/records_sample for the standard variants (sp1024: `val_loader ... tokens:`
# at seq_len 4096; byte260 at 1024; sp4096 and sp8192 `val_tokens:` at 2048). Standard variants'
# train shard counts come from the repo's manifest.json at fetch time, so none is written here.
_README_50K = "challenge README: validation is the fixed first-50k-document set"
CANONICAL: dict[str, CanonicalFacts] = {
    "caseops": CanonicalFacts(80, 50_000, 47_851_520, 2048, "issue 16; CaseOps record logs"),
    "sp1024": CanonicalFacts(None, 50_000, 62_021_632, 4096, f"{_README_50K}; record logs"),
    "sp4096": CanonicalFacts(None, 50_000, 45_508_608, 2048, f"{_README_50K}; record logs"),
    "sp8192": CanonicalFacts(None, 50_000, 40_540_160, 2048, f"{_README_50K}; record logs"),
    "byte260": CanonicalFacts(None, None, 151_130_112, 1024, "record logs"),
    "sp512": CanonicalFacts(None, 50_000, None, None, _README_50K),
    "sp2048": CanonicalFacts(None, 50_000, None, None, _README_50K),
}


def canonical_mismatches(
    variant: str, train_shards: int | None, val_tokens: int | None, val_docs: int | None = None
) -> list[str]:
    """One line per fact of the local data that differs from the variant's canonical one.

    ``train_shards``: pass it only for a complete download (fewer shards by choice is not a mismatch).
    """
    facts = CANONICAL.get(variant)
    if facts is None:
        return []
    out = []
    if facts.train_shards is not None and train_shards is not None and train_shards != facts.train_shards:
        out.append(f"{train_shards} train shards, the canonical {variant} set has {facts.train_shards}")
    if facts.val_tokens_logged is not None and facts.logged_seq_len is not None and val_tokens is not None:
        trimmed = (val_tokens - 1) // facts.logged_seq_len * facts.logged_seq_len
        if trimmed != facts.val_tokens_logged:
            out.append(
                f"{val_tokens:,} val tokens ({trimmed:,} in whole {facts.logged_seq_len}-token sequences), "
                f"the canonical {variant} validation has {facts.val_tokens_logged:,}"
            )
    if facts.val_docs is not None and val_docs is not None and val_docs != facts.val_docs:
        out.append(f"{val_docs:,} val documents, the canonical {variant} validation has {facts.val_docs:,}")
    return out


def check_canonical(variant: str, dataset_dir: Path, complete_train: bool = True) -> list[str]:
    """:func:`canonical_mismatches` of a local dataset folder (headers and BOS counts; ~0.1 s).

    ``complete_train``: the folder is meant to hold every train shard (not a ``--train-shards`` subset).
    """
    import numpy as np

    from harness.rules import RULES
    from harness.shards import ShardError, list_dataset, read_header, read_shard

    try:
        files = list_dataset(dataset_dir)
        val_tokens = sum(read_header(p) for p in files.val)
        val_docs = sum(int(np.count_nonzero(read_shard(p) == RULES.shards.bos_id)) for p in files.val)
    except ShardError:
        return []  # the caller reports unreadable shards itself
    return canonical_mismatches(
        variant,
        len(files.train) if complete_train else None,
        val_tokens if files.val else None,
        val_docs if files.val else None,
    )
