"""The run directory contract: per-seed ``result.json`` and the aggregated ``run.json``.

Layout written by ``pgolf run`` and read by ``pgolf package`` / ``pgolf stats``::

    RUN_DIR/
      run.json                    aggregate: submission, seeds, per-seed status, rehearsal flag
      train_seed<SEED>.log        all ranks' stdout+stderr, both phases
      seed<SEED>/result.json      schema: harness/schemas/result.schema.json
      seed<SEED>/events.jsonl     one line per trainer event: {"t": harness seconds, "phase", "event", ...}
      seed<SEED>/eval_result.json what the eval phase wrote to RESULT_PATH (the trainer's claim, kept as is)
      seed<SEED>/artifact/        what the train phase left in ARTIFACT_DIR
      code/                       the exact submission files that ran (train_gpt.py, ...)
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from harness.errors import PgolfError

RESULT_FILE = "result.json"
RUN_FILE = "run.json"
EVENTS_FILE = "events.jsonl"
CODE_DIR = "code"
ARTIFACT_DIR = "artifact"


def seed_dir(run_dir: Path, seed: int) -> Path:
    return run_dir / f"seed{seed}"


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A JSON Schema shipped in ``harness/schemas`` (e.g. ``result``, ``submission``)."""
    text = resources.files("harness.schemas").joinpath(f"{name}.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


class ResultError(PgolfError):
    """A result file that is missing, unreadable or does not match its schema."""


def validate_result(result: dict[str, Any], where: str = "result") -> None:
    try:
        jsonschema.validate(result, load_schema("result"))
    except jsonschema.ValidationError as exc:
        path = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise ResultError(f"{where}: field {path}: {exc.message}") from None


def read_result(path: Path) -> dict[str, Any]:
    try:
        result = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ResultError(f"{path}: not found") from None
    except json.JSONDecodeError as exc:
        raise ResultError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    validate_result(result, str(path))
    return dict(result)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so a crash never leaves a half-written file behind."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", "utf-8")
    tmp.replace(path)


def write_result(path: Path, result: dict[str, Any]) -> None:
    validate_result(result, str(path))
    write_json_atomic(path, result)


def read_events(path: Path) -> list[dict[str, Any]]:
    """Events of one seed; malformed lines (a killed writer) are skipped."""
    events: list[dict[str, Any]] = []
    if not path.exists():
        return events
    for line in path.read_text("utf-8").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            events.append(obj)
    return events
