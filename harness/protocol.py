"""The native run protocol between the harness and a trainer (DESIGN §4).

The trainer is self-contained and re-declares these names; this module is the
harness side of the contract and the reference for anyone adopting it.
"""

from __future__ import annotations

import json
from typing import Any

EVENT_PREFIX = ":::PGOLF "

# Phase selector and the environment the harness gives each phase.
ENV_PHASE = "PGOLF_PHASE"
PHASE_TRAIN = "train"
PHASE_EVAL = "eval"
ENV_DATA_PATH = "DATA_PATH"
ENV_TOKENIZER_PATH = "TOKENIZER_PATH"
ENV_ARTIFACT_DIR = "ARTIFACT_DIR"
ENV_SEED = "SEED"
ENV_RUN_ID = "RUN_ID"
ENV_MAX_WALLCLOCK = "MAX_WALLCLOCK_SECONDS"
ENV_RESULT_PATH = "RESULT_PATH"
ENV_IMAGE = "PGOLF_IMAGE"

# Events a trainer prints (usually rank 0 only), one JSON object per line after EVENT_PREFIX.
# Any rank may mark: the harness takes the earliest train_start and the latest train_end, and
# holds the time from the last train_end to the phase's exit (export) to an allowance.
EV_TRAIN_START = "train_start"  # {}
EV_STEP = "step"  # {step, train_loss, lr_scale?, tokens?, step_ms?}
EV_VAL = "val"  # {step, val_loss, val_bpb}  (periodic validation, standalone only)
EV_TRAIN_END = "train_end"  # {step}
EV_ARTIFACT = "artifact"  # {bytes, files?}  (trainer's own claim; the harness recounts)
EV_EVAL_START = "eval_start"  # {}
EV_EVAL_END = "eval_end"  # {val_loss, val_bpb, val_tokens, val_bytes}

RESULT_KEYS = ("val_loss", "val_bpb", "val_tokens", "val_bytes")


def format_event(event: str, **fields: Any) -> str:
    return EVENT_PREFIX + json.dumps({"event": event, **fields}, separators=(",", ":"))


def parse_event(line: str) -> dict[str, Any] | None:
    """The event a log line carries, or None when it carries none (or is malformed)."""
    idx = line.find(EVENT_PREFIX)
    if idx < 0:
        return None
    try:
        obj = json.loads(line[idx + len(EVENT_PREFIX) :])
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("event"), str):
        return None
    return obj


# Eval protocol v2: the harness owns the val set and the metric (harness/scoring/).
ENV_SCORE_SOCKET = "PGOLF_SCORE_SOCKET"  # Unix socket path; eval ranks get tokens only here
EVAL_PROTOCOLS = ("v2", "v1")  # v1: the trainer reads val shards and writes RESULT_PATH (self-reported)
