"""The challenge's rules, in one place.

Every limit, name and threshold the harness enforces lives in :data:`RULES`.
Nothing else in the project writes one of these numbers down again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ShardFormat:
    """Binary layout of a token shard (DESIGN §2)."""

    magic: int = 20240520
    version: int = 1
    header_ints: int = 256
    header_int_dtype: str = "<i4"
    token_dtype: str = "<u2"
    bos_id: int = 1
    train_prefix: str = "fineweb_train_"
    val_prefix: str = "fineweb_val_"
    val_bytes_prefix: str = "fineweb_val_bytes_"
    suffix: str = ".bin"

    @property
    def header_bytes(self) -> int:
        return self.header_ints * 4

    @property
    def token_bytes(self) -> int:
        return 2

    @property
    def max_vocab(self) -> int:
        """uint16 ids: a vocabulary larger than this cannot be stored."""
        return 1 << 16


@dataclass(frozen=True)
class ChallengeRules:
    """Limits, names and thresholds of the parameter-golf challenge."""

    artifact_cap_bytes: int = 16_000_000
    train_time_limit_s: float = 600.0
    eval_time_limit_s: float = 600.0
    record_margin_nats: float = 0.005
    significance_p: float = 0.01
    min_record_seeds: int = 3
    record_gpu_count: int = 8
    record_gpu_model: str = "H100 80GB HBM3"
    record_gpu_form_factor: str = "SXM"
    code_filename: str = "train_gpt.py"
    record_tracks: tuple[str, ...] = ("10min_16mb",)
    tracks: tuple[str, ...] = ("10min_16mb", "non_record_16mb")
    records_root: str = "records"
    track_dir_prefix: str = "track_"
    record_dir_pattern: str = r"^(?P<date>\d{4}-\d{2}-\d{2})_(?P<name>[A-Za-z0-9][A-Za-z0-9._+-]*)$"
    required_record_files: tuple[str, ...] = (
        "README.md",
        "submission.json",
        "train_gpt.py",
        "requirements.txt",
    )
    default_seeds: tuple[int, ...] = (42, 0, 1234)
    shards: ShardFormat = field(default_factory=ShardFormat)

    def seed_log_name(self, seed: int) -> str:
        return f"train_seed{seed}.log"

    def track_dir(self, track: str) -> str:
        if track not in self.tracks:
            raise ValueError(f"unknown track {track!r}: expected one of {', '.join(self.tracks)}")
        return f"{self.track_dir_prefix}{track}"

    def is_record_track(self, track: str) -> bool:
        return track in self.record_tracks

    def parse_record_dir_name(self, name: str) -> re.Match[str] | None:
        return re.match(self.record_dir_pattern, name)


RULES = ChallengeRules()


@dataclass(frozen=True)
class AuditRules:
    """Data provenance (``pgolf audit``, harness/audit.py): when training data holds validation text.

    ``ngram``: tokens per hashed n-gram. Measured on the clean proxy corpus (benchmarks/audit_bench.py,
    tests/test_audit.py): 16-token n-grams (~45 characters of English) found in the train split cover
    at most a few percent of any validation document, while shorter ones start to match code idioms
    and shared phrases. ``doc_found_coverage``: a document counts as found when at least this
    fraction of its n-grams occur in the train data (one shared line of boilerplate does not).
    ``min_doc_ngrams``: shorter documents are not judged. ``contaminated_min_docs``: found documents
    that make the verdict ``contaminated``. ``design_contamination`` / ``target_detection``: the
    sampled mode's default fraction is the smallest one that finds a copy of that fraction of the
    judged documents (the shortest ones, the worst case) with that probability. ``run_mode``: what
    `pgolf run` does before training (once per data lock, cached in ``cache_dir`` beside the lock).
    """

    ngram: int = 16
    doc_found_coverage: float = 0.8
    min_doc_ngrams: int = 32
    contaminated_min_docs: int = 1
    design_contamination: float = 0.001
    target_detection: float = 0.999
    first_found_reported: int = 10
    run_mode: str = "sampled"
    cache_dir: str = ".pgolf-audit"


AUDIT_RULES = AuditRules()
