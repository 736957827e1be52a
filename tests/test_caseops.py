"""CaseOps: the transform of DESIGN §2, exactly invertible, and reproducing the shipped shards."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import caseops
from harness.caseops import ALLCAPS, CAPNEXT, ESC, TITLE
from harness.corpus import build_dataset


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("hello world", "hello world"),
        ("NASA and CPU", f"{ALLCAPS}nasa and {ALLCAPS}cpu"),
        ("Hello I am", f"{TITLE}hello {TITLE}i am"),
        ("McDonald", f"{TITLE}mc{CAPNEXT}donald"),
        ("iPhone", f"i{CAPNEXT}phone"),
        ("x2Y", f"x2{TITLE}y"),
        ("Ünïcode Straße", f"Ünïcode {TITLE}stra\u00dfe"),
        (f"a{TITLE}b{ESC}", f"a{ESC}{TITLE}b{ESC}{ESC}"),
    ],
)
def test_encode_follows_the_spec(text: str, encoded: str) -> None:
    assert caseops.encode(text) == encoded
    assert caseops.decode(encoded) == text


ASCII_HEAVY = st.text(
    alphabet=st.one_of(
        st.sampled_from("aAzZbBqQ \n\t-_.'0123456789"),
        st.sampled_from([TITLE, ALLCAPS, CAPNEXT, ESC]),
        st.characters(),
    ),
    max_size=200,
)


@settings(max_examples=500, deadline=None)
@given(ASCII_HEAVY)
def test_decode_inverts_encode_for_any_text(text: str) -> None:
    assert caseops.decode(caseops.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(ASCII_HEAVY)
def test_encoded_text_has_no_uppercase_ascii(text: str) -> None:
    assert not any("A" <= c <= "Z" for c in caseops.encode(text))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_byte_counts_sum_to_the_original_length_even_with_edge_whitespace(tokenizers_dir: Path) -> None:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(
        model_file=str(tokenizers_dir / "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model")
    )
    for text in ["  Lead  and   TRAIL \n ", "漢字 McDonald", f"esc {ESC}{TITLE} ﬁne ＡＢ", "x"]:
        ids, counts = caseops.encode_with_byte_counts(sp, text)
        assert ids == sp.encode(caseops.encode(text))
        assert sum(counts) == len(text.encode("utf-8"))


@pytest.mark.slow
def test_golden_reproduces_the_shipped_caseops_shards_byte_for_byte(
    proxy_dir: Path, tokenizers_dir: Path, tmp_path: Path
) -> None:
    import sentencepiece as spm

    manifest = json.loads((proxy_dir / "sp8192_caseops" / "manifest.json").read_text())
    sp = spm.SentencePieceProcessor(model_file=str(tokenizers_dir / manifest["tokenizer"]["file"]))
    texts = [json.loads(line)["text"] for line in (proxy_dir / "dev_docs.jsonl").open(encoding="utf-8")]
    build_dataset(
        texts,
        sp,
        tmp_path,
        transform=manifest["text_transform"],
        val_fraction=manifest["val_fraction"],
        max_shard_tokens=manifest["max_train_shard_tokens"],
    )
    expected = {f["name"]: f["sha256"] for f in manifest["files"]}
    produced = {p.name: _sha256(p) for p in tmp_path.iterdir()}
    assert produced == expected
