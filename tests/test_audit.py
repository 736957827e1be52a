"""`pgolf audit`: does the training data hold validation text? (harness/audit.py)

The proxy-corpus tests (real text, skipped without ../shared) show clean data is judged clean and
copies of validation documents are found where they were put; the synthetic tests (run in CI) pin
the hashing, the detection maths and the sampled mode's stated probability.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from harness import audit as A
from harness import doctor
from harness.cli import main as cli_main
from harness.package import package_run
from harness.rules import AUDIT_RULES, RULES
from harness.shards import list_dataset, read_header, read_shard, write_shard
from harness.variants import canonical_mismatches, get_variant

BOS = RULES.shards.bos_id
N = AUDIT_RULES.ngram


# ---------------------------------------------------------------- helpers


def doc_tokens(index: A.ValIndex, val: np.ndarray, doc: int) -> np.ndarray:
    """A validation document as it lies in the val stream: its BOS and its tokens."""
    start = int(index.doc_starts[doc])
    end = int(index.doc_starts[doc + 1]) if doc + 1 < index.docs else len(val)
    return np.asarray(val[start:end])


def inject(shard: Path, docs: list[np.ndarray], at_doc: int) -> list[int]:
    """Put ``docs`` into a train shard before its ``at_doc``-th document; returns where each
    copy's BOS landed (token offsets)."""
    tokens = np.asarray(read_shard(shard)).copy()
    boundary = int(np.flatnonzero(tokens == BOS)[at_doc])
    offsets, at = [], boundary
    for d in docs:
        offsets.append(at)
        at += len(d)
    write_shard(shard, np.concatenate([tokens[:boundary], *docs, tokens[boundary:]]))
    return offsets


def synthetic_docs(rng: np.random.Generator, count: int, vocab: int = 8192) -> list[np.ndarray]:
    """Documents of random tokens (ids >= 2, so never BOS), lengths spread like real text."""
    lengths = np.clip(rng.lognormal(mean=5.0, sigma=0.8, size=count).astype(int), 20, 3000)
    return [np.concatenate([[BOS], rng.integers(2, vocab, n)]).astype(np.uint16) for n in lengths]


def synthetic_dataset(folder: Path, seed: int = 0, val_docs: int = 200, train_docs: int = 1200) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    write_shard(folder / "fineweb_val_000000.bin", np.concatenate(synthetic_docs(rng, val_docs)))
    train = synthetic_docs(rng, train_docs)
    half = len(train) // 2
    write_shard(folder / "fineweb_train_000000.bin", np.concatenate(train[:half]))
    write_shard(folder / "fineweb_train_000001.bin", np.concatenate(train[half:]))
    return folder


def index_of(folder: Path) -> tuple[A.ValIndex, np.ndarray]:
    val = A.read_val(list_dataset(folder).val)
    return A.build_index(val, N), val


def judge_sampled(index: A.ValIndex, folder: Path, fraction: float, seed: int) -> A.AuditReport:
    train = list_dataset(folder).train
    scans = A.scan_train(index, train, fraction=fraction, seed=seed)
    return A.judge(
        index,
        scans,
        [p.name for p in train],
        mode="sampled",
        fraction=fraction,
        seed=seed,
        workers=1,
        elapsed_s=0.0,
    )


# ---------------------------------------------------------------- hashing and the index


def test_ngram_hashes_agree_at_every_position_and_separate_different_ngrams() -> None:
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 8192, 5000).astype(np.uint16)
    for n in (1, 2, 3, 7, 16, 21):
        rolled = A.ngram_hashes(tokens, n)
        assert len(rolled) == len(tokens) - n + 1
        assert np.array_equal(rolled, A.hashes_at(tokens, np.arange(len(rolled)), n))
    # The same n-gram hashes the same wherever it is; 5000 random 16-grams never collide.
    repeated = np.concatenate([tokens[:100], tokens[:100]])
    h = A.ngram_hashes(repeated, N)
    assert np.array_equal(h[:50], h[100:150])
    assert len(np.unique(A.ngram_hashes(tokens, N))) == len(tokens) - N + 1
    assert len(A.ngram_hashes(tokens[: N - 1], N)) == 0


def test_index_counts_only_ngrams_inside_a_document() -> None:
    rng = np.random.default_rng(2)
    lengths = [40, 5, N, N + 1, 300]  # content tokens after each BOS
    stream = np.concatenate([np.concatenate([[BOS], rng.integers(2, 8192, n)]) for n in lengths])
    index = A.build_index(stream.astype(np.uint16), N)
    assert index.docs == len(lengths)
    assert index.doc_ngrams.tolist() == [max(0, n - N + 1) for n in lengths]
    # Random text: every n-gram occurs once, so every one is a seed.
    assert index.doc_seeds.tolist() == index.doc_ngrams.tolist()
    assert index.judged().tolist() == [n - N + 1 >= AUDIT_RULES.min_doc_ngrams for n in lengths]


# ---------------------------------------------------------------- detection maths


def test_detection_probability_is_the_poisson_binomial_tail() -> None:
    counts = [30, 50, 80]
    f = 0.02
    p = [1 - (1 - f) ** m for m in counts]
    # At least one of three: 1 - P(none).
    assert A.detection_probability(counts, f, 1) == pytest.approx(1 - math.prod(1 - q for q in p))
    # At least two, by enumerating all outcomes.
    two = sum(
        math.prod(q if hit else 1 - q for q, hit in zip(p, outcome, strict=True))
        for outcome in ((1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1))
    )
    assert A.detection_probability(counts, f, 2) == pytest.approx(two)
    assert A.detection_probability(counts, 1.0, 3) == 1.0
    assert A.detection_probability(counts, 1.0, 4) == 0.0  # cannot find more documents than were copied
    f_needed = A.required_sample_fraction(counts, 1, 0.999)
    assert A.detection_probability(counts, f_needed, 1) == pytest.approx(0.999, abs=1e-9)
    assert A.detection_probability(counts, f_needed * 0.99, 1) < 0.999
    assert A.worst_case_copies(np.array([90, 40, 70, 10, 55]), 0.4).tolist() == [10, 40]


# ---------------------------------------------------------------- synthetic data (runs in CI)


def test_clean_synthetic_data_is_clean_and_copies_are_found_where_they_were_put(tmp_path: Path) -> None:
    folder = synthetic_dataset(tmp_path / "data")
    clean = A.audit(folder, workers=1)
    assert (clean.verdict, clean.found_docs, clean.mode) == ("clean", 0, "full")
    assert clean.val_docs == 200 and clean.train_shards == 2

    index, val = index_of(folder)
    copied = [3, 77, 150, 151]
    at = inject(folder / "fineweb_train_000001.bin", [doc_tokens(index, val, d) for d in copied], at_doc=10)
    # Two worker processes: the pool path maps the index from files.
    report = A.audit(folder, workers=2)
    assert report.verdict == "contaminated"
    assert report.found_ids == copied
    for hit, offset in zip(report.found, at, strict=True):
        assert (hit.train_shard, hit.train_offset, hit.coverage) == ("fineweb_train_000001.bin", offset, 1.0)
        assert hit.val_offset == int(index.doc_starts[hit.doc])


def test_sampled_mode_finds_a_copy_at_the_stated_probability(tmp_path: Path) -> None:
    """Random text has no natural repeats, so the stated probability is exact: a two-sided test."""
    folder = synthetic_dataset(tmp_path / "data", seed=3)
    index, val = index_of(folder)
    judged = np.flatnonzero(index.judged())
    shortest = int(judged[np.argmin(index.doc_seeds[judged])])  # the worst case of one copied document
    inject(folder / "fineweb_train_000000.bin", [doc_tokens(index, val, shortest)], at_doc=50)
    seeds = index.doc_seeds[[shortest]]
    fraction = A.required_sample_fraction(seeds, 1, 0.5)
    stated = A.detection_probability(seeds, fraction, 1)
    runs = 300
    found = sum(judge_sampled(index, folder, fraction, seed).found_ids == [shortest] for seed in range(runs))
    assert stats.binomtest(found, runs, stated).pvalue > 1e-3, (found, runs, stated)
    # And the planned fraction (99.9% at the design contamination) finds it every time.
    planned = A.plan_fraction(index)
    assert all(judge_sampled(index, folder, planned, seed).verdict == "contaminated" for seed in range(20))


def test_sampled_positions_are_a_bernoulli_sample() -> None:
    rng = np.random.default_rng(4)
    pos = A.sample_positions(rng, 1_000_000, 0.01)
    assert np.all(np.diff(pos) > 0) and pos[0] >= 0 and pos[-1] < 1_000_000
    # Binomial(1e6, 0.01): mean 10,000, sd ~99.5.
    assert abs(len(pos) - 10_000) < 500
    assert len(A.sample_positions(rng, 1000, 1.0)) == 1000


def test_audit_command_prints_the_verdict_and_exits_nonzero_on_contamination(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = synthetic_dataset(tmp_path / "data", seed=5)
    assert cli_main(["audit", str(folder), "--workers", "1", "--quiet"]) == 0
    assert "clean" in capsys.readouterr().out
    index, val = index_of(folder)
    inject(folder / "fineweb_train_000000.bin", [doc_tokens(index, val, 9)], at_doc=3)
    assert cli_main(["audit", str(folder), "--workers", "1", "--quiet", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "contaminated" and [h["doc"] for h in report["found"]] == [9]
    assert cli_main(["audit", str(tmp_path / "missing"), "--quiet"]) == 1
    assert "missing" in capsys.readouterr().err


# ---------------------------------------------------------------- the proxy corpus (real text)


@pytest.fixture(params=["sp8192_caseops", "sp8192"])
def proxy_variant(request: pytest.FixtureRequest, proxy_dir: Path) -> Path:
    return proxy_dir / str(request.param)


def test_clean_proxy_data_is_clean(proxy_variant: Path) -> None:
    """Real documentation shares sentences between files (the proxy's train and val split hold
    e.g. two versions of the email.message API pages), yet no document is anywhere near copied."""
    report = A.audit(proxy_variant, workers=1)
    assert (report.verdict, report.found_docs) == ("clean", 0)
    assert report.judged_docs == 63
    assert report.max_coverage < AUDIT_RULES.doc_found_coverage - 0.25


def copy_proxy(proxy_variant: Path, dest: Path) -> Path:
    shutil.copytree(proxy_variant, dest)
    for p in dest.iterdir():
        p.chmod(0o644)
    return dest


def test_two_percent_of_val_copied_into_a_train_shard_is_found(proxy_variant: Path, tmp_path: Path) -> None:
    folder = copy_proxy(proxy_variant, tmp_path / "data")
    index, val = index_of(folder)
    copied = [int(d) for d in np.flatnonzero(index.judged())[[7, 40]]]  # 2 of 63 = ceil(2%)
    assert len(copied) == math.ceil(0.02 * index.docs)
    at = inject(folder / "fineweb_train_000001.bin", [doc_tokens(index, val, d) for d in copied], at_doc=100)
    report = A.audit(folder, workers=1)
    assert report.verdict == "contaminated"
    assert report.found_ids == copied
    assert [(h.train_shard, h.train_offset) for h in report.found] == [
        ("fineweb_train_000001.bin", a) for a in at
    ]


def test_sampled_mode_finds_a_tenth_of_a_percent_at_the_stated_probability(
    proxy_dir: Path, tmp_path: Path
) -> None:
    """0.1% of 63 documents rounds up to one; the worst case is the one with the fewest seeds.
    Real text repeats itself, so spans scanned around natural matches elsewhere can find the copy
    too: the stated probability is a lower bound (one-sided test; measured: 0.85 found for a stated 0.6)."""
    folder = copy_proxy(proxy_dir / "sp8192_caseops", tmp_path / "data")
    index, val = index_of(folder)
    judged = np.flatnonzero(index.judged())
    worst = int(judged[np.argmin(index.doc_seeds[judged])])
    inject(folder / "fineweb_train_000000.bin", [doc_tokens(index, val, worst)], at_doc=200)
    seeds = index.doc_seeds[[worst]]
    fraction = A.required_sample_fraction(seeds, 1, 0.4)
    stated = A.detection_probability(seeds, fraction, 1)
    runs = 50
    found = sum(judge_sampled(index, folder, fraction, seed).found_ids == [worst] for seed in range(runs))
    assert stats.binomtest(found, runs, stated, alternative="less").pvalue > 1e-3, (found, runs, stated)
    # The default plan (99.9% for 0.1% contamination) finds it in every run.
    planned = A.plan_fraction(index)
    assert A.detection_probability(seeds, planned, 1) >= AUDIT_RULES.target_detection
    assert all(judge_sampled(index, folder, planned, seed).verdict == "contaminated" for seed in range(5))


# ---------------------------------------------------------------- canonical facts (fetch, doctor)


def test_canonical_facts_catch_a_ten_thousand_document_validation_split() -> None:
    """The CaseOps prep script's default (--val-docs 10000) left documents 10,000-49,999 in train:
    its validation split is a fifth of the canonical one, which the canonical facts catch."""
    whole = 47_851_520  # what the trainers log: (tokens - 1) // 2048 * 2048
    assert canonical_mismatches("caseops", 80, whole + 1, 50_000) == []
    assert canonical_mismatches("caseops", 80, whole + 2048, 50_000) == []
    assert canonical_mismatches("caseops", None, whole + 1, None) == []  # a --train-shards subset
    problems = canonical_mismatches("caseops", 80, 9_570_000, 10_000)
    assert problems == [
        "9,570,000 val tokens (9,568,256 in whole 2048-token sequences), the canonical caseops validation "
        "has 47,851,520",
        "10,000 val documents, the canonical caseops validation has 50,000",
    ]
    assert canonical_mismatches("caseops", 79, whole + 2049, 50_000)[0] == (
        "79 train shards, the canonical caseops set has 80"
    )
    assert canonical_mismatches("sp512", 3, 123, 50_000) == []  # nothing sourced but the document count
    assert canonical_mismatches("no-such-variant", 1, 1, 1) == []


def test_doctor_warns_with_the_numbers_when_data_is_not_the_canonical_set(tmp_path: Path) -> None:
    dataset = tmp_path / "datasets" / get_variant("caseops").dataset
    synthetic_dataset(dataset, val_docs=30)
    write_shard(
        dataset / "fineweb_val_bytes_000000.bin", np.zeros(read_header(dataset / "fineweb_val_000000.bin"))
    )
    facts = doctor.gather_facts(tmp_path, "caseops")
    assert facts.data is not None
    warning = {c.name: c for c in doctor.evaluate(facts)}["data facts"]
    assert warning.status == "warn"
    assert "2 train shards, the canonical caseops set has 80" in warning.detail
    assert "30 val documents, the canonical caseops validation has 50,000" in warning.detail


# ---------------------------------------------------------------- `pgolf run` and `pgolf package`


def test_run_records_the_audit_once_per_dataset_and_package_shows_it(tmp_path: Path) -> None:
    """A real `pgolf run` (the fake native trainer) on data whose train shard holds a val document."""
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(6)
    val_doc = np.concatenate([[BOS], rng.integers(2, 8192, 400)])
    other = np.concatenate([[BOS], rng.integers(2, 8192, 300)])
    write_shard(data / "fineweb_val_000000.bin", np.concatenate([val_doc, other]))
    write_shard(
        data / "fineweb_val_bytes_000000.bin", np.concatenate([[0], np.full(400, 3), [0], np.full(300, 3)])
    )
    train = [np.concatenate([[BOS], rng.integers(2, 8192, 500)]) for _ in range(4)]
    write_shard(data / "fineweb_train_000000.bin", np.concatenate([*train[:2], val_doc, *train[2:]]))
    (data / "tiny.lock.json").write_text('{"files": []}\n')
    fake = Path(__file__).parent / "fake_trainers" / "native"
    for out in ("run1", "run2"):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness",
                "run",
                str(fake),
                "--data-dir",
                str(data),
                "--out",
                str(tmp_path / out),
                "--seeds",
                "1",
                "--eval-protocol",  # the fake reads val shards in eval
                "v1",
                "--env",
                "FAKE_MODE=ok",
                "--quiet",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
    results = [json.loads((tmp_path / out / "seed1" / "result.json").read_text()) for out in ("run1", "run2")]
    first, second = (r["data_audit"] for r in results)
    assert first["verdict"] == "contaminated" and first["found_docs"] == 1 and first["cached"] is False
    assert first["first_found"][0] == {
        "doc": 0,
        "val_offset": 0,
        "ngrams": 400 - N + 1,
        "coverage": 1.0,
        "train_shard": "fineweb_train_000000.bin",
        "train_offset": 2 * 501,
    }
    assert second["cached"] is True and second["data_key"] == first["data_key"]
    assert (
        json.loads((tmp_path / "run1" / "run.json").read_text())["data"]["audit"]["verdict"] == "contaminated"
    )

    dest = package_run(
        tmp_path / "run1",
        name="Tiny",
        author="Ada",
        github_id="ada",
        track="non_record_16mb",
        out_root=tmp_path / "rec",
    )
    readme = (dest / "README.md").read_text("utf-8")
    assert "## Data provenance" in readme
    assert "contaminated: 1 of 2 validation documents found in 1 train shard(s)" in readme
    assert "| 0 | 385 | 100.0% | fineweb_train_000000.bin | 1,002 |" in readme
    assert json.loads((dest / "submission.json").read_text())["data_audit"]["verdict"] == "contaminated"


def test_the_cache_is_keyed_by_the_lock_and_nothing_is_written_into_an_unfetched_data_folder(
    tmp_path: Path,
) -> None:
    folder = synthetic_dataset(tmp_path / "datasets" / "mine", seed=7)
    before = sorted(p.name for p in folder.iterdir())
    unlocked = A.audit_cached(folder, None, fraction=1.0)
    assert (unlocked["verdict"], unlocked["cached"], unlocked["data_key"]) == ("clean", False, None)
    assert sorted(p.name for p in folder.iterdir()) == before  # no cache in a folder pgolf did not fetch

    lock = tmp_path / "mine.lock.json"
    lock.write_text('{"files": []}\n')
    first = A.audit_cached(folder, lock, fraction=1.0)
    second = A.audit_cached(folder, lock, fraction=1.0)
    assert (first["cached"], second["cached"]) == (False, True)
    assert len(list((tmp_path / AUDIT_RULES.cache_dir).glob("*.json"))) == 1
    # Other data (another lock) is audited afresh, and so is another fraction.
    lock.write_text('{"files": [], "revision": "other"}\n')
    assert A.audit_cached(folder, lock, fraction=1.0)["cached"] is False
    assert A.audit_cached(folder, lock, fraction=0.5)["cached"] is False
