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
