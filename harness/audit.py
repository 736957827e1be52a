"""Data provenance: does the training data hold validation text? (``pgolf audit``)

How it works:

- Every validation document's token n-grams (``AUDIT_RULES.ngram`` tokens, never across a BOS)
  are hashed: a polynomial hash mod 2**64 (built by doubling, so an n-gram costs log2(n) array
  passes) finished by a 64-bit mixer. The distinct hashes, sorted, are the exact index; a bitmap
  keyed by each hash's top bits (about 64 bits per distinct n-gram) is the fast filter in front.
- Train shards are read memory-mapped in chunks, in parallel over shards. ``full`` mode hashes every
  train position; ``sampled`` mode hashes a Bernoulli sample of positions (each kept with
  probability f, independently). A sampled n-gram that occurs exactly once in the validation split
  (a *seed*) says where a copy of its document would start in the train shard; that span is then
  scanned in full, so a copied document is found whole once any one of its seed positions is
  sampled, and a phrase found in several validation documents never costs a scan.
- A validation document is *found* when at least ``doc_found_coverage`` of its n-grams occur in the
  train data. Documents with fewer than ``min_doc_ngrams`` n-grams are not judged (too short to tell
  a copy from a common phrase); a shared line of boilerplate covers a small part of a document, so
  it does not make the document found. The verdict is ``contaminated`` when at least
  ``contaminated_min_docs`` documents are found.

Detection probability of the sampled mode (pure functions below): a copied document with M seed
n-grams is missed only when none of its M positions is sampled, probability (1 - f)**M,
independently per document; the number found is then Poisson-binomial. The stated figure is for
the worst case: the copied documents are the judged ones with the fewest seeds. It is a lower
bound: spans scanned around natural matches nearby can find a copy too.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from harness.errors import PgolfError
from harness.rules import AUDIT_RULES, RULES, AuditRules
from harness.shards import ShardError, list_dataset, read_header, read_shard

Verdict = Literal["clean", "contaminated"]
Mode = Literal["full", "sampled"]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

# Odd 64-bit constants: the polynomial base and the splitmix64 finaliser's multipliers.
_BASE = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
# Tokens per chunk a worker hashes at once: ~5 uint64 arrays of this length live at a time.
CHUNK_TOKENS = 1 << 19
# Filter bits per distinct val n-gram, at least (~1.6% of non-matching positions pass the filter).
FILTER_BITS_PER_NGRAM = 64
# A train location is encoded as shard << 40 | offset (a shard holds far fewer than 2**40 tokens).
_OFFSET_BITS = 40
_NOWHERE = np.iinfo(np.int64).max


# ---------------------------------------------------------------- hashing (pure)


def _mix(x: U64) -> U64:
    """splitmix64's finaliser, in place: every output bit depends on every input bit."""
    x ^= x >> np.uint64(30)
    x *= _MIX1
    x ^= x >> np.uint64(27)
    x *= _MIX2
    x ^= x >> np.uint64(31)
    return x


def ngram_hashes(tokens: npt.NDArray[np.integer[Any]], n: int) -> U64:
    """Hash of every n-gram ``tokens[i:i+n]`` (``len(tokens) - n + 1`` values).

    The polynomial sum(t[i+k] * B**(n-1-k)) mod 2**64, built from power-of-two pieces
    (h[a+b](i) = h[a](i) * B**b + h[b](i+a)), then mixed.
    """
    if n < 1:
        raise ValueError(f"n-gram length must be >= 1, got {n}")
    m = len(tokens) - n + 1
    if m <= 0:
        return np.empty(0, dtype=np.uint64)
    piece = np.asarray(tokens).astype(np.uint64)
    piece_len = 1
    acc: U64 | None = None
    acc_len = 0
    remaining = n
    with np.errstate(over="ignore"):
        while True:
            if remaining & 1:
                if acc is None:
                    acc = piece.copy()
                else:
                    width = len(tokens) - (acc_len + piece_len) + 1
                    acc = acc[:width] * (_BASE ** np.uint64(piece_len)) + piece[acc_len : acc_len + width]
                acc_len += piece_len
            remaining >>= 1
            if not remaining:
                break
            width = len(piece) - piece_len
            piece = piece[:width] * (_BASE ** np.uint64(piece_len)) + piece[piece_len : piece_len + width]
            piece_len *= 2
    assert acc is not None
    return _mix(acc[:m].copy())


def hashes_at(tokens: npt.NDArray[np.integer[Any]], positions: I64, n: int) -> U64:
    """The same hash as :func:`ngram_hashes`, only at ``positions`` (one gather, then Horner's rule)."""
    grams = np.lib.stride_tricks.sliding_window_view(np.asarray(tokens), n)[positions].astype(np.uint64)
    h = np.zeros(len(positions), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h *= _BASE
            h += grams[:, k]
    return _mix(h)


# ---------------------------------------------------------------- detection maths (pure)


def doc_detection_probabilities(ngram_counts: Sequence[int] | npt.NDArray[Any], fraction: float) -> Any:
    """Per copied document: the probability that at least one of its n-grams is sampled."""
    m = np.asarray(ngram_counts, dtype=np.float64)
    if fraction >= 1.0:
        return np.where(m > 0, 1.0, 0.0)
    return -np.expm1(m * math.log1p(-fraction))


def detection_probability(
    ngram_counts: Sequence[int] | npt.NDArray[Any], fraction: float, min_docs: int
) -> float:
    """P(at least ``min_docs`` of the copied documents are found) when each train position is
    sampled with probability ``fraction``: a Poisson-binomial tail (independent documents)."""
    if min_docs <= 0:
        return 1.0
    p = doc_detection_probabilities(ngram_counts, fraction)
    # dist[j] = P(j found so far), j capped at min_docs (absorbing).
    dist = np.zeros(min_docs + 1)
    dist[0] = 1.0
    for pd in p:
        moved = dist[:-1] * pd
        dist[:-1] *= 1.0 - pd
        dist[1:] += moved
    return float(min(1.0, max(0.0, dist[-1])))


def required_sample_fraction(
    ngram_counts: Sequence[int] | npt.NDArray[Any], min_docs: int, target: float
) -> float:
    """The smallest sampling fraction whose detection probability reaches ``target`` (1.0 when
    even the full scan cannot: fewer copied documents than ``min_docs``)."""
    if detection_probability(ngram_counts, 1.0, min_docs) < target:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if detection_probability(ngram_counts, mid, min_docs) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def worst_case_copies(judged_ngram_counts: npt.NDArray[Any], contamination: float) -> npt.NDArray[np.int64]:
    """N-gram counts of the hardest contamination of that size: the shortest judged documents."""
    k = max(1, math.ceil(contamination * len(judged_ngram_counts))) if len(judged_ngram_counts) else 0
    return np.sort(np.asarray(judged_ngram_counts, dtype=np.int64))[:k]


# ---------------------------------------------------------------- the validation index


@dataclass
class ValIndex:
    """The validation split as n-grams: what a train scan looks up, and how to judge documents."""

    ngram: int
    val_tokens: int
    doc_starts: I64  # token offset of each document (its BOS) in the concatenated val stream
    doc_ngrams: I64  # n-grams per document
    doc_seeds: I64  # n-grams per document that occur nowhere else in the validation split
    pos_doc: npt.NDArray[np.int32]  # per val n-gram position (document order): its document
    pos_unique: npt.NDArray[np.int32]  # per val n-gram position: index into ``hashes``
    pos_lead: npt.NDArray[np.int32]  # per val n-gram position: tokens from its document's start
    hashes: U64  # distinct n-gram hashes, sorted
    # Per distinct hash that occurs once in the split: tokens from its document's start to it, and
    # the document's length (where a copy would lie around a train match); -1 / 0 otherwise.
    lead: npt.NDArray[np.int32]
    span: npt.NDArray[np.int32]
    filter_bits: int
    bitmap: npt.NDArray[np.uint8]

    @property
    def docs(self) -> int:
        return len(self.doc_starts)

    def judged(self, rules: AuditRules = AUDIT_RULES) -> npt.NDArray[np.bool_]:
        """Documents long enough to judge."""
        return self.doc_ngrams >= rules.min_doc_ngrams


def build_index(
    val_tokens: npt.NDArray[np.integer[Any]], n: int, bos_id: int = RULES.shards.bos_id
) -> ValIndex:
    """Index the concatenated validation stream (documents start at each BOS)."""
    t = np.asarray(val_tokens)
    starts = np.flatnonzero(t == bos_id)
    if len(starts) == 0 or starts[0] != 0:  # text before the first BOS is a document too
        starts = np.concatenate([[0], starts])
    starts = starts.astype(np.int64)
    ends = np.append(starts[1:], len(t))
    all_h = ngram_hashes(t, n)
    # An n-gram belongs to a document when it holds no BOS.
    bos_before = np.concatenate([[0], np.cumsum(t == bos_id, dtype=np.int64)])
    valid = (bos_before[n : n + len(all_h)] - bos_before[: len(all_h)]) == 0
    positions = np.flatnonzero(valid)
    pos_doc = (np.searchsorted(starts, positions, side="right") - 1).astype(np.int32)
    doc_ngrams = np.bincount(pos_doc, minlength=len(starts)).astype(np.int64)
    # One sort gives the distinct hashes, each position's index among them and how often each occurs
    # (ufunc.at would be several times slower at 50 M positions).
    pos_h = all_h[positions]
    order = np.argsort(pos_h)
    sorted_h = pos_h[order]
    new_group = np.ones(len(sorted_h), dtype=bool)
    new_group[1:] = sorted_h[1:] != sorted_h[:-1]
    group_starts = np.flatnonzero(new_group)
    hashes = sorted_h[group_starts]
    inverse = np.empty(len(order), dtype=np.int32)
    inverse[order] = np.cumsum(new_group, dtype=np.int64) - 1
    occurs = np.diff(np.append(group_starts, len(order)))
    once = occurs == 1
    first_pos = order[group_starts]  # a position of each distinct hash (the only one when ``once``)
    first_doc = pos_doc[first_pos]
    lead = np.where(once, positions[first_pos] - starts[first_doc], -1).astype(np.int32)
    span = np.where(once, ends[first_doc] - starts[first_doc], 0).astype(np.int32)
    doc_seeds = np.bincount(first_doc[once], minlength=len(starts)).astype(np.int64)
    bits = filter_bits_for(len(hashes))
    return ValIndex(
        ngram=n,
        val_tokens=len(t),
        doc_starts=starts,
        doc_ngrams=doc_ngrams,
        doc_seeds=doc_seeds,
        pos_doc=pos_doc,
        pos_unique=inverse,
        pos_lead=(positions - starts[pos_doc]).astype(np.int32),
        hashes=hashes,
        lead=lead,
        span=span,
        filter_bits=bits,
        bitmap=build_bitmap(hashes, bits),
    )


def filter_bits_for(distinct: int) -> int:
    return max(16, math.ceil(math.log2(max(1, distinct) * FILTER_BITS_PER_NGRAM)))


def build_bitmap(hashes: U64, bits: int) -> npt.NDArray[np.uint8]:
    """A bit per slot (a hash's top ``bits`` bits); ``hashes`` sorted, so slots come in order."""
    slots = hashes >> np.uint64(64 - bits)
    bitmap = np.zeros(1 << max(0, bits - 3), dtype=np.uint8)
    if len(slots):
        byte = slots >> np.uint64(3)
        mask = (np.uint8(1) << (slots & np.uint64(7)).astype(np.uint8)).astype(np.uint8)
        first = np.flatnonzero(np.diff(byte, prepend=byte[0] + np.uint64(1)) != 0)
        bitmap[byte[first]] = np.bitwise_or.reduceat(mask, first)
    return bitmap


# ---------------------------------------------------------------- scanning train shards


@dataclass(frozen=True)
class _Lookup:
    """What a worker needs of the index (memory-mapped from files when in another process)."""

    ngram: int
    hashes: U64
    lead: npt.NDArray[np.int32]
    span: npt.NDArray[np.int32]
    filter_bits: int
    bitmap: npt.NDArray[np.uint8]

    def match(self, h: U64) -> tuple[I64, I64]:
        """(positions in ``h`` whose hash is a val n-gram, their index in ``hashes``)."""
        slots = h >> np.uint64(64 - self.filter_bits)
        hit = (self.bitmap[slots >> np.uint64(3)] >> (slots & np.uint64(7)).astype(np.uint8)) & 1
        cand = np.flatnonzero(hit)
        if len(cand) == 0 or len(self.hashes) == 0:
            return cand, cand
        ch = h[cand]
        idx = np.minimum(np.searchsorted(self.hashes, ch), len(self.hashes) - 1)
        ok = self.hashes[idx] == ch
        return cand[ok], idx[ok].astype(np.int64)


@dataclass(frozen=True)
class ShardScan:
    """One train shard's matches: each distinct val n-gram found, at its first offset here."""

    shard: int
    unique: I64
    offsets: I64
    tokens: int
    positions_hashed: int


def _scan_range(tokens: npt.NDArray[np.uint16], lo: int, hi: int, lookup: _Lookup) -> tuple[I64, I64, int]:
    """Every n-gram starting in [lo, hi): (offsets, unique indices, positions hashed)."""
    n = lookup.ngram
    hi = min(hi, len(tokens) - n + 1)
    offs: list[I64] = []
    uniq: list[I64] = []
    hashed = 0
    for start in range(lo, hi, CHUNK_TOKENS):
        stop = min(start + CHUNK_TOKENS, hi)
        h = ngram_hashes(tokens[start : stop + n - 1], n)
        hashed += len(h)
        pos, idx = lookup.match(h)
        if len(pos):
            offs.append(pos + start)
            uniq.append(idx)
    if not offs:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, hashed
    return np.concatenate(offs), np.concatenate(uniq), hashed


def _merge_spans(lo: I64, hi: I64) -> list[tuple[int, int]]:
    """Union of the intervals [lo, hi)."""
    order = np.argsort(lo, kind="stable")
    merged: list[tuple[int, int]] = []
    for a, b in zip(lo[order].tolist(), hi[order].tolist(), strict=True):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def sample_positions(rng: np.random.Generator, count: int, fraction: float) -> I64:
    """A Bernoulli(fraction) subset of range(count), sorted (geometric gaps: exact, no big mask)."""
    if fraction >= 1.0:
        return np.arange(count, dtype=np.int64)
    if fraction <= 0.0 or count <= 0:
        return np.empty(0, dtype=np.int64)
    out: list[I64] = []
    at = -1
    expected = count * fraction
    batch = int(expected + 6 * math.sqrt(expected) + 16)
    while True:
        gaps = rng.geometric(fraction, size=batch).astype(np.int64)
        pos = at + np.cumsum(gaps)
        keep = pos[pos < count]
        out.append(keep)
        if len(keep) < len(pos):
            break
        at = int(pos[-1])
    return np.concatenate(out)


def scan_shard(path: Path, shard: int, lookup: _Lookup, fraction: float = 1.0, seed: int = 0) -> ShardScan:
    """Scan one train shard: every position (fraction 1), or a Bernoulli sample and, for each
    sampled seed, the span where a copy of its document would lie."""
    tokens = read_shard(path)
    n = lookup.ngram
    count = max(0, len(tokens) - n + 1)
    if fraction >= 1.0:
        offsets, unique, hashed = _scan_range(tokens, 0, count, lookup)
    else:
        rng = np.random.default_rng([seed, shard])
        pos = sample_positions(rng, count, fraction)
        hashed = len(pos)
        seed_at, seed_idx = lookup.match(hashes_at(tokens, pos, n)) if len(pos) else (pos, pos)
        parts_o: list[I64] = []
        parts_u: list[I64] = []
        lead = lookup.lead[seed_idx].astype(np.int64)
        is_seed = lead >= 0
        if is_seed.any():
            start = pos[seed_at[is_seed]] - lead[is_seed]
            lo = np.maximum(start, 0)
            hi = np.minimum(start + lookup.span[seed_idx[is_seed]], len(tokens))
            spans = _merge_spans(lo, hi)
            if sum(b - a for a, b in spans) >= count // 2:
                spans = [(0, count)]  # text that repeats this much: the whole shard costs no more
            for a, b in spans:
                o, u, h = _scan_range(tokens, a, b, lookup)
                parts_o.append(o)
                parts_u.append(u)
                hashed += h
        offsets = np.concatenate(parts_o) if parts_o else np.empty(0, dtype=np.int64)
        unique = np.concatenate(parts_u) if parts_u else np.empty(0, dtype=np.int64)
    # First offset of each distinct n-gram in this shard.
    order = np.lexsort((offsets, unique))
    unique, offsets = unique[order], offsets[order]
    first = np.ones(len(unique), dtype=bool)
    first[1:] = unique[1:] != unique[:-1]
    return ShardScan(shard, unique[first], offsets[first], len(tokens), hashed)


# Worker processes load the lookup once (memory-mapped .npy files) and keep it.
_WORKER_LOOKUP: _Lookup | None = None


def _worker_init(folder: str, ngram: int, filter_bits: int) -> None:
    global _WORKER_LOOKUP
    d = Path(folder)
    _WORKER_LOOKUP = _Lookup(
        ngram=ngram,
        hashes=np.load(d / "hashes.npy", mmap_mode="r"),
        lead=np.load(d / "lead.npy", mmap_mode="r"),
        span=np.load(d / "span.npy", mmap_mode="r"),
        filter_bits=filter_bits,
        bitmap=np.load(d / "bitmap.npy", mmap_mode="r"),
    )


def _worker_scan(job: tuple[str, int, float, int]) -> ShardScan:
    assert _WORKER_LOOKUP is not None
    path, shard, fraction, seed = job
    return scan_shard(Path(path), shard, _WORKER_LOOKUP, fraction, seed)


# ---------------------------------------------------------------- the audit


@dataclass(frozen=True)
class DocHit:
    """A validation document found in the train data."""

    doc: int  # index of the document in the validation split (0-based, in order)
    val_offset: int  # token offset of its BOS in the concatenated val shards
    ngrams: int
    coverage: float  # fraction of its n-grams found in the train data
    train_shard: str  # the train shard holding the copy
    train_offset: int  # token offset (after the header) there where the copy starts (its BOS)


@dataclass(frozen=True)
class Detection:
    """What the sampled mode could have missed: the stated detection probability."""

    contamination: float  # fraction of judged val documents copied
    copied_docs: int
    min_docs: int  # found documents the verdict needs
    probability: float  # P(contaminated verdict) for the worst case of that contamination
    worst_case_seeds: int  # seed n-grams of the shortest copied document in that worst case


@dataclass(frozen=True)
class AuditReport:
    verdict: Verdict
    mode: Mode
    ngram: int
    sample_fraction: float
    seed: int | None
    val_docs: int
    val_tokens: int
    judged_docs: int
    found_docs: int
    found_fraction: float  # of judged documents
    max_coverage: float  # the largest coverage of any judged document (found or not)
    train_shards: int
    train_tokens: int
    positions_hashed: int
    workers: int
    elapsed_s: float
    detection: Detection
    found: tuple[DocHit, ...]
    rules: AuditRules = field(default_factory=lambda: AUDIT_RULES)

    @property
    def found_ids(self) -> list[int]:
        return [h.doc for h in self.found]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> dict[str, Any]:
        """The short form that goes into result.json and the packaged README."""
        return {
            "verdict": self.verdict,
            "mode": self.mode,
            "ngram": self.ngram,
            "sample_fraction": self.sample_fraction,
            "val_docs": self.val_docs,
            "judged_docs": self.judged_docs,
            "found_docs": self.found_docs,
            "found_fraction": self.found_fraction,
            "max_coverage": self.max_coverage,
            "train_shards": self.train_shards,
            "train_tokens": self.train_tokens,
            "detection_probability": self.detection.probability,
            "detection_contamination": self.detection.contamination,
            "first_found": [asdict(h) for h in self.found[: self.rules.first_found_reported]],
        }


def read_val(files: Sequence[Path]) -> npt.NDArray[np.uint16]:
    """The validation shards, concatenated in name order (documents may cross a shard boundary)."""
    parts = [np.asarray(read_shard(p)) for p in files]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint16)


def plan_fraction(index: ValIndex, rules: AuditRules = AUDIT_RULES) -> float:
    """The sampling fraction that reaches ``rules.target_detection`` at ``rules.design_contamination``."""
    copies = worst_case_copies(index.doc_seeds[index.judged(rules)], rules.design_contamination)
    return required_sample_fraction(copies, rules.contaminated_min_docs, rules.target_detection)


def judge(
    index: ValIndex,
    scans: Sequence[ShardScan],
    shard_names: Sequence[str],
    *,
    mode: Mode,
    fraction: float,
    seed: int | None,
    workers: int,
    elapsed_s: float,
    rules: AuditRules = AUDIT_RULES,
) -> AuditReport:
    """Pure: the verdict from the shard scans."""
    first = np.full(len(index.hashes), _NOWHERE, dtype=np.int64)
    for s in sorted(scans, key=lambda s: s.shard):
        code = (np.int64(s.shard) << np.int64(_OFFSET_BITS)) | s.offsets
        first[s.unique] = np.minimum(first[s.unique], code)
    at = first[index.pos_unique]
    found_pos = at != _NOWHERE
    docs = index.docs
    hits_per_doc = np.bincount(index.pos_doc, weights=found_pos, minlength=docs)
    coverage = np.divide(hits_per_doc, index.doc_ngrams, out=np.zeros(docs), where=index.doc_ngrams > 0)
    judged = index.judged(rules)
    found_mask = judged & (coverage >= rules.doc_found_coverage)
    found_ids = np.flatnonzero(found_mask)
    copy_at = _copy_locations(index, at, found_mask & (hits_per_doc > 0))
    found = tuple(
        DocHit(
            doc=int(d),
            val_offset=int(index.doc_starts[d]),
            ngrams=int(index.doc_ngrams[d]),
            coverage=round(float(coverage[d]), 6),
            train_shard=shard_names[int(copy_at[d] >> _OFFSET_BITS)],
            train_offset=int(copy_at[d] & ((1 << _OFFSET_BITS) - 1)),
        )
        for d in found_ids
    )
    n_judged = int(judged.sum())
    copies = worst_case_copies(index.doc_seeds[judged], rules.design_contamination)
    detection = Detection(
        contamination=rules.design_contamination,
        copied_docs=len(copies),
        min_docs=rules.contaminated_min_docs,
        probability=detection_probability(copies, fraction, rules.contaminated_min_docs),
        worst_case_seeds=int(copies[0]) if len(copies) else 0,
    )
    verdict: Verdict = "contaminated" if len(found) >= rules.contaminated_min_docs else "clean"
    return AuditReport(
        verdict=verdict,
        mode=mode,
        ngram=index.ngram,
        sample_fraction=fraction,
        seed=seed,
        val_docs=docs,
        val_tokens=index.val_tokens,
        judged_docs=n_judged,
        found_docs=len(found),
        found_fraction=len(found) / n_judged if n_judged else 0.0,
        max_coverage=round(float(coverage[judged].max()) if n_judged else 0.0, 6),
        train_shards=len(shard_names),
        train_tokens=sum(s.tokens for s in scans),
        positions_hashed=sum(s.positions_hashed for s in scans),
        workers=workers,
        elapsed_s=elapsed_s,
        detection=detection,
        found=found,
        rules=rules,
    )


def _copy_locations(index: ValIndex, at: I64, docs: npt.NDArray[np.bool_]) -> I64:
    """Per document in ``docs``: where its copy starts, as shard << 40 | offset.

    Each matched n-gram votes for (its train location - its offset in the document); the most
    common vote wins, so a phrase that also occurs elsewhere in the train data does not move it.
    """
    where = np.full(index.docs, _NOWHERE, dtype=np.int64)
    sel = docs[index.pos_doc] & (at != _NOWHERE)
    if not sel.any():
        return where
    doc = index.pos_doc[sel].astype(np.int64)
    vote = np.maximum(at[sel] - index.pos_lead[sel], 0)
    order = np.lexsort((vote, doc))
    doc, vote = doc[order], vote[order]
    new_run = np.ones(len(doc), dtype=bool)
    new_run[1:] = (doc[1:] != doc[:-1]) | (vote[1:] != vote[:-1])
    run_at = np.flatnonzero(new_run)
    run_len = np.diff(np.append(run_at, len(doc)))
    # Longest run per document: order runs by (document, -length), keep each document's first.
    best = np.lexsort((-run_len, doc[run_at]))
    run_doc = doc[run_at][best]
    first_of_doc = np.ones(len(best), dtype=bool)
    first_of_doc[1:] = run_doc[1:] != run_doc[:-1]
    where[run_doc[first_of_doc]] = vote[run_at][best][first_of_doc]
    return where


def scan_train(
    index: ValIndex,
    train: Sequence[Path],
    *,
    fraction: float = 1.0,
    seed: int = 0,
    workers: int = 1,
    on_shard: Callable[[ShardScan], None] | None = None,
) -> list[ShardScan]:
    """Scan the train shards, in parallel over shards when ``workers`` > 1."""
    lookup = _Lookup(index.ngram, index.hashes, index.lead, index.span, index.filter_bits, index.bitmap)
    jobs = [(str(p), i, fraction, seed) for i, p in enumerate(train)]
    results: list[ShardScan] = []
    if workers <= 1 or len(jobs) <= 1:
        for path, i, f, s in jobs:
            r = scan_shard(Path(path), i, lookup, f, s)
            results.append(r)
            if on_shard:
                on_shard(r)
        return results
    with tempfile.TemporaryDirectory(prefix="pgolf-audit-") as tmp:
        # Workers map the index from files: no pickling of large arrays, any start method.
        np.save(Path(tmp) / "hashes.npy", index.hashes)
        np.save(Path(tmp) / "lead.npy", index.lead)
        np.save(Path(tmp) / "span.npy", index.span)
        np.save(Path(tmp) / "bitmap.npy", index.bitmap)
        with ProcessPoolExecutor(
            max_workers=min(workers, len(jobs)),
            initializer=_worker_init,
            initargs=(tmp, index.ngram, index.filter_bits),
        ) as pool:
            for r in pool.map(_worker_scan, jobs):
                results.append(r)
                if on_shard:
                    on_shard(r)
    return results


def audit(
    data_dir: Path,
    *,
    fraction: float | None = 1.0,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
    rules: AuditRules = AUDIT_RULES,
) -> AuditReport:
    """Audit a dataset folder. ``fraction`` 1.0: full scan; None: the planned sampling fraction
    (``rules.target_detection`` at ``rules.design_contamination``); else that fraction."""
    t0 = time.perf_counter()
    try:
        files = list_dataset(Path(data_dir))
    except ShardError as exc:
        raise PgolfError(str(exc)) from None
    if not files.val:
        raise PgolfError(
            f"{data_dir}: no {RULES.shards.val_prefix}*{RULES.shards.suffix} shards to audit against"
        )
    if not files.train:
        raise PgolfError(f"{data_dir}: no {RULES.shards.train_prefix}*{RULES.shards.suffix} shards to audit")
    if fraction is not None and not 0.0 < fraction <= 1.0:
        raise PgolfError(f"sample fraction {fraction}: expected a number in (0, 1]")
    n_workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    with _Progress(progress, sum(read_header(p) for p in files.train)) as bar:
        val = read_val(files.val)
        bar.note(f"indexing {len(val):,} validation tokens ({rules.ngram}-token n-grams)")
        index = build_index(val, rules.ngram)
        f = plan_fraction(index, rules) if fraction is None else fraction
        bar.note(
            f"indexed {len(index.hashes):,} distinct n-grams of {index.docs:,} documents in "
            f"{time.perf_counter() - t0:.1f} s; scanning {len(files.train)} train shard(s) "
            + ("in full" if f >= 1.0 else f"at sample fraction {f:.4g}")
            + f" on {n_workers} process(es)"
        )
        bar.start()
        scans = scan_train(index, files.train, fraction=f, seed=seed, workers=n_workers, on_shard=bar.advance)
    return judge(
        index,
        scans,
        [p.name for p in files.train],
        mode="full" if f >= 1.0 else "sampled",
        fraction=f,
        seed=None if f >= 1.0 else seed,
        workers=n_workers,
        elapsed_s=time.perf_counter() - t0,
        rules=rules,
    )


class _Progress:
    """Train tokens scanned, rate, elapsed and ETA on stderr (rich), or nothing."""

    def __init__(self, enabled: bool, total_tokens: int) -> None:
        self.enabled = enabled
        self.total = total_tokens
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("audit: train tokens"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True, highlight=False),
            )
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(f"pgolf audit: {text}")

    def start(self) -> None:
        if self._bar is not None:
            self._task = self._bar.add_task("scan", total=self.total)

    def advance(self, scan: ShardScan) -> None:
        if self._task is not None:
            self._bar.advance(self._task, scan.tokens)


def resolve_dataset_dir(data_dir: Path, variant: str) -> Path:
    """A folder of shards as given, or ``DATA_DIR/datasets/<dataset>`` of a `pgolf fetch` folder."""
    from harness.variants import get_variant

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise PgolfError(f"{data_dir}: not a directory, expected a folder of shards or a fetch --data-dir")
    files = list_dataset(data_dir)
    if files.train or files.val:
        return data_dir
    fetched = data_dir / "datasets" / get_variant(variant).dataset
    if fetched.is_dir():
        return fetched
    raise PgolfError(f"{data_dir}: no shards here and no {fetched.relative_to(data_dir)} (variant {variant})")


# ---------------------------------------------------------------- once per dataset, for `pgolf run`


def audit_cached(
    dataset_dir: Path,
    lock_path: Path | None,
    *,
    fraction: float | None = None,
    workers: int | None = None,
    progress: bool = False,
    rules: AuditRules = AUDIT_RULES,
) -> dict[str, Any]:
    """:meth:`AuditReport.summary` of the dataset, computed once per data lock.

    The cache key is the lock file's sha256 (exactly which data), the rules and the fraction; the
    cache lives beside the lock (``<lock dir>/.pgolf-audit/``, where `pgolf fetch` keeps its own
    state). Without a lock file nothing is cached: the audit runs each time, and nothing is written
    into a data folder the harness did not fetch. A cache that cannot be written is not an error.
    """
    import hashlib
    import json

    from harness.fetch import lock_digest

    if lock_path is None:
        report = audit(dataset_dir, fraction=fraction, workers=workers, progress=progress, rules=rules)
        return {
            **report.summary(),
            "data_key": None,
            "elapsed_s": round(report.elapsed_s, 3),
            "cached": False,
        }
    data_key = lock_digest(lock_path)
    key = hashlib.sha256(json.dumps([data_key, asdict(rules), fraction]).encode()).hexdigest()[:32]
    cache = lock_path.parent / rules.cache_dir / f"{key}.json"
    try:
        cached = json.loads(cache.read_text("utf-8"))
        if isinstance(cached, dict) and cached.get("data_key") == data_key:
            return {**cached, "cached": True}
    except (OSError, ValueError):
        pass
    report = audit(dataset_dir, fraction=fraction, workers=workers, progress=progress, rules=rules)
    summary = {**report.summary(), "data_key": data_key, "elapsed_s": round(report.elapsed_s, 3)}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        tmp.replace(cache)
    except OSError:
        pass
    return {**summary, "cached": False}


def audit_for_run(dataset_dir: Path, lock_path: Path | None, progress: bool = False) -> dict[str, Any] | None:
    """The audit `pgolf run` records before training (``AUDIT_RULES.run_mode``, cached per data
    lock); None when the folder lacks train or val shards (nothing to compare)."""
    files = list_dataset(dataset_dir)
    if not files.train or not files.val:
        return None
    fraction = 1.0 if AUDIT_RULES.run_mode == "full" else None
    return audit_cached(dataset_dir, lock_path, fraction=fraction, progress=progress)


def describe(summary: dict[str, Any]) -> str:
    """One line for a person: the verdict and what it rests on."""
    how = (
        "full scan"
        if summary["mode"] == "full"
        else f"sampled {summary['sample_fraction']:.3g} of positions, "
        f"P(detect {summary['detection_contamination']:.1%} copied) {summary['detection_probability']:.1%}"
    )
    return (
        f"{summary['verdict']}: {summary['found_docs']:,} of {summary['judged_docs']:,} validation documents "
        f"found in {summary['train_shards']} train shard(s) ({summary['ngram']}-token n-grams, {how})"
    )
