"""Verify a record folder rule by rule, never running anything from it.

The rules are data: :data:`CHECK_RULES` is a list of :class:`Rule` objects, each with a
name, a description and a checker that reads a loaded :class:`Record` and returns
:class:`Finding` objects (pass / fail / not-verifiable, with evidence: value, file, line).
Every limit comes from :data:`harness.rules.RULES`; every statistic from :mod:`harness.stats`.

A folder made by ``pgolf package`` is verifiable throughout. The challenge's older folders
carry fewer facts (no seeds list, one ``train.log``, free-form logs): the checker reads what
is there and says which rules it could not verify. Odd files (binary junk, bad UTF-8,
huge lines, FIFOs, wrong JSON types) make a rule fail or not-verifiable, never crash it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jsonschema

from harness import stats
from harness.errors import PgolfError
from harness.fingerprint import file_sha256
from harness.logparse import Fact, LogFacts, decimals_of, read_log, read_text_tolerant
from harness.results import ResultError, load_schema, validate_result
from harness.rules import RULES

Verdict = Literal["pass", "fail", "not-verifiable"]
PASS: Verdict = "pass"
FAIL: Verdict = "fail"
NOT_VERIFIABLE: Verdict = "not-verifiable"
_SEVERITY = {PASS: 0, NOT_VERIFIABLE: 1, FAIL: 2}

SUBMISSION_FILE = "submission.json"
MAX_JSON_BYTES = 4 * 1024 * 1024
# Logs other than train_seed<SEED>.log (e.g. an early folder's train.log) are read only to find
# a single run's numbers; a folder with very many of them is not worth reading whole.
MAX_OTHER_LOGS = 16
# No real submission has more seeds than this; a longer list is junk and would only cost time.
MAX_SEEDS = 1000
# Where a folder may keep the harness's per-seed result.json ({seed} is filled in).
RESULT_CANDIDATES = (
    "seed{seed}/result.json",
    "results/seed{seed}/result.json",
    "results/seed{seed}.json",
    "result_seed{seed}.json",
)
_SEED_LOG_RE = re.compile(r"^train_seed(?P<seed>-?\d+)\.log$")


@dataclass(frozen=True)
class Evidence:
    """Where a value was read: file (relative to the record folder) and 1-based line."""

    value: Any
    file: str | None = None
    line: int | None = None
    text: str | None = None

    def where(self) -> str:
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_dict(self) -> dict[str, Any]:
        return {"value": _jsonable(self.value), "file": self.file, "line": self.line, "text": self.text}


@dataclass(frozen=True)
class Finding:
    """One verdict of one rule, about one subject (a seed, a file, or the whole folder)."""

    rule: str
    verdict: Verdict
    detail: str
    subject: str = ""
    evidence: tuple[Evidence, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "subject": self.subject,
            "verdict": self.verdict,
            "detail": self.detail,
            "evidence": [e.to_dict() for e in self.evidence],
        }


@dataclass
class SeedRun:
    """Everything the folder says about one seed."""

    seed: int
    log_file: str | None = None
    log: LogFacts | None = None
    result_file: str | None = None
    result: dict[str, Any] | None = None
    claim: dict[str, Any] = field(default_factory=dict)


@dataclass
class Record:
    """A record folder, loaded once, tolerantly. Nothing in it is executed or imported."""

    path: Path
    files: dict[str, Path]
    notes: list[str]
    submission: dict[str, Any] | None
    submission_error: str | None
    seeds: list[int]
    seeds_source: str
    runs: dict[int, SeedRun]
    other_logs: dict[str, LogFacts]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def parent_name(self) -> str:
        return self.path.parent.name

    def field(self, key: str) -> Any:
        return self.submission.get(key) if self.submission is not None else None

    def track(self) -> str | None:
        claimed = self.field("track")
        if isinstance(claimed, str):
            return claimed
        parent = self.parent_name
        if parent.startswith(RULES.track_dir_prefix):
            return parent[len(RULES.track_dir_prefix) :]
        return None

    def is_record_track(self) -> bool:
        track = self.track()
        return track is not None and RULES.is_record_track(track)

    def is_pgolf(self) -> bool:
        return self.submission is not None and "schema_version" in self.submission


CheckFn = Callable[[Record], list[Finding]]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: CheckFn


@dataclass
class CheckReport:
    record_dir: Path
    findings: list[Finding]
    rules: tuple[Rule, ...]
    notes: list[str]

    def rule_verdict(self, name: str) -> Verdict:
        verdicts = [f.verdict for f in self.findings if f.rule == name]
        return worst(verdicts) if verdicts else NOT_VERIFIABLE

    @property
    def verdict(self) -> Verdict:
        return worst(f.verdict for f in self.findings)

    @property
    def ok(self) -> bool:
        return all(f.verdict != FAIL for f in self.findings)

    def failed_rules(self) -> list[str]:
        return sorted({f.rule for f in self.findings if f.verdict == FAIL})

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {PASS: 0, FAIL: 0, NOT_VERIFIABLE: 0}
        for f in self.findings:
            out[f.verdict] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_dir": str(self.record_dir),
            "verdict": self.verdict,
            "ok": self.ok,
            "counts": self.counts(),
            "rules": [
                {"name": r.name, "description": r.description, "verdict": self.rule_verdict(r.name)}
                for r in self.rules
            ],
            "findings": [f.to_dict() for f in self.findings],
            "notes": self.notes,
        }


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    out: Verdict = PASS
    for v in verdicts:
        if _SEVERITY[v] > _SEVERITY[out]:
            out = v
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


# ---------------------------------------------------------------- loading


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _read_json(path: Path) -> tuple[Any, str | None]:
    text, notes = read_text_tolerant(path, MAX_JSON_BYTES)
    if text is None:
        return None, "; ".join(notes)
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    except RecursionError:
        return None, "not valid JSON (nested too deeply)"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _parse_seeds(submission: dict[str, Any] | None) -> tuple[list[int], str]:
    if submission is None:
        return [], ""
    raw = submission.get("seeds")
    if isinstance(raw, list):
        seeds = [s for s in (_integer(x) for x in raw) if s is not None]
        if seeds:
            return list(dict.fromkeys(seeds)), "submission.json seeds"
    results = submission.get("seed_results")
    if isinstance(results, dict):
        keys = [int(k) for k in results if isinstance(k, str) and re.fullmatch(r"-?\d+", k)]
        if keys:
            return keys, "submission.json seed_results"
    return [], ""


def load_record(record_dir: Path) -> Record:
    """Read a record folder. Raises PgolfError only when the folder itself is not there."""
    path = Path(record_dir)
    if not path.exists():
        raise PgolfError(f"{path}: not found (expected a record folder)")
    if not path.is_dir():
        raise PgolfError(f"{path}: not a directory (expected a record folder)")
    path = path.resolve()
    notes: list[str] = []
    files: dict[str, Path] = {}
    try:
        entries = sorted(path.iterdir())
    except OSError as exc:
        raise PgolfError(f"{path}: cannot list ({exc.strerror or exc})") from None
    for entry in entries:
        if _is_regular(entry):
            files[entry.name] = entry

    submission: dict[str, Any] | None = None
    submission_error: str | None = None
    if SUBMISSION_FILE in files:
        obj, err = _read_json(files[SUBMISSION_FILE])
        if err is not None:
            submission_error = err
        elif not isinstance(obj, dict):
            submission_error = f"expected a JSON object at the top, got {type(obj).__name__}"
        else:
            submission = obj
    else:
        submission_error = "missing"

    seeds, source = _parse_seeds(submission)
    if len(seeds) > MAX_SEEDS:
        notes.append(f"{len(seeds)} seeds claimed: checked only the first {MAX_SEEDS}")
        seeds = seeds[:MAX_SEEDS]
    seed_logs = {int(m["seed"]): name for name in files if (m := _SEED_LOG_RE.match(name)) is not None}
    if not seeds and seed_logs:
        seeds, source = sorted(seed_logs), "train_seed<SEED>.log file names"

    other_logs: dict[str, LogFacts] = {}
    candidates = [
        n
        for n in files
        if not _SEED_LOG_RE.match(n) and (n.endswith(".log") or (n.endswith(".txt") and "log" in n.lower()))
    ]
    if len(candidates) > MAX_OTHER_LOGS:
        notes.append(f"{len(candidates)} other log files: read only the first {MAX_OTHER_LOGS}")
    for name in candidates[:MAX_OTHER_LOGS]:
        facts = read_log(files[name])
        if facts.final is not None or facts.artifact_bytes is not None:
            other_logs[name] = facts
    # The challenge's early folders: one train.log, no seeds list. That log is one run; its
    # seed line names the seed, so its numbers can still be checked.
    if not seeds and len(other_logs) == 1:
        name, facts = next(iter(other_logs.items()))
        if facts.seed is not None:
            seeds, source = [facts.seed.value], f"the seed line of {name}"

    runs: dict[int, SeedRun] = {}
    claims = submission.get("seed_results") if submission else None
    for seed in seeds:
        run = SeedRun(seed=seed)
        if isinstance(claims, dict) and isinstance(claims.get(str(seed)), dict):
            run.claim = claims[str(seed)]
        log_name = RULES.seed_log_name(seed)
        if log_name in files:
            run.log_file = log_name
            run.log = read_log(files[log_name])
            notes.extend(run.log.warnings)
        for pattern in RESULT_CANDIDATES:
            rel = pattern.format(seed=seed)
            candidate = path / rel
            if _is_regular(candidate):
                obj, err = _read_json(candidate)
                if isinstance(obj, dict):
                    run.result_file, run.result = rel, obj
                else:
                    notes.append(f"{rel}: {err or 'expected a JSON object'}; ignored")
                break
        runs[seed] = run

    # A single-seed claim whose only log is one train.log: read that seed's numbers from it.
    if len(seeds) == 1 and runs[seeds[0]].log is None and len(other_logs) == 1:
        name, facts = next(iter(other_logs.items()))
        runs[seeds[0]].log_file, runs[seeds[0]].log = name, facts
        notes.append(f"seed {seeds[0]}: no {RULES.seed_log_name(seeds[0])}; read its numbers from {name}")
    return Record(
        path=path,
        files=files,
        notes=notes,
        submission=submission,
        submission_error=submission_error,
        seeds=seeds,
        seeds_source=source,
        runs=runs,
        other_logs=other_logs,
    )


# ---------------------------------------------------------------- helpers


def half_unit(value: float, decimals: int | None = None) -> float:
    """Half a unit in the last printed place: the rounding a printed number may carry."""
    places = decimals if decimals is not None else decimals_of(repr(float(value)))
    return 0.5 * 10.0 ** (-places)


def matches(claimed: float, measured: float, measured_decimals: int | None = None) -> bool:
    """Equal up to the rounding of either side (as printed), plus float noise."""
    tol = half_unit(claimed) + half_unit(measured, measured_decimals) + 1e-12 * max(1.0, abs(measured))
    return abs(claimed - measured) <= tol


def _fact_evidence(run: SeedRun, fact: Fact[Any] | None) -> Evidence | None:
    if fact is None:
        return None
    return Evidence(fact.value, run.log_file, fact.line, fact.text)


def _claim_evidence(key: str, value: Any) -> Evidence:
    return Evidence(value, SUBMISSION_FILE, None, key)


def _subject(seed: int) -> str:
    return f"seed {seed}"


def _no_seeds(rule: str) -> list[Finding]:
    return [
        Finding(
            rule, NOT_VERIFIABLE, "no seeds known (no seeds list, no seed_results, no train_seed<SEED>.log)"
        )
    ]


# ---------------------------------------------------------------- rules


def check_required_files(rec: Record) -> list[Finding]:
    out = []
    for name in RULES.required_record_files:
        if name in rec.files:
            size = rec.files[name].stat().st_size
            verdict = PASS if size > 0 else FAIL
            detail = "present" if size > 0 else "present but empty"
            out.append(Finding("required_files", verdict, detail, name, (Evidence(size, name),)))
        else:
            out.append(Finding("required_files", FAIL, "missing (a record folder needs it)", name))
    return out


def check_seed_logs(rec: Record) -> list[Finding]:
    rule = "seed_logs"
    if not rec.seeds:
        logs = sorted(n for n in rec.files if n.endswith(".log"))
        detail = "no train_seed<SEED>.log and no seeds listed in submission.json"
        if logs:
            detail += f" (logs found: {', '.join(logs[:5])})"
        return [Finding(rule, FAIL, detail)]
    out = []
    for seed in rec.seeds:
        run = rec.runs[seed]
        name = RULES.seed_log_name(seed)
        if name not in rec.files:
            found = f"; its numbers were read from {run.log_file}" if run.log_file else ""
            out.append(
                Finding(
                    rule,
                    FAIL,
                    f"{name} missing ({rec.seeds_source} lists seed {seed}){found}",
                    _subject(seed),
                )
            )
            continue
        log = run.log
        if log is None or log.n_lines == 0:
            out.append(Finding(rule, FAIL, f"{name} is empty or unreadable", _subject(seed)))
            continue
        if log.seed is not None and log.seed.value != seed:
            out.append(
                Finding(
                    rule,
                    FAIL,
                    f"{name} says it ran seed {log.seed.value}, not {seed}",
                    _subject(seed),
                    (Evidence(log.seed.value, name, log.seed.line, log.seed.text),),
                )
            )
            continue
        ev = (
            (Evidence(seed, name, log.seed.line, log.seed.text),)
            if log.seed
            else (Evidence(log.n_lines, name),)
        )
        what = "its seed line agrees" if log.seed else "present (the log does not print its seed)"
        out.append(Finding(rule, PASS, f"{name}: {what}", _subject(seed), ev))
    extra = sorted(
        int(m["seed"]) for n in rec.files if (m := _SEED_LOG_RE.match(n)) and int(m["seed"]) not in rec.runs
    )
    if extra:
        out.append(Finding(rule, FAIL, f"seed logs for seeds not claimed in submission.json: {extra}"))
    return out


def check_seed_count(rec: Record) -> list[Finding]:
    rule = "seed_count"
    n = len(rec.seeds)
    track = rec.track()
    if not rec.is_record_track():
        return [
            Finding(
                rule,
                PASS,
                f"track {track!r} is not a record track: any number of seeds ({n})",
                evidence=(Evidence(n, SUBMISSION_FILE),),
            )
        ]
    verdict = PASS if n >= RULES.min_record_seeds else FAIL
    return [
        Finding(
            rule,
            verdict,
            f"{n} seed(s) on record track {track!r}; at least {RULES.min_record_seeds} needed",
            evidence=(Evidence(rec.seeds, None, None, f"seeds (from {rec.seeds_source or 'nowhere'})"),),
        )
    ]


def check_submission_json(rec: Record) -> list[Finding]:
    rule = "submission_json"
    if rec.submission is None:
        return [Finding(rule, FAIL, f"{SUBMISSION_FILE}: {rec.submission_error}", SUBMISSION_FILE)]
    bpb = rec.submission.get("val_bpb")
    if _number(bpb) is None:
        return [
            Finding(
                rule,
                FAIL,
                f"well-formed, but claims no score: val_bpb is {bpb!r}, expected a number",
                SUBMISSION_FILE,
                (_claim_evidence("val_bpb", bpb),),
            )
        ]
    return [
        Finding(
            rule,
            PASS,
            "well-formed JSON object with a val_bpb",
            SUBMISSION_FILE,
            (Evidence(len(rec.submission), SUBMISSION_FILE, None, "fields"),),
        )
    ]


def check_submission_schema(rec: Record) -> list[Finding]:
    rule = "submission_schema"
    if rec.submission is None:
        return [Finding(rule, NOT_VERIFIABLE, f"{SUBMISSION_FILE} not readable", SUBMISSION_FILE)]
    try:
        full = load_schema("submission")
    except (FileNotFoundError, json.JSONDecodeError, ModuleNotFoundError) as exc:
        return [Finding(rule, NOT_VERIFIABLE, f"submission schema not available ({exc})", SUBMISSION_FILE)]
    if rec.is_pgolf():
        schema, which = full, "full pgolf schema"
    else:
        # The challenge's older folders: the lenient leaderboard shape (types only).
        schema = {**full["$defs"]["leaderboard"], "$defs": full["$defs"]}
        which = "leaderboard fields only (no schema_version: not made by pgolf)"
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(rec.submission), key=lambda e: list(e.absolute_path))
    if not errors:
        return [Finding(rule, PASS, f"valid against the {which}", SUBMISSION_FILE)]
    out = []
    for err in errors[:10]:
        where = "/".join(str(p) for p in err.absolute_path) or "(top)"
        out.append(
            Finding(
                rule,
                FAIL,
                f"{which}: {where}: {err.message[:200]}",
                SUBMISSION_FILE,
                (
                    Evidence(
                        _jsonable(err.instance) if not isinstance(err.instance, dict) else "{...}",
                        SUBMISSION_FILE,
                        None,
                        where,
                    ),
                ),
            )
        )
    if len(errors) > 10:
        out.append(Finding(rule, FAIL, f"... and {len(errors) - 10} more schema errors", SUBMISSION_FILE))
    return out


def check_folder_name(rec: Record) -> list[Finding]:
    rule = "folder_name"
    m = RULES.parse_record_dir_name(rec.name)
    if m is None:
        return [
            Finding(
                rule,
                FAIL,
                f"{rec.name!r} does not match <YYYY-MM-DD>_<Name> ({RULES.record_dir_pattern})",
                rec.name,
                (Evidence(rec.name),),
            )
        ]
    try:
        dt.date.fromisoformat(m["date"])
    except ValueError:
        return [Finding(rule, FAIL, f"{m['date']!r} is not a calendar date", rec.name, (Evidence(rec.name),))]
    return [Finding(rule, PASS, f"date {m['date']}, name {m['name']}", rec.name, (Evidence(rec.name),))]


def _parse_date(value: str) -> dt.date | None:
    text = value.strip()
    try:
        return dt.date.fromisoformat(text[:10]) if re.match(r"^\d{4}-\d{2}-\d{2}", text) else None
    except ValueError:
        return None


def check_date(rec: Record) -> list[Finding]:
    rule = "date"
    claimed = rec.field("date")
    m = RULES.parse_record_dir_name(rec.name)
    if claimed is None:
        return [Finding(rule, NOT_VERIFIABLE, "submission.json has no date")]
    if not isinstance(claimed, str) or (date := _parse_date(claimed)) is None:
        return [
            Finding(
                rule,
                FAIL,
                f"date {claimed!r} is not YYYY-MM-DD or an ISO-8601 date-time",
                evidence=(_claim_evidence("date", claimed),),
            )
        ]
    if m is None:
        return [
            Finding(
                rule,
                NOT_VERIFIABLE,
                f"date {claimed} well-formed; folder name has no date to compare",
                evidence=(_claim_evidence("date", claimed),),
            )
        ]
    try:
        folder_date = dt.date.fromisoformat(m["date"])
    except ValueError:
        return [
            Finding(
                rule,
                NOT_VERIFIABLE,
                "folder date is not a calendar date",
                evidence=(_claim_evidence("date", claimed),),
            )
        ]
    gap = abs((date - folder_date).days)
    # A UTC date-time may fall on the next or previous calendar day of the author's folder date.
    allowed = 0 if len(claimed.strip()) == 10 else 1
    verdict = PASS if gap <= allowed else FAIL
    return [
        Finding(
            rule,
            verdict,
            f"date {claimed} vs folder date {folder_date} ({gap} day(s) apart, {allowed} allowed)",
            evidence=(_claim_evidence("date", claimed), Evidence(rec.name, None, None, "folder name")),
        )
    ]


def check_track(rec: Record) -> list[Finding]:
    rule = "track"
    claimed = rec.field("track")
    parent = rec.parent_name
    folder_track = (
        parent[len(RULES.track_dir_prefix) :] if parent.startswith(RULES.track_dir_prefix) else None
    )
    ev: list[Evidence] = []
    if claimed is not None:
        ev.append(_claim_evidence("track", claimed))
    if folder_track is not None:
        ev.append(Evidence(parent, None, None, "parent folder"))
    if claimed is None and folder_track is None:
        return [Finding(rule, NOT_VERIFIABLE, "no track field and the parent folder is not track_<track>")]
    if claimed is not None and claimed not in RULES.tracks:
        return [
            Finding(
                rule, FAIL, f"track {claimed!r} is not one of {', '.join(RULES.tracks)}", evidence=tuple(ev)
            )
        ]
    if folder_track is not None and folder_track not in RULES.tracks:
        return [
            Finding(rule, FAIL, f"parent folder {parent!r} is not a known track folder", evidence=tuple(ev))
        ]
    if claimed is not None and folder_track is not None and claimed != folder_track:
        return [
            Finding(rule, FAIL, f"track {claimed!r} but the folder sits in {parent!r}", evidence=tuple(ev))
        ]
    track = claimed or folder_track
    rehearsal = rec.field("rehearsal") is True
    if rehearsal and track is not None and RULES.is_record_track(track):
        return [Finding(rule, FAIL, f"a rehearsal on record track {track!r}", evidence=tuple(ev))]
    source = (
        "field and folder agree"
        if claimed and folder_track
        else ("field" if claimed else "parent folder only")
    )
    return [Finding(rule, PASS, f"{track} ({source})", evidence=tuple(ev))]


def _inside(rec: Record, name: object) -> Path | None:
    """``name`` as a path inside the folder, or None (absolute, ``..``, or not a string)."""
    if not isinstance(name, str) or not name:
        return None
    target = rec.path / name
    try:
        return target if target.resolve().is_relative_to(rec.path) else None
    except (OSError, ValueError):
        return None


def _sha256(path: Path | None) -> str | None:
    if path is None:
        return None
    if not _is_regular(path):
        return None
    try:
        return file_sha256(path)
    except OSError:
        return None


def check_file_integrity(rec: Record) -> list[Finding]:
    rule = "file_integrity"
    listed = rec.field("files")
    if not isinstance(listed, dict) or not listed:
        return [Finding(rule, NOT_VERIFIABLE, "submission.json lists no file hashes (files)")]
    out = []
    for name, meta in sorted(listed.items()):
        target = _inside(rec, name)
        if not isinstance(meta, dict):
            out.append(Finding(rule, FAIL, "entry is not an object with bytes and sha256", name))
            continue
        if target is None or not _is_regular(target):
            out.append(Finding(rule, FAIL, "listed in submission.json files but missing", name))
            continue
        size, digest = target.stat().st_size, _sha256(target)
        want_size, want_sha = _integer(meta.get("bytes")), meta.get("sha256")
        if want_size != size or want_sha != digest:
            out.append(
                Finding(
                    rule,
                    FAIL,
                    f"on disk {size} bytes sha256 {str(digest)[:12]}..., listed {want_size} bytes sha256 {str(want_sha)[:12]}...",
                    name,
                    (Evidence(size, name), _claim_evidence(f"files/{name}", want_size)),
                )
            )
        else:
            out.append(Finding(rule, PASS, f"{size} bytes, sha256 matches", name, (Evidence(size, name),)))
    return out


def _packed_source(rec: Record) -> str | None:
    """The readable source next to a packed train_gpt.py (``--pack-code``), if any."""
    code = rec.field("code")
    if isinstance(code, dict) and code.get("packed") is True and isinstance(code.get("source_file"), str):
        return str(code["source_file"])
    return None


def check_code_identity(rec: Record) -> list[Finding]:
    """The code in the folder is the code that ran: hashes from the harness, else the log's own size line."""
    rule = "code_identity"
    code_name = RULES.code_filename
    out: list[Finding] = []
    code = rec.field("code")
    packed_source = _packed_source(rec)
    if isinstance(code, dict):
        src_name = (
            code.get("source_file")
            if code.get("packed") and isinstance(code.get("source_file"), str)
            else code_name
        )
        src = _inside(rec, src_name)
        digest = _sha256(src)
        want = code.get("source_sha256")
        if digest is None:
            out.append(Finding(rule, FAIL, f"{src_name} missing", str(src_name)))
        elif digest != want:
            out.append(
                Finding(
                    rule,
                    FAIL,
                    f"sha256 {digest[:12]}... differs from the code that ran ({str(want)[:12]}...)",
                    str(src_name),
                    (Evidence(digest, str(src_name)), _claim_evidence("code/source_sha256", want)),
                )
            )
        else:
            out.append(
                Finding(
                    rule,
                    PASS,
                    "sha256 equals the code that ran",
                    str(src_name),
                    (Evidence(digest, str(src_name)),),
                )
            )
        counted = code.get("counted_file")
        if isinstance(counted, str):
            cpath = _inside(rec, counted)
            size = cpath.stat().st_size if cpath is not None and _is_regular(cpath) else None
            want_bytes = _integer(code.get("counted_bytes"))
            verdict = PASS if size is not None and size == want_bytes else FAIL
            out.append(
                Finding(
                    rule,
                    verdict,
                    f"counted code: {size} bytes on disk, {want_bytes} claimed",
                    counted,
                    (Evidence(size, counted), _claim_evidence("code/counted_bytes", want_bytes)),
                )
            )
    for seed in rec.seeds:
        run = rec.runs[seed]
        files = run.result.get("code_files") if run.result else None
        if isinstance(files, dict):
            for ran_name, meta in files.items():
                # With --pack-code the shipped train_gpt.py is the packed file; the source that ran sits beside it.
                name = packed_source if ran_name == code_name and packed_source else ran_name
                digest = _sha256(_inside(rec, name))
                want = meta.get("sha256") if isinstance(meta, dict) else None
                if digest is None:
                    out.append(
                        Finding(
                            rule,
                            NOT_VERIFIABLE,
                            f"{name} ran (result.json) but is not in the folder",
                            _subject(seed),
                        )
                    )
                else:
                    verdict = PASS if digest == want else FAIL
                    out.append(
                        Finding(
                            rule,
                            verdict,
                            f"{name} sha256 {'equals' if verdict == PASS else 'differs from'} result.json code_files",
                            _subject(seed),
                            (Evidence(digest, name), Evidence(want, run.result_file, None, "code_files")),
                        )
                    )
    if out:
        return out
    # Older folders: the trainer printed the length of its own source ("Code size: N bytes").
    if code_name not in rec.files:
        return [Finding(rule, NOT_VERIFIABLE, f"{code_name} missing")]
    size = rec.files[code_name].stat().st_size
    for seed in rec.seeds:
        run = rec.runs[seed]
        fact = run.log.code_bytes if run.log else None
        if fact is None:
            out.append(
                Finding(rule, NOT_VERIFIABLE, "no code hash and the log prints no code size", _subject(seed))
            )
            continue
        verdict = PASS if fact.value == size else FAIL
        out.append(
            Finding(
                rule,
                verdict,
                f"log says the code that ran was {fact.value} bytes; {code_name} is {size} bytes",
                _subject(seed),
                (_fact_evidence(run, fact) or Evidence(None), Evidence(size, code_name)),
            )
        )
    return out or [Finding(rule, NOT_VERIFIABLE, "no seeds to compare the code against")]


def _seed_value(run: SeedRun, key: str) -> tuple[float | None, Evidence | None, int | None]:
    """A per-seed score, from the log's final metric, else the harness's result.json."""
    log = run.log
    if log is not None and log.final is not None:
        value = log.final.val_bpb if key == "val_bpb" else log.final.val_loss
        decimals = log.final.bpb_decimals if key == "val_bpb" else log.final.loss_decimals
        if value is not None:
            return value, Evidence(value, run.log_file, log.final.line, log.final.text), decimals
    if run.result is not None and (v := _number(run.result.get(key))) is not None:
        return v, Evidence(v, run.result_file, None, key), None
    return None, None, None


SCORING_RULES = ("score_coverage", "score_order", "normalization", "causality", "claimed_score")


def check_score_source(rec: Record) -> list[Finding]:
    """Witnessed (eval protocol v2: the harness computed val_bpb and audited the scorer) or
    self-reported (v1, legacy, folders not made by pgolf), per seed, from its result.json."""
    rule = "score_source"
    if not rec.seeds:
        return _no_seeds(rule)
    out = []
    for seed in rec.seeds:
        run = rec.runs[seed]
        res = run.result or {}
        ev = (
            (Evidence(res.get("score_source"), run.result_file, None, "score_source"),)
            if run.result_file
            else ()
        )
        if res.get("score_source") != "witnessed":
            how = f"{res.get('protocol', 'unknown')} protocol" if res else "no harness result.json"
            out.append(
                Finding(
                    rule, NOT_VERIFIABLE, f"score self-reported by the trainer ({how})", _subject(seed), ev
                )
            )
            continue
        verdicts = {v.get("rule"): v for v in res.get("verdicts", []) if isinstance(v, dict)}
        failed = [
            f"{r}: {verdicts[r].get('detail')}"
            for r in SCORING_RULES
            if verdicts.get(r, {}).get("verdict") == FAIL
        ]
        if failed:
            out.append(Finding(rule, FAIL, "witnessed, but " + "; ".join(failed), _subject(seed), ev))
        else:
            out.append(
                Finding(
                    rule,
                    PASS,
                    "score witnessed: computed by the harness (eval protocol v2)",
                    _subject(seed),
                    ev,
                )
            )
    return out


def check_seed_scores(rec: Record) -> list[Finding]:
    rule = "seed_scores"
    if not rec.seeds:
        return _no_seeds(rule)
    out = []
    single = len(rec.seeds) == 1
    for seed in rec.seeds:
        run = rec.runs[seed]
        for key in ("val_bpb", "val_loss"):
            claimed = _number(run.claim.get(key))
            claim_key = f"seed_results/{seed}/{key}"
            if claimed is None and single:
                claimed, claim_key = _number(rec.field(key)), key
            measured, ev, decimals = _seed_value(run, key)
            if claimed is None:
                if key == "val_bpb" or run.claim:
                    out.append(
                        Finding(
                            rule,
                            NOT_VERIFIABLE if measured is not None else FAIL,
                            f"no {key} claimed for this seed"
                            + ("" if measured is not None else " and none in its log"),
                            f"{_subject(seed)} {key}",
                            (ev,) if ev else (),
                        )
                    )
                continue
            if measured is None:
                reason = "no log" if run.log is None else "the log has no final val_loss/val_bpb line"
                out.append(
                    Finding(
                        rule,
                        NOT_VERIFIABLE,
                        f"claimed {claimed}; {reason}",
                        f"{_subject(seed)} {key}",
                        (_claim_evidence(claim_key, claimed),),
                    )
                )
                continue
            assert ev is not None
            ok = matches(claimed, measured, decimals)
            detail = f"claimed {claimed}, log final {measured}" + ("" if ok else " (differ beyond rounding)")
            evid = [_claim_evidence(claim_key, claimed), ev]
            if not ok and run.log is not None:
                other = [
                    m
                    for m in run.log.metrics
                    if matches(
                        claimed,
                        m.val_bpb if key == "val_bpb" else (m.val_loss or math.nan),
                        m.bpb_decimals if key == "val_bpb" else m.loss_decimals,
                    )
                ]
                if other:
                    detail += f"; the claim matches {other[-1].label!r} at line {other[-1].line}, not the final metric"
            if (
                run.result is not None
                and (rv := _number(run.result.get(key))) is not None
                and not matches(claimed, rv)
            ):
                ok = False
                detail += f"; result.json says {rv}"
                evid.append(Evidence(rv, run.result_file, None, key))
            out.append(Finding(rule, PASS if ok else FAIL, detail, f"{_subject(seed)} {key}", tuple(evid)))
    return out


def _per_seed(rec: Record, key: str) -> tuple[list[float], list[str]]:
    """Per-seed values from logs/results, falling back to claims; and which seeds fell back."""
    values, from_claims = [], []
    for seed in rec.seeds:
        v, _, _ = _seed_value(rec.runs[seed], key)
        if v is None:
            v = _number(rec.runs[seed].claim.get(key))
            if v is not None:
                from_claims.append(str(seed))
        if v is not None:
            values.append(v)
    return values, from_claims


def check_aggregates(rec: Record) -> list[Finding]:
    rule = "mean_std"
    if not rec.seeds:
        return _no_seeds(rule)
    out = []
    for key in ("val_bpb", "val_loss"):
        values, from_claims = _per_seed(rec, key)
        if len(values) != len(rec.seeds):
            out.append(
                Finding(rule, NOT_VERIFIABLE, f"{key} known for {len(values)} of {len(rec.seeds)} seeds", key)
            )
            continue
        summary = stats.summarize(values)
        source = "logs" if not from_claims else f"logs, and claims for seeds {', '.join(from_claims)}"
        for field_name, recomputed in ((key, summary.mean), (f"{key}_std", summary.std)):
            claimed = rec.field(field_name)
            if (
                claimed is None
                and field_name.endswith("_std")
                and rec.submission is not None
                and field_name not in rec.submission
            ):
                verdict = PASS if recomputed is None else NOT_VERIFIABLE
                out.append(
                    Finding(
                        rule,
                        verdict,
                        f"{field_name} not claimed"
                        + (" (one seed: no spread)" if recomputed is None else ""),
                        field_name,
                    )
                )
                continue
            if recomputed is None:
                verdict = PASS if claimed is None else FAIL
                out.append(
                    Finding(
                        rule,
                        verdict,
                        f"one seed: {field_name} must be null, claimed {claimed!r}",
                        field_name,
                        (_claim_evidence(field_name, claimed),),
                    )
                )
                continue
            c = _number(claimed)
            if c is None:
                out.append(
                    Finding(
                        rule,
                        FAIL if claimed is not None else NOT_VERIFIABLE,
                        f"{field_name} claimed {claimed!r}, recomputed {recomputed:.8g} from {source}",
                        field_name,
                        (_claim_evidence(field_name, claimed),),
                    )
                )
                continue
            ok = matches(c, recomputed)
            detail = f"claimed {c}, recomputed {recomputed:.8g} over {len(values)} seed(s) from {source}"
            if not ok and field_name.endswith("_std") and len(values) > 1:
                pop = recomputed * math.sqrt((len(values) - 1) / len(values))
                if matches(c, pop):
                    detail += (
                        " (the claim is the population std, ddof=0; the rules use the sample std, ddof=1)"
                    )
            verdict = PASS if ok else FAIL
            if ok and from_claims:
                verdict = NOT_VERIFIABLE
                detail += ": arithmetic agrees, but some per-seed values are only claims"
            if not ok and not field_name.endswith("_std") and len(values) > 1:
                same = [s for s, v in zip(rec.seeds, values, strict=True) if matches(c, v)]
                if same:
                    detail += f"; the claim is seed {same[0]}'s own value, not the mean"
                    if not rec.seeds_source.startswith(SUBMISSION_FILE):
                        # The folder never said its score is a mean over these seeds (older convention).
                        verdict = NOT_VERIFIABLE
            out.append(Finding(rule, verdict, detail, field_name, (_claim_evidence(field_name, c),)))
    return out


def check_artifact_bytes(rec: Record) -> list[Finding]:
    rule = "artifact_bytes"
    cap = RULES.artifact_cap_bytes
    out: list[Finding] = []
    measured_all: list[int] = []
    for seed in rec.seeds:
        run = rec.runs[seed]
        sources: list[tuple[int, Evidence, str]] = []
        if run.log is not None and run.log.artifact_bytes is not None:
            f = run.log.artifact_bytes
            sources.append((f.value, Evidence(f.value, run.log_file, f.line, f.text), "log"))
            # Any other size the same log states must be under the cap too (and is shown).
            for other in run.log.artifact_sizes:
                if other.value != f.value:
                    sources.insert(
                        0, (other.value, Evidence(other.value, run.log_file, other.line, other.text), "log")
                    )
        if run.result is not None and (n := _integer(run.result.get("artifact_bytes"))) is not None:
            sources.append(
                (n, Evidence(n, run.result_file, None, "artifact_bytes"), "result.json (harness-counted)")
            )
        claimed = _integer(run.claim.get("artifact_bytes"))
        verdict: Verdict
        if not sources:
            verdict = NOT_VERIFIABLE if claimed is None or claimed <= cap else FAIL
            out.append(
                Finding(
                    rule,
                    verdict,
                    f"no size in the log or a result.json; claimed {claimed}",
                    _subject(seed),
                    (_claim_evidence(f"seed_results/{seed}/artifact_bytes", claimed),)
                    if claimed is not None
                    else (),
                )
            )
            continue
        over = [s for s in sources if s[0] > cap]
        details = [f"{v:,} bytes ({what})" for v, _, what in sources]
        evid = [e for _, e, _ in sources]
        verdict = FAIL if over else PASS
        detail = f"{'; '.join(details)} vs cap {cap:,}"
        # The harness's count is the authority where present; the log's own line otherwise.
        best = sources[-1][0]
        measured_all.append(best)
        if claimed is not None:
            evid.append(_claim_evidence(f"seed_results/{seed}/artifact_bytes", claimed))
            if claimed != best:
                verdict = FAIL
                detail += f"; submission.json claims {claimed:,}"
        out.append(Finding(rule, verdict, detail, _subject(seed), tuple(evid)))
    for key in ("artifact_bytes_max", "bytes_total"):
        c = _integer(rec.field(key))
        if c is None:
            continue
        older = key == "bytes_total" and not rec.seeds_source.startswith(SUBMISSION_FILE)
        if c > cap:
            out.append(Finding(rule, FAIL, f"{key} {c:,} over cap {cap:,}", key, (_claim_evidence(key, c),)))
        elif older and c in measured_all:
            # Older folders claim no seeds: their bytes_total is the size of the one run they report.
            detail = f"{key} {c:,} <= cap {cap:,}, the measured size of one of the seeds' artifacts"
            out.append(Finding(rule, PASS, detail, key, (_claim_evidence(key, c),)))
        elif (
            measured_all
            and len(measured_all) == len(rec.seeds)
            and c != (want := _expected_total(rec, key, measured_all))
        ):
            out.append(
                Finding(
                    rule,
                    FAIL,
                    f"{key} {c:,} but the largest measured artifact is {max(measured_all):,}"
                    + (f" ({want:,} with the shipped code)" if want != max(measured_all) else ""),
                    key,
                    (_claim_evidence(key, c),),
                )
            )
        else:
            out.append(Finding(rule, PASS, f"{key} {c:,} <= cap {cap:,}", key, (_claim_evidence(key, c),)))
    return out or [Finding(rule, NOT_VERIFIABLE, "no artifact size anywhere (no seeds, no bytes_total)")]


def _expected_total(rec: Record, key: str, measured: list[int]) -> int:
    """The largest artifact; for bytes_total of a packed folder, with the shipped code bytes in place of the code that ran."""
    largest = max(measured)
    code = rec.field("code")
    if key == "bytes_total" and _packed_source(rec) and isinstance(code, dict):
        ran, shipped = _integer(code.get("ran_code_bytes")), _integer(rec.field("bytes_code"))
        if ran is not None and shipped is not None:
            return largest - ran + shipped
    return largest


def _time_rule(rule: str, rec: Record, key: str, limit_s: float) -> list[Finding]:
    if not rec.seeds:
        return _no_seeds(rule)
    out = []
    for seed in rec.seeds:
        run = rec.runs[seed]
        sources: list[tuple[float, Evidence, str]] = []
        fact = (run.log.train_time_ms if key == "train_time_s" else run.log.eval_time_ms) if run.log else None
        if fact is not None:
            sources.append(
                (
                    fact.value / 1000.0,
                    Evidence(round(fact.value / 1000.0, 3), run.log_file, fact.line, fact.text),
                    f"log, {fact.label or 'trainer-reported'}",
                )
            )
        if run.result is not None and (v := _number(run.result.get(key))) is not None:
            sources.append((v, Evidence(v, run.result_file, None, key), "result.json (harness clock)"))
        claimed = _number(run.claim.get(key))
        verdict: Verdict
        if not sources:
            verdict = FAIL if claimed is not None and claimed > limit_s else NOT_VERIFIABLE
            detail = "the log shows no " + ("training" if key == "train_time_s" else "evaluation") + " time"
            if claimed is not None:
                detail += f"; claimed {claimed} s"
            out.append(Finding(rule, verdict, detail, _subject(seed)))
            continue
        verdict = FAIL if any(v > limit_s for v, _, _ in sources) else PASS
        detail = "; ".join(f"{v:.3f} s ({what})" for v, _, what in sources) + f" vs limit {limit_s:g} s"
        evid = [e for _, e, _ in sources]
        step_avg = run.log.step_avg_ms if run.log else None
        worst_s = max(v for v, _, _ in sources)
        if (
            key == "train_time_s"
            and worst_s > limit_s
            and step_avg
            and (worst_s - limit_s) * 1000 <= step_avg.value
        ):
            # Many trainers check their cap after a step: a reviewer may weigh this overshoot differently.
            detail += f" (over by {worst_s - limit_s:.3f} s, less than one step of {step_avg.value:.1f} ms)"
        if claimed is not None:
            reference = sources[-1][0]
            evid.append(_claim_evidence(f"seed_results/{seed}/{key}", claimed))
            if claimed > limit_s or not matches(claimed, reference, 3):
                verdict = FAIL
                detail += f"; submission.json claims {claimed} s"
        out.append(Finding(rule, verdict, detail, _subject(seed), tuple(evid)))
    return out


def check_train_time(rec: Record) -> list[Finding]:
    return _time_rule("train_time", rec, "train_time_s", RULES.train_time_limit_s)


def check_eval_time(rec: Record) -> list[Finding]:
    return _time_rule("eval_time", rec, "eval_time_s", RULES.eval_time_limit_s)


def check_seed_steps(rec: Record) -> list[Finding]:
    rule = "seed_steps"
    out = []
    for seed in rec.seeds:
        run = rec.runs[seed]
        for key, fact in (
            ("steps", run.log.steps if run.log else None),
            ("step_avg_ms", run.log.step_avg_ms if run.log else None),
        ):
            claimed = _number(run.claim.get(key))
            if claimed is None:
                continue
            measured: float | None = None
            ev: Evidence | None = None
            if run.result is not None and (rv := _number(run.result.get(key))) is not None:
                measured, ev = rv, Evidence(rv, run.result_file, None, key)
            elif fact is not None:
                measured, ev = float(fact.value), _fact_evidence(run, fact)
            if measured is None or ev is None:
                out.append(
                    Finding(
                        rule,
                        NOT_VERIFIABLE,
                        f"{key} claimed {claimed}; not in the log",
                        f"{_subject(seed)} {key}",
                    )
                )
                continue
            # step_avg is printed rounded (2 decimals) and may be recomputed: a 1% tolerance.
            ok = (
                claimed == measured
                if key == "steps"
                else abs(claimed - measured) <= max(0.01 * measured, half_unit(claimed))
            )
            out.append(
                Finding(
                    rule,
                    PASS if ok else FAIL,
                    f"claimed {claimed}, measured {measured}",
                    f"{_subject(seed)} {key}",
                    (_claim_evidence(f"seed_results/{seed}/{key}", claimed), ev),
                )
            )
    return out or [Finding(rule, NOT_VERIFIABLE, "no per-seed steps or step_avg_ms claimed")]


def check_statistics(rec: Record) -> list[Finding]:
    rule = "statistics"
    out: list[Finding] = []
    losses, loss_claims = _per_seed(rec, "val_loss")
    bpbs, _ = _per_seed(rec, "val_bpb")
    complete = bool(rec.seeds) and len(losses) == len(rec.seeds) and len(bpbs) == len(rec.seeds)
    base_bpb = _number(rec.field("comparison_baseline_bpb"))
    claimed_delta_bpb = _number(rec.field("delta_vs_leaderboard_bpb"))
    if complete and base_bpb is not None and claimed_delta_bpb is not None:
        delta = stats.mean(bpbs) - base_bpb
        ok = matches(claimed_delta_bpb, delta)
        out.append(
            Finding(
                rule,
                PASS if ok else FAIL,
                f"delta_vs_leaderboard_bpb claimed {claimed_delta_bpb}, recomputed {delta:.6g}",
                "delta_vs_leaderboard_bpb",
                (_claim_evidence("delta_vs_leaderboard_bpb", claimed_delta_bpb),),
            )
        )
    # The baseline in nats: pgolf states it; older folders imply it through their delta in nats.
    st = rec.field("statistics")
    baseline_loss = _number(st.get("baseline_loss")) if isinstance(st, dict) else None
    claimed_loss, claimed_delta_nats = (
        _number(rec.field("val_loss")),
        _number(rec.field("delta_vs_leaderboard_nats")),
    )
    if baseline_loss is None and claimed_loss is not None and claimed_delta_nats is not None:
        baseline_loss = claimed_loss - claimed_delta_nats
    if baseline_loss is None and complete and base_bpb is not None:
        baseline_loss = stats.resolve_baseline(losses, bpbs, base_bpb, None).loss
    claimed_p = rec.field("p_value")
    record_claim = rec.field("record_claim")
    claims_record = rec.is_record_track() and record_claim is not False and rec.field("rehearsal") is not True
    if not complete or baseline_loss is None:
        why = (
            "per-seed val_loss not known for every seed"
            if not complete
            else "no baseline given (comparison_baseline_bpb, delta_vs_leaderboard_nats)"
        )
        verdict = NOT_VERIFIABLE
        out.append(
            Finding(
                rule,
                verdict,
                f"cannot recompute the significance test: {why}",
                "p_value",
                (_claim_evidence("p_value", claimed_p),) if claimed_p is not None else (),
            )
        )
        return out
    test = stats.record_test(losses, baseline_loss)
    src = "" if not loss_claims else f" (claims used for seeds {', '.join(loss_claims)})"
    summary = (
        f"mean val_loss {test.mean:.6f} vs threshold {test.threshold:.6f} (baseline {baseline_loss:.6f} - "
        f"{RULES.record_margin_nats}), n={test.n}, p={test.p_value if test.p_value is None else f'{test.p_value:.3g}'}{src}"
    )
    if claimed_p is not None:
        c = _number(claimed_p)
        if c is None or test.p_value is None:
            out.append(
                Finding(
                    rule,
                    FAIL if c is None else NOT_VERIFIABLE,
                    f"p_value claimed {claimed_p!r}; {summary}",
                    "p_value",
                    (_claim_evidence("p_value", claimed_p),),
                )
            )
        else:
            # p is printed with few significant digits: compare relatively, or as rounded.
            ok = matches(c, test.p_value) or abs(c - test.p_value) <= 0.02 * test.p_value
            both_sides = (c < RULES.significance_p) == test.significant
            verdict = PASS if ok and both_sides else FAIL
            out.append(
                Finding(
                    rule,
                    verdict,
                    f"p_value claimed {c:.3g}, recomputed {test.p_value:.3g}; {summary}",
                    "p_value",
                    (_claim_evidence("p_value", c),),
                )
            )
    if (
        isinstance(st, dict)
        and isinstance(st.get("significant"), bool)
        and st["significant"] != test.significant
    ):
        out.append(
            Finding(
                rule,
                FAIL,
                f"statistics.significant is {st['significant']}, recomputed {test.significant}",
                "significant",
            )
        )
    if record_claim is True and not test.significant:
        out.append(
            Finding(
                rule, FAIL, f"record_claim is true but the test is not significant: {summary}", "record_claim"
            )
        )
    if claims_record:
        verdict = PASS if test.significant else FAIL
        out.append(
            Finding(
                rule,
                verdict,
                f"record claim on {rec.track()}: {'significant' if test.significant else 'not significant'} at p < {RULES.significance_p}; {summary}",
                "record claim",
            )
        )
    elif claimed_p is None:
        out.append(Finding(rule, PASS, f"no record claim; {summary}", "record claim"))
    return out


def check_harness_results(rec: Record) -> list[Finding]:
    rule = "harness_results"
    out = []
    for seed in rec.seeds:
        run = rec.runs[seed]
        verdicts = run.result.get("verdicts") if run.result else run.claim.get("verdicts")
        source = run.result_file if run.result else f"{SUBMISSION_FILE} seed_results/{seed}"
        if not isinstance(verdicts, list):
            continue
        failed = [v.get("rule") for v in verdicts if isinstance(v, dict) and v.get("verdict") == FAIL]
        status = (run.result or run.claim).get("status")
        ok = not failed and status in (None, "ok")
        detail = f"status {status!r}; " + (
            f"failed: {', '.join(map(str, failed))}"
            if failed
            else f"{len(verdicts)} harness verdict(s), none failed"
        )
        if run.result is not None:
            try:
                validate_result(run.result, str(run.result_file))
            except ResultError as exc:
                ok = False
                detail += f"; not a valid result.json ({exc})"
        out.append(
            Finding(
                rule,
                PASS if ok else FAIL,
                detail,
                _subject(seed),
                (Evidence(status, source, None, "status"),),
            )
        )
    return out or [Finding(rule, NOT_VERIFIABLE, "no harness verdicts (not a pgolf run, or no result.json)")]


CHECK_RULES: tuple[Rule, ...] = (
    Rule(
        "required_files", f"the folder holds {', '.join(RULES.required_record_files)}", check_required_files
    ),
    Rule(
        "seed_logs", "one train_seed<SEED>.log per claimed seed, each the run of that seed", check_seed_logs
    ),
    Rule("seed_count", f"a record track claim has at least {RULES.min_record_seeds} seeds", check_seed_count),
    Rule(
        "submission_json",
        "submission.json is a well-formed JSON object that claims a val_bpb",
        check_submission_json,
    ),
    Rule(
        "submission_schema",
        "submission.json matches the shipped schema (lenient for folders not made by pgolf)",
        check_submission_schema,
    ),
    Rule("folder_name", "the folder is named <YYYY-MM-DD>_<Name> with a real date", check_folder_name),
    Rule("date", "submission.json date agrees with the folder date", check_date),
    Rule("track", "the track is a known one and agrees with the track_<track> folder", check_track),
    Rule(
        "file_integrity",
        "files listed in submission.json have the listed sizes and sha256",
        check_file_integrity,
    ),
    Rule("code_identity", "the train_gpt.py in the folder is the code that ran", check_code_identity),
    Rule(
        "seed_scores",
        "each seed's claimed val_bpb/val_loss equals its log's final metric (within rounding)",
        check_seed_scores,
    ),
    Rule(
        "score_source",
        "each seed's score was witnessed by the harness (eval protocol v2) or is self-reported",
        check_score_source,
    ),
    Rule(
        "mean_std",
        "val_bpb, val_loss and their sample stds recomputed from the per-seed values",
        check_aggregates,
    ),
    Rule(
        "artifact_bytes",
        f"artifact bytes (log line, harness result.json) <= {RULES.artifact_cap_bytes:,}, claims agree",
        check_artifact_bytes,
    ),
    Rule(
        "train_time",
        f"training time from the logs / harness <= {RULES.train_time_limit_s:g} s",
        check_train_time,
    ),
    Rule(
        "eval_time",
        f"evaluation time from the logs / harness <= {RULES.eval_time_limit_s:g} s",
        check_eval_time,
    ),
    Rule("seed_steps", "claimed steps and ms/step agree with the logs", check_seed_steps),
    Rule(
        "statistics",
        f"deltas and the one-sided t-test (margin {RULES.record_margin_nats} nats, p < {RULES.significance_p}) recomputed",
        check_statistics,
    ),
    Rule(
        "harness_results",
        "the harness's own per-seed verdicts (pgolf runs) have no failure",
        check_harness_results,
    ),
)


def run_rules(rec: Record, rules: tuple[Rule, ...] = CHECK_RULES) -> list[Finding]:
    findings: list[Finding] = []
    for rule in rules:
        try:
            found = rule.check(rec)
        except Exception as exc:  # a checker bug on an odd folder must not hide the other rules
            found = [
                Finding(
                    rule.name, NOT_VERIFIABLE, f"checker error on this folder: {type(exc).__name__}: {exc}"
                )
            ]
        findings.extend(found)
    return findings


def check_record(record_dir: Path, rules: tuple[Rule, ...] = CHECK_RULES) -> CheckReport:
    """Load a record folder and run every rule on it."""
    rec = load_record(record_dir)
    return CheckReport(record_dir=rec.path, findings=run_rules(rec, rules), rules=rules, notes=rec.notes)
