"""The data variants ``pgolf fetch`` knows (DESIGN §2): where each lives and what it must contain.

Repo paths are relative to the repo's ``root`` folder; the local layout under DATA_DIR mirrors
what is below ``root`` (``datasets/<dataset>/...``, ``tokenizers/...``), which is the layout the
challenge's own downloader produces.
"""

from __future__ import annotations

from dataclasses import dataclass

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
