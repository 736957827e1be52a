"""Verify a record folder rule by rule, never running anything from it.

The rules are data: :data:`CHECK_RULES` is a list of :class:`Rule` objects, each with a
name, a description and a checker that reads a loaded :class:`Record` and returns
:class:`Finding` objects (pass / fail / not-verifiable, with evidence: value, file, line).
Every limit comes from :data:`harness.rules.RULES`; every statistic from :mod:`harness.stats`.

A folder made by ``pgolf package`` is verifiable throughout. The challenge's own folders
were written by hand: every log in the folder (sub-folders too: ``logs/``, reruns) is read
and attributed to a seed by the seed it prints, else its file name; a seed's numbers come
from the log whose final metric the submission reports. How hand-written folders are read
(overshoot of the last step, std ddof, bytes_total as mean or max, field and track names,
dates, packages beyond the challenge's) is :data:`harness.rules.CHECK_POLICY`, named in the
verdicts it affects. A rehearsal or scaled run is judged by the limits it declares, and says
so. With ``--leaderboard`` the folder's row and the significance against the row below are
checked under a named policy (:data:`harness.rules.SIGNIFICANCE_POLICIES`). Odd files
(binary junk, bad UTF-8, huge lines, FIFOs, wrong JSON types) make a rule fail or
not-verifiable, never crash it.
"""

from __future__ import annotations

import ast
import datetime as dt
import fnmatch
import json
import math
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jsonschema

from harness import stats
from harness.errors import PgolfError
from harness.fingerprint import file_sha256
from harness.leaderboard import Leaderboard, LeaderboardRow
from harness.logparse import Fact, LogFacts, Metric, decimals_of, read_log, read_text_tolerant
from harness.protocol import EVENT_PREFIX
from harness.results import ResultError, load_schema, validate_result
from harness.rules import CHECK_POLICY, RULES, SIGNIFICANCE_POLICIES
from harness.unwrap import Unwrapped, unwrap

Verdict = Literal["pass", "fail", "not-verifiable"]
PASS: Verdict = "pass"
FAIL: Verdict = "fail"
NOT_VERIFIABLE: Verdict = "not-verifiable"
_SEVERITY = {PASS: 0, NOT_VERIFIABLE: 1, FAIL: 2}
# The fields the challenge README asks submission.json for: their types must be right in any folder.
LEADERBOARD_ESSENTIAL = ("author", "github_id", "name", "val_bpb", "date", "track")

SUBMISSION_FILE = "submission.json"
MAX_JSON_BYTES = 4 * 1024 * 1024
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
# A seed in a log's file name: train_seed42.log, seed_0.log, run_s42.txt, train0.txt.
_NAME_SEED_RE = re.compile(r"(?:seed[_-]?|_s|^train)(?P<seed>\d+)$")


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
    # The log whose numbers stand for this seed (the one matching the claim, else the seed's own log).
    log_file: str | None = None
    log: LogFacts | None = None
    # Every log of this seed (by the seed it prints, else by its file name), e.g. a rerun beside the run.
    logs: dict[str, LogFacts] = field(default_factory=dict)
    # The final evaluation that stands for this seed (the one the submission reports, else the last).
    metric: Metric | None = None
    result_file: str | None = None
    result: dict[str, Any] | None = None
    claim: dict[str, Any] = field(default_factory=dict)

    @property
    def train_log(self) -> tuple[str | None, LogFacts | None]:
        """This seed's training log (sizes, steps): the chosen log, else one that trained (not an eval-only rerun)."""
        if self.log is not None and (
            self.log.artifact_bytes is not None or self.log.train_time_ms is not None
        ):
            return self.log_file, self.log
        for rel, facts in self.logs.items():
            if facts.artifact_bytes is not None or facts.train_time_ms is not None:
                return rel, facts
        return self.log_file, self.log


@dataclass(frozen=True)
class DeclaredLimits:
    """The limits a folder is judged against, and why those."""

    train_time_s: float
    eval_time_s: float
    artifact_cap_bytes: int
    source: str

    @property
    def scaled(self) -> bool:
        return (self.train_time_s, self.eval_time_s, self.artifact_cap_bytes) != (
            RULES.train_time_limit_s,
            RULES.eval_time_limit_s,
            RULES.artifact_cap_bytes,
        )


OFFICIAL_LIMITS = DeclaredLimits(
    RULES.train_time_limit_s, RULES.eval_time_limit_s, RULES.artifact_cap_bytes, "the challenge's limits"
)


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
    # Every log in the folder (sub-folders included) that reports a run, by path relative to the folder.
    logs: dict[str, LogFacts] = field(default_factory=dict)
    submission_file: str = SUBMISSION_FILE
    # (log, seed in its file name, seed it prints) where the two disagree.
    name_content_mismatches: list[tuple[str, int, int]] = field(default_factory=list)
    limits: DeclaredLimits = OFFICIAL_LIMITS
    code_file: str | None = None
    # `--leaderboard README.md`: the table the folder's row and the row below it are read from.
    leaderboard: Leaderboard | None = None
    significance_policy: str = "readme"

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
            return CHECK_POLICY.track_name(claimed)
        parent = self.parent_name
        if parent.startswith(RULES.track_dir_prefix):
            return parent[len(RULES.track_dir_prefix) :]
        return None

    def is_record_track(self) -> bool:
        track = self.track()
        return track is not None and RULES.is_record_track(track)

    def is_pgolf(self) -> bool:
        return self.submission is not None and "schema_version" in self.submission

    @property
    def seeds_listed(self) -> bool:
        """The folder itself names its seeds (submission.json), rather than the checker inferring them."""
        return self.seeds_source.startswith(SUBMISSION_FILE) or self.seeds_source.startswith("submission")


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
    single = _integer(submission.get("seed"))
    if single is not None:
        return [single], "submission.json seed"
    return [], ""


def _with_aliases(
    obj: dict[str, Any], aliases: tuple[tuple[str, tuple[str, ...]], ...], where: str
) -> list[str]:
    """Fill pgolf's field names from the other names folders use; one note per field filled."""
    notes = []
    for canonical, others in aliases:
        if obj.get(canonical) is not None:
            continue
        for other in others:
            if obj.get(other) is not None:
                obj[canonical] = obj[other]
                notes.append(f"{where}{canonical} read from {other!r}")
                break
    return notes


def _name_seed(rel: str) -> int | None:
    m = _NAME_SEED_RE.search(Path(rel).stem)
    return int(m["seed"]) if m else None


def _find_logs(path: Path, notes: list[str]) -> dict[str, LogFacts]:
    """Every log in the folder (and sub-folders, a few levels deep) that reports a run's numbers."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(path):
        depth = len(Path(dirpath).relative_to(path).parts)
        if depth >= CHECK_POLICY.log_dir_depth:
            dirnames[:] = []
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(CHECK_POLICY.log_suffixes) and not name.startswith("requirements"):
                rel = str((Path(dirpath) / name).relative_to(path))
                if _is_regular(path / rel):
                    found.append(rel)
    # Train logs first, so a folder full of other files keeps its runs within the limit.
    found.sort(key=lambda rel: (not Path(rel).name.startswith("train"), rel.count("/"), rel))
    if len(found) > CHECK_POLICY.max_logs:
        notes.append(f"{len(found)} log files: read only the first {CHECK_POLICY.max_logs}")
    logs: dict[str, LogFacts] = {}
    for rel in found[: CHECK_POLICY.max_logs]:
        facts = read_log(path / rel)
        if facts.final is not None or facts.artifact_bytes is not None or facts.train_time_ms is not None:
            logs[rel] = facts
            notes.extend(f"{rel}: {w}" for w in facts.warnings)
    return logs


def _log_seed(rel: str, facts: LogFacts) -> int | None:
    """The seed a log ran: the one it prints, else the one in its file name."""
    return facts.seed.value if facts.seed is not None else _name_seed(rel)


def _matching_metric(facts: LogFacts, bpb: float | None) -> Metric | None:
    if bpb is None:
        return None
    hits = [m for m in facts.finals if matches(bpb, m.val_bpb, m.bpb_decimals)]
    return hits[-1] if hits else None


def _choose_log(run: SeedRun, claimed_bpb: float | None, claimed_loss: float | None) -> None:
    """The log and final metric that stand for a seed: the ones its claim reports, else its own log's last."""
    scored = []
    for rel, facts in run.logs.items():
        # A native-protocol log's eval_end event is the final; a legacy log may hold several passes.
        finals = [m for m in facts.finals if m.label.startswith(EVENT_PREFIX.strip())] or facts.finals
        for m in finals if claimed_bpb is not None else []:
            if claimed_bpb is None or not matches(claimed_bpb, m.val_bpb, m.bpb_decimals):
                continue
            loss_ok = (
                claimed_loss is not None
                and m.val_loss is not None
                and matches(claimed_loss, m.val_loss, m.loss_decimals)
            )
            scored.append((not loss_ok, abs(claimed_bpb - m.val_bpb), rel, m))
    if scored:
        _, _, rel, metric = min(scored, key=lambda t: (t[0], t[1]))
        run.log_file, run.log, run.metric = rel, run.logs[rel], metric
        return
    own = RULES.seed_log_name(run.seed)
    ordered = sorted(run.logs, key=lambda rel: (rel != own, "/" in rel, rel))
    with_final = [rel for rel in ordered if run.logs[rel].final is not None] or ordered
    if with_final:
        rel = with_final[0]
        run.log_file, run.log, run.metric = rel, run.logs[rel], run.logs[rel].final


def _seeds_from_logs(submission: dict[str, Any] | None, logs: dict[str, LogFacts]) -> tuple[list[int], str]:
    """Seeds of a folder whose submission.json lists none: the run its score reports, else its seed logs."""
    claimed = _number(submission.get("val_bpb")) if submission else None
    by_seed: dict[int, list[str]] = {}
    for rel, facts in logs.items():
        seed = _log_seed(rel, facts)
        if seed is not None and facts.final is not None:
            by_seed.setdefault(seed, []).append(rel)
    if claimed is not None:
        hits = sorted(
            {s for s, rels in by_seed.items() for rel in rels if _matching_metric(logs[rel], claimed)}
        )
        if len(hits) == 1:
            rel = next(r for r in by_seed[hits[0]] if _matching_metric(logs[r], claimed))
            return hits, f"the log whose final metric is the claimed val_bpb ({rel})"
        if len(by_seed) > 1 and claimed is not None:
            finals = [logs[rels[-1]].final for rels in by_seed.values()]
            values = [m.val_bpb for m in finals if m is not None]
            if values and matches(claimed, stats.mean(values), 8):
                return sorted(by_seed), "every seed's log (the claimed val_bpb is their mean)"
    named = sorted(s for s in by_seed if any(_SEED_LOG_RE.match(Path(r).name) for r in by_seed[s]))
    if named:
        return named, "train_seed<SEED>.log file names"
    if len(by_seed) == 1:
        seed = next(iter(by_seed))
        return [seed], f"the seed line of {by_seed[seed][0]}"
    return [], ""


def _declared_limits(
    submission: dict[str, Any] | None, record_track: bool, notes: list[str]
) -> DeclaredLimits:
    """A rehearsal or scaled run declares the limits it ran under; a record claim is held to the official ones."""
    declared = submission.get("limits") if submission else None
    if not isinstance(declared, dict):
        return OFFICIAL_LIMITS
    train, ev, cap = (
        _number(declared.get("train_time_limit_s")),
        _number(declared.get("eval_time_limit_s")),
        _integer(declared.get("artifact_cap_bytes")),
    )
    if train is None or ev is None or cap is None:
        return OFFICIAL_LIMITS
    limits = DeclaredLimits(
        train,
        ev,
        cap,
        "the limits the folder declares ("
        + ("a rehearsal" if submission and submission.get("rehearsal") is True else "a scaled run")
        + ")",
    )
    if not limits.scaled:
        return OFFICIAL_LIMITS
    if record_track and not (submission and submission.get("rehearsal") is True):
        notes.append(
            "submission.json declares scaled limits on a record track: judged by the challenge's limits"
        )
        return OFFICIAL_LIMITS
    notes.append(
        f"judged by {limits.source}: training {train:g} s, evaluation {ev:g} s, artifact {cap:,} bytes "
        f"(the challenge's: {RULES.train_time_limit_s:g} s, {RULES.eval_time_limit_s:g} s, "
        f"{RULES.artifact_cap_bytes:,})"
    )
    return limits


def _code_file(files: dict[str, Path]) -> str | None:
    if RULES.code_filename in files:
        return RULES.code_filename
    candidates = sorted(n for n in files if fnmatch.fnmatch(n, CHECK_POLICY.code_glob))
    return candidates[0] if len(candidates) == 1 else None


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
    submission_file = SUBMISSION_FILE
    if SUBMISSION_FILE not in files:
        # Some folders name it after the model (submission_ternary.json): one such file is the submission.
        others = [n for n in files if fnmatch.fnmatch(n, CHECK_POLICY.submission_glob)]
        if len(others) == 1:
            submission_file = others[0]
            notes.append(f"no {SUBMISSION_FILE}: read {submission_file}")
    if submission_file in files:
        obj, err = _read_json(files[submission_file])
        if err is not None:
            submission_error = err
        elif not isinstance(obj, dict):
            submission_error = f"expected a JSON object at the top, got {type(obj).__name__}"
        else:
            submission = dict(obj)
            notes.extend(_with_aliases(submission, CHECK_POLICY.submission_field_aliases, ""))
    else:
        submission_error = "missing"

    logs = _find_logs(path, notes)
    seeds, source = _parse_seeds(submission)
    if source and submission_file != SUBMISSION_FILE:
        source = source.replace(SUBMISSION_FILE, submission_file)
    if len(seeds) > MAX_SEEDS:
        notes.append(f"{len(seeds)} seeds claimed: checked only the first {MAX_SEEDS}")
        seeds = seeds[:MAX_SEEDS]
    if not seeds:
        seeds, source = _seeds_from_logs(submission, logs)

    mismatches = []
    for rel, facts in logs.items():
        named = _name_seed(rel)
        if named is not None and facts.seed is not None and named != facts.seed.value:
            mismatches.append((rel, named, facts.seed.value))

    runs: dict[int, SeedRun] = {}
    claims = submission.get("seed_results") if submission else None
    for seed in seeds:
        run = SeedRun(seed=seed)
        if isinstance(claims, dict) and isinstance(claims.get(str(seed)), dict):
            run.claim = dict(claims[str(seed)])
            notes.extend(_with_aliases(run.claim, CHECK_POLICY.seed_field_aliases, f"seed {seed}: "))
        run.logs = {rel: facts for rel, facts in logs.items() if _log_seed(rel, facts) == seed}
        claimed_bpb, claimed_loss = _number(run.claim.get("val_bpb")), _number(run.claim.get("val_loss"))
        if claimed_bpb is None and len(seeds) == 1 and submission is not None:
            claimed_bpb, claimed_loss = (
                _number(submission.get("val_bpb")),
                _number(submission.get("val_loss")),
            )
        if not run.logs and claimed_bpb is not None:
            # A log that names no seed at all (run1.log): this seed's if its final is this seed's claim.
            unnamed = [
                rel
                for rel, facts in logs.items()
                if _log_seed(rel, facts) is None and _matching_metric(facts, claimed_bpb) is not None
            ]
            if len(unnamed) == 1:
                run.logs = {unnamed[0]: logs[unnamed[0]]}
                notes.append(
                    f"seed {seed}: {unnamed[0]} prints no seed; its final metric is this seed's claim"
                )
        _choose_log(run, claimed_bpb, claimed_loss)
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
    record_track = False
    track = submission.get("track") if submission else None
    if isinstance(track, str):
        record_track = RULES.is_record_track(CHECK_POLICY.track_name(track))
    elif path.parent.name.startswith(RULES.track_dir_prefix):
        record_track = RULES.is_record_track(path.parent.name[len(RULES.track_dir_prefix) :])
    return Record(
        path=path,
        files=files,
        notes=notes,
        submission=submission,
        submission_error=submission_error,
        seeds=seeds,
        seeds_source=source,
        runs=runs,
        logs=logs,
        submission_file=submission_file,
        name_content_mismatches=mismatches,
        limits=_declared_limits(submission, record_track, notes),
        code_file=_code_file(files),
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
    """README.md, submission.json, the code and a train log (the README's list); requirements.txt is its own rule."""
    rule = "required_files"
    out = []
    for name in ("README.md", SUBMISSION_FILE):
        present = rec.submission_file if name == SUBMISSION_FILE else name
        if present in rec.files:
            size = rec.files[present].stat().st_size
            detail = "present" if present == name else f"named {present}"
            out.append(
                Finding(
                    rule,
                    PASS if size > 0 else FAIL,
                    detail if size else "present but empty",
                    name,
                    (Evidence(size, present),),
                )
            )
        else:
            out.append(Finding(rule, FAIL, "missing (a record folder needs it)", name))
    code = rec.code_file
    variants = sorted(n for n in rec.files if fnmatch.fnmatch(n, CHECK_POLICY.code_glob))
    if code is None and variants:
        out.append(
            Finding(
                rule,
                PASS,
                f"the code is in {', '.join(variants)} (no {RULES.code_filename})",
                RULES.code_filename,
            )
        )
    elif code is None:
        py = sorted(n for n in rec.files if n.endswith(".py"))
        out.append(
            Finding(
                rule,
                FAIL,
                f"no {RULES.code_filename} (and no single {CHECK_POLICY.code_glob} to stand for it)"
                + (f"; python files: {', '.join(py[:5])}" if py else ""),
                RULES.code_filename,
            )
        )
    else:
        detail = (
            "present"
            if code == RULES.code_filename
            else f"the code is {code} (not named {RULES.code_filename})"
        )
        out.append(
            Finding(
                rule, PASS, detail, RULES.code_filename, (Evidence(rec.files[code].stat().st_size, code),)
            )
        )
    if rec.logs or any(run.result for run in rec.runs.values()):
        out.append(Finding(rule, PASS, f"{len(rec.logs)} log(s) with a run's numbers", "train log"))
    else:
        out.append(Finding(rule, FAIL, "no train log with a run's numbers (*.log, *.txt)", "train log"))
    return out


_IMPORT_LINE_RE = re.compile(
    r"^\s*import\s+(?P<names>[\w., ]+)|^\s*from\s+(?P<module>\w+)[\w.]*\s+import\b", re.M
)


def _imports_by_line(source: str) -> set[str]:
    out: set[str] = set()
    for m in _IMPORT_LINE_RE.finditer(source):
        if m["module"]:
            out.add(m["module"])
        else:
            out.update(part.split()[0].split(".")[0] for part in m["names"].split(",") if part.strip())
    return out


def _imports(source: str) -> tuple[set[str], set[str]]:
    """Top-level packages a program imports: (required, optional). An import inside ``try`` is optional."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        # Newer syntax than this interpreter reads (f-strings of Python 3.12): the import lines still tell.
        return _imports_by_line(source), set()
    optional_ids = {
        id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) for b in t.body for n in ast.walk(b)
    }
    required: set[str] = set()
    optional: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module.split(".")[0]]
        for name in names:
            (optional if id(node) in optional_ids else required).add(name)
    return required, optional - required


def _program_text(rec: Record, name: str) -> tuple[str | None, Unwrapped | None]:
    """A python file's text, and what it runs when it is a packed wrapper."""
    path = rec.files.get(name)
    if path is None:
        return None, None
    text, _ = read_text_tolerant(path)
    return text, unwrap(path)


def check_requirements(rec: Record) -> list[Finding]:
    rule = "requirements"
    local = {Path(n).stem for n in rec.files if n.endswith(".py")}
    needed: set[str] = set()
    for name in sorted(n for n in rec.files if n.endswith(".py")):
        text, wrapped = _program_text(rec, name)
        source = wrapped.source if wrapped is not None else text
        if source is None:
            continue
        required, _ = _imports(source)
        needed |= required
    extra = sorted(
        n
        for n in needed
        if n not in sys.stdlib_module_names and n not in local and n not in CHECK_POLICY.challenge_packages
    )
    if not extra:
        return [
            Finding(
                rule,
                PASS,
                "imports nothing beyond the challenge's own requirements"
                + (
                    "; requirements.txt present"
                    if "requirements.txt" in rec.files
                    else ": requirements.txt not needed"
                ),
            )
        ]
    named_in: dict[str, Path] = {n: rec.files[n] for n in ("requirements.txt", "README.md") if n in rec.files}
    named_in.update({n: p for n, p in rec.files.items() if n.endswith(".sh")})
    texts = {n: (read_text_tolerant(p)[0] or "").lower() for n, p in named_in.items()}
    missing = []
    where: list[str] = []
    for pkg in extra:
        hits = [n for n, t in texts.items() if any(a.lower() in t for a in CHECK_POLICY.aliases_of(pkg))]
        if hits:
            where.append(f"{pkg} ({hits[0]})")
        else:
            missing.append(pkg)
    if missing:
        return [
            Finding(
                rule,
                FAIL,
                f"imports {', '.join(missing)} (beyond the challenge's requirements) but no requirements.txt, "
                "README.md or setup script names them",
                evidence=(Evidence(extra, rec.code_file),),
            )
        ]
    return [
        Finding(
            rule,
            PASS,
            f"extra packages named: {', '.join(where)}",
            evidence=(Evidence(extra, rec.code_file),),
        )
    ]


def check_seed_logs(rec: Record) -> list[Finding]:
    rule = "seed_logs"
    out: list[Finding] = []
    for rel, named, printed in rec.name_content_mismatches:
        seed_line = rec.logs[rel].seed
        out.append(
            Finding(
                rule,
                FAIL,
                f"{rel}: its file name says seed {named}, but it prints seed {printed}",
                rel,
                (Evidence(printed, rel, seed_line.line if seed_line else None, "seed"),),
            )
        )
    if not rec.seeds:
        detail = "no seeds: submission.json lists none and no log's final metric is the claimed score"
        if rec.logs:
            detail += f" (logs: {', '.join(sorted(rec.logs)[:5])})"
        return [*out, Finding(rule, NOT_VERIFIABLE, detail)]
    for seed in rec.seeds:
        run = rec.runs[seed]
        if run.result is not None and not run.logs and not rec.is_pgolf():
            out.append(Finding(rule, PASS, f"harness result {run.result_file}", _subject(seed)))
            continue
        if not run.logs:
            out.append(
                Finding(
                    rule,
                    FAIL,
                    f"no log of seed {seed} in the folder ({rec.seeds_source} lists it)",
                    _subject(seed),
                )
            )
            continue
        log = run.logs[run.log_file] if run.log_file else None
        how = (
            "prints its seed"
            if log is not None and log.seed is not None
            else "seed from its file name"
            if run.log_file and _name_seed(run.log_file) == seed
            else "no seed in it: matched by its final metric"
        )
        ev = (
            (Evidence(seed, run.log_file, log.seed.line, log.seed.text),)
            if log is not None and log.seed is not None
            else (Evidence(seed, run.log_file),)
        )
        others = sorted(set(run.logs) - {run.log_file or ""})
        detail = f"{run.log_file} ({how})" + (f"; also {', '.join(others)}" if others else "")
        out.append(Finding(rule, PASS, detail, _subject(seed), ev))
    return out


def check_seed_count(rec: Record) -> list[Finding]:
    rule = "seed_count"
    n = len(rec.seeds)
    track = rec.track()
    ev = (Evidence(rec.seeds, None, None, f"seeds (from {rec.seeds_source or 'nowhere'})"),)
    if not rec.is_record_track():
        return [
            Finding(
                rule, PASS, f"track {track!r} is not a record track: any number of seeds ({n})", evidence=ev
            )
        ]
    if n >= RULES.min_record_seeds:
        return [Finding(rule, PASS, f"{n} seeds on record track {track!r}", evidence=ev)]
    # The README asks for enough runs to show significance ("most often ... 3 runs"), not a count.
    return [
        Finding(
            rule,
            NOT_VERIFIABLE,
            f"{n} seed(s) on record track {track!r}: too few to show a significant win "
            f"(usually {RULES.min_record_seeds})",
            evidence=ev,
        )
    ]


def check_submission_json(rec: Record) -> list[Finding]:
    rule = "submission_json"
    name = rec.submission_file
    if rec.submission is None:
        return [Finding(rule, FAIL, f"{name}: {rec.submission_error}", name)]
    bpb = rec.submission.get("val_bpb")
    if _number(bpb) is None:
        return [
            Finding(
                rule,
                FAIL,
                f"well-formed, but claims no score: val_bpb is {bpb!r}, expected a number",
                name,
                (_claim_evidence("val_bpb", bpb),),
            )
        ]
    return [
        Finding(
            rule,
            PASS,
            "well-formed JSON object with a val_bpb",
            name,
            (Evidence(len(rec.submission), name, None, "fields"),),
        )
    ]


def check_submission_schema(rec: Record) -> list[Finding]:
    rule = "submission_schema"
    name = rec.submission_file
    if rec.submission is None:
        return [Finding(rule, NOT_VERIFIABLE, f"{name} not readable", name)]
    try:
        full = load_schema("submission")
    except (FileNotFoundError, json.JSONDecodeError, ModuleNotFoundError) as exc:
        return [Finding(rule, NOT_VERIFIABLE, f"submission schema not available ({exc})", name)]
    if rec.is_pgolf():
        schema, which = full, "full pgolf schema"
    else:
        # The challenge's older folders: the lenient leaderboard shape (types only).
        schema = {**full["$defs"]["leaderboard"], "$defs": full["$defs"]}
        which = "leaderboard fields only (no schema_version: not made by pgolf)"
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(rec.submission), key=lambda e: list(e.absolute_path))
    if not rec.is_pgolf():
        # Hand-written folders: only the fields the README asks for must have their types; others are shown.
        essential = [e for e in errors if e.absolute_path and e.absolute_path[0] in LEADERBOARD_ESSENTIAL]
        if not essential:
            odd = sorted({str(e.absolute_path[0]) for e in errors if e.absolute_path})
            detail = f"valid against the {which}" + (
                f"; fields with other types than pgolf writes: {', '.join(odd)}" if odd else ""
            )
            return [Finding(rule, PASS, detail, name)]
        errors = essential
    if not errors:
        return [Finding(rule, PASS, f"valid against the {which}", name)]
    out = []
    for err in errors[:10]:
        where = "/".join(str(p) for p in err.absolute_path) or "(top)"
        out.append(
            Finding(
                rule,
                FAIL,
                f"{which}: {where}: {err.message[:200]}",
                name,
                (
                    Evidence(
                        _jsonable(err.instance) if not isinstance(err.instance, dict) else "{...}",
                        name,
                        None,
                        where,
                    ),
                ),
            )
        )
    if len(errors) > 10:
        out.append(Finding(rule, FAIL, f"... and {len(errors) - 10} more schema errors", name))
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
    gap = (date - folder_date).days
    # The folder is named when work starts; submission.json is dated when it is submitted (policy).
    before, after = CHECK_POLICY.date_days_before_folder, CHECK_POLICY.date_days_after_folder
    verdict = PASS if -before <= gap <= after else FAIL
    return [
        Finding(
            rule,
            verdict,
            f"date {claimed} vs folder date {folder_date}: {gap:+d} day(s) "
            f"(allowed {-before:+d} to {after:+d}: submitted on or after the folder's date)",
            evidence=(_claim_evidence("date", claimed), Evidence(rec.name, None, None, "folder name")),
        )
    ]


def check_track(rec: Record) -> list[Finding]:
    rule = "track"
    written = rec.field("track")
    claimed = CHECK_POLICY.track_name(written) if isinstance(written, str) else written
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
    if isinstance(written, str) and written != claimed:
        ev.append(
            Evidence(written, rec.submission_file, None, f"track, a name the repository uses for {claimed}")
        )
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
    return _code_size_findings(rec)


def _code_size_findings(rec: Record) -> list[Finding]:
    """Each seed's logged code length against the shipped code, as shipped or (a packed wrapper) decoded."""
    rule = "code_identity"
    candidates = sorted(n for n in rec.files if fnmatch.fnmatch(n, CHECK_POLICY.code_glob))
    if not candidates:
        return [Finding(rule, NOT_VERIFIABLE, f"no {RULES.code_filename} to compare")]
    code = rec.code_file or candidates[0]
    shipped = rec.files[code].stat().st_size
    sizes: dict[int, str] = {}
    # A folder may ship several variants (train_gpt.py and train_gpt_<variant>.py): a log matches one.
    for name in [code, *[c for c in candidates if c != code]]:
        _, wrapped = _program_text(rec, name)
        sizes.setdefault(rec.files[name].stat().st_size, f"{name} as shipped")
        if wrapped is not None:
            sizes.setdefault(len(wrapped.source.encode("utf-8")), f"{name} decoded ({wrapped.how})")
    shown = "; ".join(f"{what}: {n:,} bytes" for n, what in sizes.items())
    out = []
    for seed in rec.seeds:
        run = rec.runs[seed]
        for rel, log in sorted(run.logs.items(), key=lambda kv: kv[0] != run.log_file):
            fact = log.code_bytes
            if fact is None:
                if rel == run.log_file:
                    why = (
                        "the log prints only the compressed code size, which is not compared with a file"
                        if log.code_bytes_compressed is not None
                        else "no code hash and the log prints no code size"
                    )
                    out.append(Finding(rule, NOT_VERIFIABLE, f"{rel}: {why}", _subject(seed)))
                continue
            ev = (Evidence(fact.value, rel, fact.line, fact.text), Evidence(shipped, code))
            if fact.value in sizes:
                detail = f"{rel}: the code that ran was {fact.value:,} bytes = {sizes[fact.value]}"
                out.append(Finding(rule, PASS, detail, _subject(seed), ev))
            else:
                gap = fact.value - shipped
                detail = f"{rel}: the code that ran was {fact.value:,} bytes ({gap:+,} vs {code}); {shown}"
                out.append(Finding(rule, FAIL, detail, _subject(seed), ev))
    return out or [Finding(rule, NOT_VERIFIABLE, "no seed log to compare the code against")]


def _seed_value(run: SeedRun, key: str) -> tuple[float | None, Evidence | None, int | None]:
    """A per-seed score, from the log's final metric, else the harness's result.json."""
    metric = run.metric
    if metric is not None:
        value = metric.val_bpb if key == "val_bpb" else metric.val_loss
        decimals = metric.bpb_decimals if key == "val_bpb" else metric.loss_decimals
        if value is not None:
            return value, Evidence(value, run.log_file, metric.line, metric.text), decimals
    if run.result is not None and (v := _number(run.result.get(key))) is not None:
        return v, Evidence(v, run.result_file, None, key), None
    return None, None, None


def _where_claim_matches(rec: Record, seed: int, key: str, claimed: float) -> str:
    """Where else in the folder a mismatched claim appears: another pass, or another seed's log."""
    for rel, log in rec.logs.items():
        for m in log.metrics:
            value = m.val_bpb if key == "val_bpb" else m.val_loss
            decimals = m.bpb_decimals if key == "val_bpb" else m.loss_decimals
            if value is not None and matches(claimed, value, decimals):
                printed = _log_seed(rel, log)
                who = (
                    f"which ran seed {printed}" if printed is not None and printed != seed else "of this seed"
                )
                return f"; the claim is {m.label!r} at {rel}:{m.line}, {who}"
    return "; no log in the folder reports it"


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
            if not run.logs and run.result is None:
                if claimed is not None or key == "val_bpb":
                    out.append(
                        Finding(
                            rule,
                            NOT_VERIFIABLE,
                            f"claimed {claimed}; no log of this seed (seed_logs)",
                            f"{_subject(seed)} {key}",
                        )
                    )
                continue
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
            if not ok:
                detail += _where_claim_matches(rec, seed, key, claimed)
            elif run.log is not None and run.metric is not None and run.metric is not run.log.final:
                last = run.log.final
                assert last is not None
                detail += (
                    f" ({run.metric.label!r} at line {run.metric.line}; the log's last final, "
                    f"{last.label!r} at line {last.line}, is another pass the submission does not report)"
                )
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


def _per_seed_value_of_log(rec: Record, seed: int, key: str) -> float | None:
    """The final value of a seed's log (by the seed it prints), for seeds the folder does not claim."""
    if seed in rec.runs:
        value, _, _ = _seed_value(rec.runs[seed], key)
        return value
    for rel, log in sorted(rec.logs.items()):
        if _log_seed(rel, log) == seed and log.final is not None:
            return log.final.val_bpb if key == "val_bpb" else log.final.val_loss
    return None


def check_aggregates(rec: Record) -> list[Finding]:
    rule = "mean_std"
    if not rec.seeds:
        return _no_seeds(rule)
    out = []
    # A folder that lists no seeds and claims one run's score, beside logs of other seeds: say so.
    others = sorted(
        {
            s
            for rel, log in rec.logs.items()
            if log.final is not None and (s := _log_seed(rel, log)) is not None
        }
        - set(rec.seeds)
    )
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
            if field_name.endswith("_std") and len(values) > 1:
                ok, how = _std_matches(c, values)
                detail = f"claimed {c}, {how}, over {len(values)} seed(s) from {source}"
            verdict = PASS if ok else FAIL
            if (
                ok
                and not field_name.endswith("_std")
                and not rec.seeds_listed
                and others
                and len(values) == 1
            ):
                every = [_per_seed_value_of_log(rec, s, key) for s in [*rec.seeds, *others]]
                known = [v for v in every if v is not None]
                verdict = NOT_VERIFIABLE
                detail += (
                    f"; the claim is seed {rec.seeds[0]}'s own value, not the mean "
                    f"{stats.mean(known):.8g} of the {len(known)} seeds whose logs the folder holds ({', '.join(map(str, [*rec.seeds, *others]))})"
                )
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


def _std_matches(claimed: float, values: list[float]) -> tuple[bool, str]:
    """A claimed std against the sample and population stds (policy), within the printed precision or a relative tolerance."""
    n = len(values)
    sample = stats.sample_std(values) or 0.0
    tol = CHECK_POLICY.std_relative_tolerance
    shown = []
    for ddof in CHECK_POLICY.std_ddofs:
        std = sample * math.sqrt((n - 1) / (n - ddof))
        name = "sample std (ddof=1)" if ddof == 1 else f"population std (ddof={ddof})"
        shown.append(f"{name} {std:.6g}")
        if matches(claimed, std) or abs(claimed - std) <= tol * std:
            return True, f"matches the {name} {std:.6g} (within {tol:.0%})"
    return False, "recomputed " + ", ".join(shown)


def _counted_code_bytes(rec: Record) -> int | None:
    """Bytes of the shipped code: train_gpt.py, plus the file a wrapper runs from beside it."""
    if rec.code_file is None:
        return None
    _, wrapped = _program_text(rec, rec.code_file)
    names = wrapped.files if wrapped is not None else (rec.code_file,)
    return sum(rec.files[n].stat().st_size for n in names if n in rec.files)


def _log_with_artifact(rec: Record, size: int) -> tuple[str, int | None] | None:
    for rel, log in rec.logs.items():
        if log.artifact_bytes is not None and log.artifact_bytes.value == size:
            return rel, _log_seed(rel, log)
    return None


def check_artifact_bytes(rec: Record) -> list[Finding]:
    rule = "artifact_bytes"
    cap = rec.limits.artifact_cap_bytes
    cap_text = f"cap {cap:,}" + ("" if not rec.limits.scaled else f" ({rec.limits.source})")
    shipped_code = _counted_code_bytes(rec)
    out: list[Finding] = []
    measured: dict[int, int] = {}
    model_bytes: dict[int, int] = {}
    for seed in rec.seeds:
        run = rec.runs[seed]
        sources: list[tuple[int, Evidence, str]] = []
        log_file, log = run.train_log
        if log is not None and log.artifact_bytes is not None:
            f = log.artifact_bytes
            for other in log.artifact_sizes:
                if other.value != f.value:
                    sources.append(
                        (other.value, Evidence(other.value, log_file, other.line, other.text), "log")
                    )
            sources.append((f.value, Evidence(f.value, log_file, f.line, f.text), "log"))
            if log.model_bytes is not None and log.model_bytes.label:
                model_bytes[seed] = log.model_bytes.value
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
        evid = [e for _, e, _ in sources]
        verdict = FAIL if over else PASS
        detail = f"{'; '.join(f'{v:,} bytes ({what})' for v, _, what in sources)} vs {cap_text}"
        # The harness's count is the authority where present; the log's own line otherwise.
        best = sources[-1][0]
        measured[seed] = best
        if claimed is not None:
            evid.append(_claim_evidence(f"seed_results/{seed}/artifact_bytes", claimed))
            with_code = model_bytes.get(seed, -1) + (shipped_code or 0)
            if claimed == best:
                pass
            elif seed in model_bytes and shipped_code is not None and claimed == with_code:
                detail += (
                    f"; the claim {claimed:,} is the model plus the shipped code ({shipped_code:,} bytes)"
                )
            elif seed in model_bytes and claimed == model_bytes[seed]:
                verdict = FAIL
                detail += f"; submission.json claims {claimed:,}, the model alone without its code"
            else:
                verdict = FAIL
                detail += f"; submission.json claims {claimed:,}, which no log of this seed reports"
        out.append(Finding(rule, verdict, detail, _subject(seed), tuple(evid)))
    for key in ("artifact_bytes_max", "bytes_total"):
        c = _integer(rec.field(key))
        if c is None:
            continue
        ev = (_claim_evidence(key, c),)
        if c > cap:
            out.append(Finding(rule, FAIL, f"{key} {c:,} over {cap_text}", key, ev))
            continue
        if not measured or len(measured) != len(rec.seeds):
            out.append(
                Finding(rule, PASS, f"{key} {c:,} <= {cap_text} (not every seed's size is known)", key, ev)
            )
            continue
        values = list(measured.values())
        aggregates = {"max": max(values), "mean": round(stats.mean(values))}
        if key == "artifact_bytes_max":
            aggregates = {"max": max(values)}
        how = next(
            (
                a
                for a in CHECK_POLICY.bytes_total_aggregates
                if a in aggregates and abs(c - aggregates[a]) <= 1
            ),
            None,
        )
        packed = _expected_total(rec, key, values)
        if how is not None:
            out.append(
                Finding(
                    rule, PASS, f"{key} {c:,} is the {how} of the seeds' artifacts, <= {cap_text}", key, ev
                )
            )
        elif c == packed:
            out.append(
                Finding(
                    rule,
                    PASS,
                    f"{key} {c:,} is the largest artifact with the shipped code, <= {cap_text}",
                    key,
                    ev,
                )
            )
        elif c not in values and (elsewhere := _log_with_artifact(rec, c)) is not None:
            rel, printed = elsewhere
            detail = f"{key} {c:,} is the artifact of {rel} (seed {printed}), not of the claimed seeds' runs; <= {cap_text}"
            out.append(Finding(rule, NOT_VERIFIABLE, detail, key, ev))
        elif c in values:
            seed = next(s for s, v in measured.items() if v == c)
            verdict = PASS if not rec.seeds_listed or len(values) == 1 else NOT_VERIFIABLE
            detail = f"{key} {c:,} is seed {seed}'s artifact" + (
                "" if verdict == PASS else f", not the mean or max ({aggregates['max']:,} max)"
            )
            out.append(Finding(rule, verdict, detail + f"; <= {cap_text}", key, ev))
        elif any(c == m + (shipped_code or 0) for m in model_bytes.values()):
            out.append(
                Finding(
                    rule, PASS, f"{key} {c:,} is a seed's model plus the shipped code, <= {cap_text}", key, ev
                )
            )
        else:
            detail = (
                f"{key} {c:,} is neither the max ({aggregates['max']:,}) nor the mean of the seeds' artifacts"
            )
            out.append(Finding(rule, FAIL, detail, key, ev))
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


def _log_time(log: LogFacts, metric: Metric | None, key: str) -> Fact[float] | None:
    if key == "train_time_s":
        return log.train_time_ms
    fact = log.eval_time_ms
    if (
        metric is not None
        and metric.eval_time_ms is not None
        and (fact is None or fact.label != "total_eval_time")
    ):
        # The evaluation the submission reports, not an extra pass after it.
        return Fact(
            metric.eval_time_ms,
            metric.eval_time_line or metric.line,
            metric.text,
            f"{metric.label} eval_time",
        )
    return fact


def _time_rule(rule: str, rec: Record, key: str, limit_s: float) -> list[Finding]:
    if not rec.seeds:
        return _no_seeds(rule)
    what = "training" if key == "train_time_s" else "evaluation"
    limits_apply = rec.is_record_track() or rec.limits.scaled
    limit_text = f"limit {limit_s:g} s" + (f" ({rec.limits.source})" if rec.limits.scaled else "")
    out = []
    for seed in rec.seeds:
        run = rec.runs[seed]
        sources: list[tuple[float, Evidence, str, float | None]] = []
        for rel, log in sorted(run.logs.items(), key=lambda kv: kv[0] != run.log_file):
            fact = _log_time(log, run.metric if rel == run.log_file else log.final, key)
            if fact is None:
                continue
            step = log.step_avg_ms.value if log.step_avg_ms is not None else None
            gpus = f", {log.world_size.value} GPU(s)" if log.world_size is not None else ""
            sources.append(
                (
                    fact.value / 1000.0,
                    Evidence(round(fact.value / 1000.0, 3), rel, fact.line, fact.text),
                    f"{rel}, {fact.label or 'trainer-reported'}{gpus}",
                    step,
                )
            )
        if run.result is not None and (v := _number(run.result.get(key))) is not None:
            sources.append((v, Evidence(v, run.result_file, None, key), "result.json (harness clock)", None))
        claimed = _number(run.claim.get(key))
        verdict: Verdict
        if not sources:
            verdict = FAIL if limits_apply and claimed is not None and claimed > limit_s else NOT_VERIFIABLE
            detail = f"the log shows no {what} time"
            if claimed is not None:
                detail += f"; claimed {claimed} s"
            out.append(Finding(rule, verdict, detail, _subject(seed)))
            continue
        parts, verdict = [], PASS
        for value, _, source, step_ms in sources:
            text = f"{value:.3f} s ({source})"
            over = value - limit_s
            if limits_apply and over > 0:
                allowance = (step_ms or 0.0) * CHECK_POLICY.train_overshoot_steps / 1000.0
                if key == "train_time_s" and over <= allowance:
                    text += (
                        f" over by {over:.3f} s, within the last step (allowance {allowance:.3f} s = "
                        f"{CHECK_POLICY.train_overshoot_steps:g} x {step_ms:.1f} ms): the loop stops after the step that crosses"
                    )
                else:
                    verdict = FAIL
                    text += f" OVER by {over:.3f} s"
            parts.append(text)
        detail = "; ".join(parts) + (
            f" vs {limit_text}" if limits_apply else f"; track {rec.track()!r} has no time limit"
        )
        evid = [e for _, e, _, _ in sources]
        if claimed is not None:
            reference = sources[0][0] if run.result is None else sources[-1][0]
            evid.append(_claim_evidence(f"seed_results/{seed}/{key}", claimed))
            if (limits_apply and claimed > limit_s) or not matches(claimed, reference, 3):
                verdict = FAIL
                detail += f"; submission.json claims {claimed} s"
        out.append(Finding(rule, verdict, detail, _subject(seed), tuple(evid)))
    return out


def check_train_time(rec: Record) -> list[Finding]:
    return _time_rule("train_time", rec, "train_time_s", rec.limits.train_time_s)


def check_eval_time(rec: Record) -> list[Finding]:
    return _time_rule("eval_time", rec, "eval_time_s", rec.limits.eval_time_s)


def check_seed_steps(rec: Record) -> list[Finding]:
    rule = "seed_steps"
    out = []
    for seed in rec.seeds:
        run = rec.runs[seed]
        log_file, log = run.train_log
        for key, fact in (
            ("steps", log.steps if log else None),
            ("step_avg_ms", log.step_avg_ms if log else None),
        ):
            claimed = _number(run.claim.get(key))
            if claimed is None:
                continue
            measured: float | None = None
            ev: Evidence | None = None
            if run.result is not None and (rv := _number(run.result.get(key))) is not None:
                measured, ev = rv, Evidence(rv, run.result_file, None, key)
            elif fact is not None:
                measured, ev = float(fact.value), Evidence(fact.value, log_file, fact.line, fact.text)
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


def _leaderboard_row(rec: Record) -> tuple[Leaderboard | None, LeaderboardRow | None, str]:
    lb = rec.leaderboard
    if lb is None:
        return None, None, "no leaderboard given (pgolf check --leaderboard README.md)"
    row = lb.row_of(rec.name)
    if row is None:
        return lb, None, f"{rec.name} is not linked from a row of {lb.path.name}"
    return lb, row, ""


def _folder_finals(rec: Record) -> list[tuple[str, Metric]]:
    return [(rel, log.final) for rel, log in sorted(rec.logs.items()) if log.final is not None]


def _over_limits(rec: Record, rel: str, log: LogFacts) -> str | None:
    """Why a log's run breaks the time limits (record track), or None."""
    if not rec.is_record_track():
        return None
    problems = []
    if log.train_time_ms is not None:
        over = log.train_time_ms.value / 1000.0 - rec.limits.train_time_s
        allowance = (
            (log.step_avg_ms.value if log.step_avg_ms else 0.0) * CHECK_POLICY.train_overshoot_steps / 1000.0
        )
        if over > allowance:
            problems.append(f"{log.train_time_ms.value / 1000.0:,.0f} s of training")
    if log.eval_time_ms is not None and log.eval_time_ms.value / 1000.0 > rec.limits.eval_time_s:
        problems.append(f"{log.eval_time_ms.value / 1000.0:,.0f} s of evaluation")
    if problems and log.world_size is not None:
        problems.append(f"on {log.world_size.value} GPU(s)")
    return f"{rel} ({', '.join(problems)})" if problems else None


def check_leaderboard(rec: Record) -> list[Finding]:
    """The folder's leaderboard row shows the score the folder claims, or the mean its logs support."""
    rule = "leaderboard"
    lb, row, why = _leaderboard_row(rec)
    if row is None or lb is None:
        return [Finding(rule, NOT_VERIFIABLE, why)]
    ev = (Evidence(row.score, lb.path.name, row.line, row.run),)
    claimed = _number(rec.field("val_bpb"))
    decimals = decimals_of(row.score_text)
    # The table prints the claim rounded: it must be exactly that rounding.
    if claimed is not None and round(claimed, decimals) == row.score:
        return [Finding(rule, PASS, f"row {row.describe()} shows the claimed val_bpb {claimed}", "row", ev)]
    finals = _folder_finals(rec)
    if len(finals) > 1 and round(stats.mean([m.val_bpb for _, m in finals]), decimals) == row.score:
        broken = [p for rel, _ in finals if (p := _over_limits(rec, rel, rec.logs[rel])) is not None]
        detail = (
            f"row {row.describe()} is the mean over the folder's {len(finals)} logs "
            f"({', '.join(rel for rel, _ in finals)}), not the claimed val_bpb {claimed}"
        )
        if broken:
            return [
                Finding(
                    rule,
                    FAIL,
                    detail + f"; that mean includes runs over the limits: {'; '.join(broken)}",
                    "row",
                    ev,
                )
            ]
        return [Finding(rule, PASS, detail + "; every one of them within the limits", "row", ev)]
    return [
        Finding(
            rule,
            FAIL,
            f"row {row.describe()}, but the folder claims val_bpb {claimed} and no mean of its logs gives the row's score",
            "row",
            ev,
        )
    ]


def _reference_values(rec: Record, row: LeaderboardRow) -> tuple[list[float] | None, str]:
    """Per-seed val_bpb of a leaderboard row's folder, when it sits beside this one."""
    if row.folder is None or row.track_dir is None:
        return None, "its folder is not linked"
    folder = rec.path.parent.parent / row.track_dir / row.folder
    if not folder.is_dir():
        return None, f"its folder {row.track_dir}/{row.folder} is not beside this one"
    try:
        other = load_record(folder)
    except PgolfError as exc:
        return None, str(exc)
    values, from_claims = _per_seed(other, "val_bpb")
    if len(values) != len(other.seeds) or len(values) < 2:
        return None, f"{row.folder} has per-seed val_bpb for {len(values)} seed(s)"
    return values, f"{row.folder}'s {len(values)} seeds" + (" (some only claimed)" if from_claims else "")


def check_significance(rec: Record) -> list[Finding]:
    """Beats the row below it on the leaderboard, under the chosen policy; the other policy's answer is shown."""
    rule = "significance"
    lb, row, why = _leaderboard_row(rec)
    if row is None or lb is None:
        return [Finding(rule, NOT_VERIFIABLE, why)]
    if not rec.is_record_track():
        return [Finding(rule, PASS, f"track {rec.track()!r} is not a record track: no record to beat")]
    below = lb.row_below(row)
    if below is None:
        return [
            Finding(rule, NOT_VERIFIABLE, f"row {row.describe()} is the last of its table: nothing to beat")
        ]
    bpbs, _ = _per_seed(rec, "val_bpb")
    losses, _ = _per_seed(rec, "val_loss")
    if len(bpbs) < 2 or len(bpbs) != len(rec.seeds):
        return [
            Finding(
                rule,
                NOT_VERIFIABLE,
                f"{len(bpbs)} seed(s) with a val_bpb: a significance test needs at least two (vs {below.describe()})",
            )
        ]
    # The rule's margin is in nats; the table is in bpb: this run's nats per bpb converts (same val text).
    nats_per_bpb = stats.mean(losses) / stats.mean(bpbs) if len(losses) == len(bpbs) else None
    reference, ref_text = _reference_values(rec, below)
    results: dict[str, tuple[bool | None, str]] = {}
    for policy in SIGNIFICANCE_POLICIES.values():
        if policy.margin_nats and nats_per_bpb is None:
            results[policy.name] = (None, f"{policy.name}: no per-seed val_loss to convert the margin")
            continue
        margin_bpb = policy.margin_nats / nats_per_bpb if policy.margin_nats and nats_per_bpb else 0.0
        ref: list[float] | float = reference if (policy.test == "welch" and reference) else below.score
        test = stats.compare_less(bpbs, ref, margin_bpb, policy.alpha)
        against = ref_text if isinstance(ref, list) else f"the row's score {below.score_text}"
        p = "n/a" if test.p_value is None else f"{test.p_value:.3g}"
        text = (
            f"{policy.name}: mean {test.mean:.5f} vs {against} (mean {test.reference_mean:.5f})"
            + (f" - {policy.margin_nats} nats ({margin_bpb:.5f} bpb)" if policy.margin_nats else "")
            + f", {test.test}, p = {p} {'<' if test.significant else '>='} {policy.alpha}"
        )
        results[policy.name] = (None if test.p_value is None else test.significant, text)
    chosen = rec.significance_policy
    ok, text = results[chosen]
    others = "; ".join(t for name, (_, t) in results.items() if name != chosen)
    verdict = NOT_VERIFIABLE if ok is None else (PASS if ok else FAIL)
    detail = f"vs the row below, {below.describe()}: {text} [policy {chosen!r}]; also {others}"
    return [
        Finding(
            rule,
            verdict,
            detail,
            f"policy {chosen}",
            (Evidence(below.score, lb.path.name, below.line, below.run),),
        )
    ]


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
        "required_files",
        "the folder holds README.md, submission.json, the code and a train log",
        check_required_files,
    ),
    Rule(
        "seed_logs",
        "a log for every claimed seed (by the seed it prints), file names agreeing with their content",
        check_seed_logs,
    ),
    Rule(
        "requirements",
        "packages imported beyond the challenge's own requirements are named (requirements.txt, README)",
        check_requirements,
    ),
    Rule(
        "seed_count",
        f"a record track claim has enough seeds to show significance (usually {RULES.min_record_seeds})",
        check_seed_count,
    ),
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


# Rules that need `--leaderboard README.md`: run only when a leaderboard is given.
LEADERBOARD_RULES: tuple[Rule, ...] = (
    Rule(
        "leaderboard",
        "with --leaderboard: the folder's row shows its claimed score (or the mean its logs support)",
        check_leaderboard,
    ),
    Rule(
        "significance",
        "with --leaderboard: beats the row below under a named policy (readme: 0.005 nats, p < 0.01; "
        "maintainers: Welch, p < 0.25)",
        check_significance,
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


def check_record(
    record_dir: Path,
    rules: tuple[Rule, ...] = CHECK_RULES,
    leaderboard: Leaderboard | None = None,
    significance_policy: str = "readme",
) -> CheckReport:
    """Load a record folder and run every rule on it (against a leaderboard, when one is given)."""
    if significance_policy not in SIGNIFICANCE_POLICIES:
        raise PgolfError(
            f"significance policy {significance_policy!r}: expected one of {', '.join(SIGNIFICANCE_POLICIES)}"
        )
    rec = load_record(record_dir)
    rec.leaderboard, rec.significance_policy = leaderboard, significance_policy
    if leaderboard is not None and rules is CHECK_RULES:
        rules = CHECK_RULES + LEADERBOARD_RULES
    return CheckReport(record_dir=rec.path, findings=run_rules(rec, rules), rules=rules, notes=rec.notes)


@dataclass(frozen=True)
class SeedScore:
    """One seed's final val_loss/val_bpb as the folder supports it (for `pgolf stats`)."""

    seed: int
    val_loss: float
    val_bpb: float
    source: str  # "log:line", result.json, or "claim" when no log reports it


def record_scores(rec: Record) -> tuple[list[SeedScore], list[str]]:
    """Per-seed scores of a record folder: each seed's log first, its claim only where no log reports it."""
    scores: list[SeedScore] = []
    notes: list[str] = []
    for seed in rec.seeds:
        run = rec.runs[seed]
        loss, _, _ = _seed_value(run, "val_loss")
        bpb, bpb_ev, _ = _seed_value(run, "val_bpb")
        source = bpb_ev.where() if bpb_ev is not None and bpb_ev.file else ""
        if loss is None or bpb is None:
            loss = loss if loss is not None else _number(run.claim.get("val_loss"))
            bpb = bpb if bpb is not None else _number(run.claim.get("val_bpb"))
            source = "claim (no log reports it)"
        if loss is None or bpb is None:
            notes.append(f"seed {seed}: no val_loss and val_bpb in a log or a claim; left out")
            continue
        scores.append(SeedScore(seed, loss, bpb, source))
    return scores, notes
