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
class PhaseWallPolicy:
    """How much of a phase the clock holds, and what the sandbox gives a phase (issue 18).

    Under ``challenge`` the train clock runs between the earliest ``train_start`` and the
    latest ``train_end`` mark (the challenge's accepted practice leaves the export out);
    the time after the last ``train_end`` until the phase exits (quantization,
    compression) is measured and held to ``export_allowance_s``. Under ``strict`` the
    whole phase is held to the limit.
    """

    export_allowance_s: float = 120.0  # the largest export time seen in accepted records
    sandbox_setup_budget_s: float = 0.5  # benchmark target: bwrap's cost per phase on CPU


PHASE_WALLS = PhaseWallPolicy()


class CheckPolicy:
    """How `pgolf check` reads folders written by hand; each tolerance is named in the verdict it affects."""

    # The official training loop checks its clock (unsynchronised) after each step and stops after the
    # step that crosses the limit, then synchronises: every accepted record overshoots by that one step.
    # Measured against the average step time it is up to 1.43 steps on the challenge's folders (the
    # last step runs long), so the allowance is two average steps. Within it: a pass, overshoot shown.
    train_overshoot_steps: float = 2.0
    # The challenge repository's own requirements.txt (commit 4908dc4), plus triton, which ships with
    # torch: a folder needs its own requirements.txt only for packages beyond these.
    challenge_packages: tuple[str, ...] = (
        "numpy",
        "tqdm",
        "torch",
        "huggingface_hub",
        "kernels",
        "setuptools",
        "typing_extensions",
        "datasets",
        "tiktoken",
        "sentencepiece",
        "triton",
    )
    # Import name -> other names a README or requirements.txt may use for the same package.
    package_aliases: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("flash_attn_interface", ("flash_attn", "flash-attn", "flash attention", "flashattention", "fa3")),
        ("zstandard", ("zstd",)),
        ("fla", ("flash-linear-attention", "flash_linear_attention")),
        ("mamba_ssm", ("mamba-ssm",)),
        ("python_minifier", ("python-minifier",)),
    )
    # Track names the repository's folders use, mapped to the track they mean.
    track_aliases: tuple[tuple[str, str], ...] = (
        ("non-record-16mb", "non_record_16mb"),
        ("non-record-unlimited-compute-16mb", "non_record_16mb"),
        ("non_record_unlimited_compute_16mb", "non_record_16mb"),
        ("10min-16mb", "10min_16mb"),
    )
    # submission.json's date is when the folder was submitted: on or after the folder's date
    # (one day before allowed for time zones), at most this many days after.
    date_days_before_folder: int = 1
    date_days_after_folder: int = 14
    # A claimed std may be the sample (ddof 1) or the population (ddof 0) std; the verdict says which.
    std_ddofs: tuple[int, ...] = (1, 0)
    # Stds are printed with two or three digits and often from rounded per-seed values.
    std_relative_tolerance: float = 0.05
    # bytes_total may be the mean or the max over the seeds' artifacts (the verdict says which).
    bytes_total_aggregates: tuple[str, ...] = ("max", "mean")
    # Field names seen in the repository's submission.json files, mapped to the names pgolf uses.
    submission_field_aliases: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("val_bpb", ("mean_val_bpb",)),
        ("val_loss", ("mean_val_loss",)),
        ("bytes_total", ("artifact_bytes", "artifact_size_bytes")),
        ("bytes_code", ("code_bytes",)),
    )
    seed_field_aliases: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("step_avg_ms", ("ms_per_step",)),
        ("eval_time_s", ("ttt_eval_time_s",)),
    )
    submission_glob: str = "submission*.json"
    code_glob: str = "train*.py"
    log_suffixes: tuple[str, ...] = (".log", ".txt")
    # Logs may sit in sub-folders (logs/, a rerun folder): read this deep, at most this many.
    log_dir_depth: int = 2
    max_logs: int = 64

    def track_name(self, name: str) -> str:
        return dict(self.track_aliases).get(name, name)

    def aliases_of(self, package: str) -> tuple[str, ...]:
        return (package, *dict(self.package_aliases).get(package, ()))


@dataclass(frozen=True)
class SignificancePolicy:
    """A way to decide that a record beats the previous one (`pgolf check --leaderboard`)."""

    name: str
    description: str
    margin_nats: float
    alpha: float
    # "one-sample": per-seed val_loss against the previous score minus the margin;
    # "welch": two samples (the previous record's seeds), unequal variances.
    test: str


README_SIGNIFICANCE = SignificancePolicy(
    name="readme",
    description="README rule: beat the previous record by 0.005 nats at p < 0.01 (one-sided t-test)",
    margin_nats=RULES.record_margin_nats,
    alpha=RULES.significance_p,
    test="one-sample",
)
MAINTAINERS_SIGNIFICANCE = SignificancePolicy(
    name="maintainers",
    description="maintainers' practice when merging: one-sided Welch test vs the previous row, p < 0.25",
    margin_nats=0.0,
    alpha=0.25,
    test="welch",
)
SIGNIFICANCE_POLICIES: dict[str, SignificancePolicy] = {
    p.name: p for p in (README_SIGNIFICANCE, MAINTAINERS_SIGNIFICANCE)
}
CHECK_POLICY = CheckPolicy()


@dataclass(frozen=True)
class AuditRules:
    """Data provenance (``pgolf audit``, harness/audit.py): when training data holds validation text.

    ``ngram``: tokens per hashed n-gram. Measured on the clean proxy corpus (benchmarks/audit_bench.py,
    tests/test_audit.py): documentation repeats whole paragraphs between pages, so the largest share of
    any clean validation document found in the train split is 64% with 8-token n-grams, 51% with 12 and
    45.6% with 16 (~45 characters of English); longer n-grams gain little (39% at 32) and cost detection. ``doc_found_coverage``: a document counts as found when at least this
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


@dataclass(frozen=True)
class ScoringRules:
    """Eval protocol v2 (witnessed scoring): limits and tolerances of the scoring channel."""

    # Most targets one segment may hold, whatever the trainer asks for: bounds what a rank
    # holds beyond what it has already committed (and so any adaptation inside a segment).
    max_segment_targets: int = 262_144
    # Most already-seen tokens the harness sends before a segment's first target.
    max_context_tokens: int = 8_192
    # Normalization audit: |logsumexp(log-probs)| and |entry + returned NLL|, nats (float32
    # log-softmax of bf16-autocast logits is good to ~1e-5; cheating shifts are >= 1e-2).
    normalization_atol_nats: float = 1e-3
    audit_positions: int = 4  # target positions audited per audited segment
    audit_segment_rate: float = 0.05  # share of segments audited, besides each rank's first
    # Causality audit: replayed NLLs vs the main pass. The replay runs other tensor shapes
    # (a shorter segment), so bf16 kernels may round differently; looking ahead moves an NLL
    # by whole nats.
    causality_atol_nats: float = 0.05
    causality_audit_ranks: int = 2  # ranks whose first segment is replayed
    claimed_rtol: float = 1e-6  # trainer's own val_loss / val_bpb vs the witnessed ones
    negative_nll_atol: float = 1e-6  # float32 rounding of a near-certain target
    max_frame_header_bytes: int = 1 << 20
    io_timeout_s: float = 600.0  # one frame; the phase ceiling stops a trainer that hangs


SCORING = ScoringRules()
