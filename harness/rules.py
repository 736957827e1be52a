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
