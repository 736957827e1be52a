"""Tolerant parsing of training logs: the facts a reviewer needs, each with its line number.

The challenge's leaderboard folders hold logs from many different trainers. They share
a handful of line shapes, which this module reads (and nothing else is assumed):

- final metrics: ``<label> val_loss:<x> val_bpb:<y> [eval_time:<n>ms]``, e.g.
  ``final_int8_zlib_roundtrip_exact``, ``final_int6_sliding_window``, ``quantized_ttt_phased``;
  an ``_exact`` line refines the line before it that has the same label without ``_exact``;
  ``diagnostic ...`` / ``pre-quantization ...`` lines are reported but never the final score;
  a space may stand for the colon (``final val_loss 2.31 val_bpb 1.06``) and ``time:<n>ms`` for ``eval_time``;
- step lines: ``step:<n>/<m> train_loss:<x> train_time:<t>ms step_avg:<a>ms`` and the newer
  ``<n>/<m> train_loss: <x> train_time: <t>m tok/s: ...``; ``step:<n>/<m> val_loss:... val_bpb:...``
  is periodic validation, not a final score;
- ``stopping_early: wallclock_cap train_time:<t>ms step:<n>/<m>`` (with or without spaces);
- ``total_eval_time:<s>s``;
- sizes: ``Total submission size[ <qualifier>]: <n> bytes``, ``Serialized model[ <qualifier>]: <n> bytes``,
  ``Code size: <n> bytes`` (a qualified total, e.g. ``int8+zlib``, is the compressed artifact
  and wins over an unqualified one, which some trainers print for the raw model);
- ``seed:<n>``, ``seed: <n>``, ``seed=<n>`` inside a one-line hyperparameter dump, ``world_size:<n>``
  and ``val_tokens:<n>``; a log holding several runs reports the seed of the run its final belongs to;
- settings between a final's label and its values (``final_x stride:64 val_loss:...``), ``=`` for
  ``:`` (``val_bpb=1.08``); a line repeating the previous final's values under another label is
  an alias (the first keeps its eval time); ``Code size (compressed)`` is kept apart;
- timestamp prefixes (``1776142360.541 ``, ``[19:23:20] ``, ISO date-times) are ignored;
- the native protocol's ``:::PGOLF {json}`` events (:mod:`harness.protocol`).

Logs often start with the trainer's own source code, closed by a rule line of ``=`` or
``-``: that region is skipped (source code is never a source of facts); elsewhere patterns
require literal numbers where source code has ``{...}`` placeholders. Every final evaluation
is kept (:attr:`LogFacts.finals`); ``final`` is the last, and a checker picks the one a
submission reports. Nothing here raises on odd input: binary junk, bad UTF-8 and huge lines
are read as far as they make sense.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from harness.protocol import (
    EV_ARTIFACT,
    EV_EVAL_END,
    EV_EVAL_START,
    EV_STEP,
    EV_TRAIN_END,
    EV_TRAIN_START,
    EVENT_PREFIX,
    parse_event,
)

T = TypeVar("T")

# A metric line is short; matching only a line's head keeps a multi-megabyte line cheap.
MAX_LINE_CHARS = 4096
# Logs of 8xH100 runs are at most a few MB; more than this is not a log worth reading whole.
MAX_LOG_BYTES = 64 * 1024 * 1024
# Source lines kept as evidence are cut to this many characters.
EVIDENCE_CHARS = 200

_NUM = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"

_STEP_RE = re.compile(
    r"(?:^|[\s\]|>])(?:step:\s*)?(?P<step>\d+)/(?P<total>\d+)\s+(?P<rest>(?:train_loss|val_loss).*)$"
)
_STEP_PREFIX_RE = re.compile(r"(?:^|[\s\]|>])step:\s*(?P<step>\d+)/(?P<total>\d+)\b(?P<rest>.*)$")
_TRAIN_TIME_RE = re.compile(rf"\btrain_time:\s*(?P<v>{_NUM})\s*(?P<unit>ms|s|m|min|h)?\b")
_STEP_AVG_RE = re.compile(rf"\bstep_avg:\s*(?P<v>{_NUM})\s*(?P<unit>ms|s)?\b")
_STOP_RE = re.compile(r"stopping_early:")
_STOP_STEP_RE = re.compile(r"\bstep:\s*(?P<step>\d+)(?:/(?P<total>\d+))?")
# A metric line is matched in linear time: find "val_bpb <n>", then look back for "val_loss <n>" and
# the label words (one regex over label-and-values backtracks quadratically on long word runs).
_BPB_RE = re.compile(rf"(?<![\w])val_bpb(?::\s*|=|[ \t]+)(?P<bpb>{_NUM})")
_LOSS_TAIL_RE = re.compile(rf"(?<![\w])val_loss(?::\s*|=|[ \t]+)(?P<loss>{_NUM})[ \t,]+$")
_LABEL_WORD_RE = re.compile(r"[A-Za-z][\w+\-.]*")
_LABEL_TAIL_RE = re.compile(r"[A-Za-z][\w+\-.]*$")
_EVAL_TIME_RE = re.compile(rf"\b(?:eval_time|time):\s*(?P<v>{_NUM})\s*(?P<unit>ms|s|m)?\b")
_TOTAL_EVAL_RE = re.compile(rf"\btotal_eval_time:\s*(?P<v>{_NUM})\s*(?P<unit>ms|s|m)?\b")
_TOTAL_SIZE_RE = re.compile(r"Total submission size(?P<qual>[^:]{0,80}):\s*(?P<n>\d[\d,]*)\s*bytes")
_MODEL_SIZE_RE = re.compile(r"Serialized model(?P<qual>[^:]{0,80}):\s*(?P<n>\d[\d,]*)\s*bytes")
_CODE_SIZE_RE = re.compile(r"\bCode size(?P<qual>[^:]{0,80}):\s*(?P<n>\d[\d,]*)\s*bytes")
_COMPRESSED_CODE_RE = re.compile(r"(?<!un)compressed", re.IGNORECASE)
_SEED_RE = re.compile(r"^\s*(?:\[rank0\]:\s*)?seed\s*[:=]\s*(?P<n>-?\d+)\s*$")
# A hyperparameter dump on one line ("a=1 b=2 seed=1337 ..."): at least this many key=value pairs.
_DUMP_PAIR_RE = re.compile(r"(?<![\w.])[A-Za-z_]\w*=\S+")
_DUMP_MIN_PAIRS = 5
_DUMP_SEED_RE = re.compile(r"(?<![\w.])seed=(?P<n>-?\d+)\b")
_WORLD_SIZE_RE = re.compile(r"\bworld_size\s*[:=]\s*(?P<n>\d+)\b")
# Timestamp prefixes some trainers put before every line: "1776142360.541 ", "[19:23:20] ", ISO date-times.
_TIMESTAMP_RE = re.compile(
    r"^\s*(?:\[\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\]|\d{10}(?:\.\d+)?|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?Z?)\s+"
)
# Many trainers print their own source first, closed by a rule of '=' or '-': never a source of facts.
_CODE_START_RE = re.compile(r"^(?:import [A-Za-z_]|from [\w.]+ import |\"\"\"|#!)")
_RULE_LINE_RE = re.compile(r"^\s*[=\-]{20,}\s*$")
# A key:value token between a metric's label and its values ("final_x stride:64 val_loss:...").
_KEY_VALUE_TOKEN_RE = re.compile(r"^[A-Za-z_]\w*[:=]\S+$")
_VAL_TOKENS_RE = re.compile(r"^\s*val_tokens:\s*(?P<n>\d+)\s*$")

_DIAGNOSTIC_WORDS = ("diagnostic", "pre-quant", "pre_quant", "prequant", "post-ema", "post_ema")
_UNIT_TO_MS = {None: 1.0, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "min": 60_000.0, "h": 3_600_000.0}


@dataclass(frozen=True)
class Fact(Generic[T]):
    """One value read from a log, with where it came from (1-based line number)."""

    value: T
    line: int
    text: str
    label: str = ""


@dataclass(frozen=True)
class Metric:
    """A ``val_loss``/``val_bpb`` line that is not a periodic step validation."""

    label: str
    val_bpb: float
    val_loss: float | None
    line: int
    text: str
    bpb_decimals: int
    loss_decimals: int | None
    eval_time_ms: float | None = None
    diagnostic: bool = False
    eval_time_line: int | None = None


@dataclass
class LogFacts:
    """What a log says about a run. Every field is None when the log does not say it."""

    final: Metric | None = None
    metrics: list[Metric] = field(default_factory=list)
    steps: Fact[int] | None = None
    planned_steps: Fact[int] | None = None
    step_avg_ms: Fact[float] | None = None
    train_time_ms: Fact[float] | None = None
    eval_time_ms: Fact[float] | None = None
    artifact_bytes: Fact[int] | None = None
    # Every artifact size the log states (the trainer's lines and its artifact events), in order.
    artifact_sizes: list[Fact[int]] = field(default_factory=list)
    model_bytes: Fact[int] | None = None
    # The length of the source that ran; a compressed length is kept apart (never compared with a file).
    code_bytes: Fact[int] | None = None
    code_bytes_compressed: Fact[int] | None = None
    # The seed of the run whose final metric is reported (a log may hold several runs, each with its seed).
    seed: Fact[int] | None = None
    seeds: list[Fact[int]] = field(default_factory=list)
    world_size: Fact[int] | None = None
    # Lines of printed source code (first, last), skipped: code is never a source of facts.
    source_lines: tuple[int, int] | None = None
    val_tokens: Fact[int] | None = None
    stopped_early: Fact[str] | None = None
    events: list[Fact[dict[str, Any]]] = field(default_factory=list)
    styles: set[str] = field(default_factory=set)
    n_lines: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def finals(self) -> list[Metric]:
        """Every final evaluation the log reports (diagnostic passes left out), in order."""
        return [m for m in self.metrics if not m.diagnostic]

    @property
    def val_bpb(self) -> Fact[float] | None:
        if self.final is None:
            return None
        return Fact(self.final.val_bpb, self.final.line, self.final.text, self.final.label)

    @property
    def val_loss(self) -> Fact[float] | None:
        if self.final is None or self.final.val_loss is None:
            return None
        return Fact(self.final.val_loss, self.final.line, self.final.text, self.final.label)


def decimals_of(number_text: str) -> int:
    """Digits after the decimal point as printed (``1.2244`` -> 4, ``2`` -> 0, ``1e-3`` -> 3)."""
    text = number_text.strip().lstrip("+-")
    mantissa, _, exp = text.lower().partition("e")
    places = len(mantissa.partition(".")[2])
    if exp.lstrip("+-").isdigit():
        places -= int(exp)
    return max(places, 0)


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _int(text: str) -> int | None:
    try:
        return int(text.replace(",", ""))
    except ValueError:
        return None


def _ms(value: str, unit: str | None) -> float | None:
    v = _float(value)
    if v is None:
        return None
    return v * _UNIT_TO_MS.get(unit, 1.0)


def _evidence(line: str) -> str:
    line = line.strip()
    return line if len(line) <= EVIDENCE_CHARS else line[: EVIDENCE_CHARS - 3] + "..."


def _is_diagnostic(label: str) -> bool:
    low = label.lower()
    return any(word in low for word in _DIAGNOSTIC_WORDS)


def parse_log(text: str) -> LogFacts:
    """Read every fact :class:`LogFacts` knows about from the text of a log. Never raises."""
    facts = LogFacts()
    metrics: list[Metric] = []
    events_t: dict[str, Fact[float]] = {}
    lines = text.splitlines()
    facts.n_lines = len(lines)
    facts.source_lines = _source_region(lines)
    long_lines = 0
    for lineno, raw in enumerate(lines, start=1):
        if facts.source_lines and facts.source_lines[0] <= lineno <= facts.source_lines[1]:
            continue
        if len(raw) > MAX_LINE_CHARS:
            long_lines += 1
            line = raw[:MAX_LINE_CHARS]
        else:
            line = raw
        if "\x00" in line:
            line = line.replace("\x00", "")
        line = _TIMESTAMP_RE.sub("", line, count=1)
        if EVENT_PREFIX in line:
            _read_event(facts, metrics, events_t, line, lineno)
            continue
        _read_line(facts, metrics, line, lineno)
    if long_lines:
        facts.warnings.append(f"{long_lines} line(s) longer than {MAX_LINE_CHARS} characters read in part")
    if any(f.label for f in facts.artifact_sizes):
        # An unqualified total next to a qualified one is the raw (uncompressed) model: not the artifact.
        facts.artifact_sizes = [f for f in facts.artifact_sizes if f.label]
    facts.metrics = _merge_aliases(_merge_exact(metrics))
    finals = facts.finals
    facts.final = finals[-1] if finals else None
    if facts.seeds:
        # The seed of the run that printed the final metric: the last seed line before it.
        before = [f for f in facts.seeds if facts.final is None or f.line <= facts.final.line]
        facts.seed = before[-1] if before else facts.seeds[0]
    if facts.eval_time_ms is None and facts.final is not None and facts.final.eval_time_ms is not None:
        at = facts.final.eval_time_line or facts.final.line
        text = lines[at - 1] if 0 < at <= len(lines) else facts.final.text
        facts.eval_time_ms = Fact(
            facts.final.eval_time_ms, at, _evidence(text), f"{facts.final.label} eval_time"
        )
    if (
        facts.step_avg_ms is None
        and facts.train_time_ms is not None
        and facts.steps
        and facts.steps.value > 0
    ):
        facts.step_avg_ms = Fact(
            facts.train_time_ms.value / facts.steps.value,
            facts.train_time_ms.line,
            facts.train_time_ms.text,
            "train_time / steps",
        )
    return facts


def _read_line(facts: LogFacts, metrics: list[Metric], line: str, lineno: int) -> None:
    step_match = _STEP_RE.search(line) or _STEP_PREFIX_RE.search(line)
    if step_match and not _STOP_RE.search(line):
        _read_step(facts, step_match, line, lineno)
        return
    if _STOP_RE.search(line):
        facts.styles.add("legacy")
        words = line.split("stopping_early:", 1)[1].split()
        reason = words[0] if words and ":" not in words[0] else ""
        facts.stopped_early = Fact(reason, lineno, _evidence(line))
        tt = _TRAIN_TIME_RE.search(line)
        if tt and (ms := _ms(tt["v"], tt["unit"])) is not None:
            facts.train_time_ms = Fact(ms, lineno, _evidence(line), "stopping_early")
        st = _STOP_STEP_RE.search(line)
        if st:
            facts.steps = Fact(int(st["step"]), lineno, _evidence(line), "stopping_early")
            if st["total"]:
                facts.planned_steps = Fact(int(st["total"]), lineno, _evidence(line), "stopping_early")
        return
    if "val_bpb" in line and _read_metric(metrics, line, lineno):
        facts.styles.add("legacy")
        return
    if "total_eval_time" in line:
        te = _TOTAL_EVAL_RE.search(line)
        if te and (ms := _ms(te["v"], te["unit"] or "s")) is not None:
            facts.eval_time_ms = Fact(ms, lineno, _evidence(line), "total_eval_time")
        return
    if "bytes" in line:
        for regex, attr in (
            (_TOTAL_SIZE_RE, "artifact_bytes"),
            (_MODEL_SIZE_RE, "model_bytes"),
            (_CODE_SIZE_RE, "code_bytes"),
        ):
            sm = regex.search(line)
            if sm and (n := _int(sm["n"])) is not None:
                qual = sm["qual"].strip()
                if attr == "code_bytes" and _COMPRESSED_CODE_RE.search(qual):
                    facts.code_bytes_compressed = Fact(n, lineno, _evidence(line), qual)
                    return
                previous: Fact[int] | None = getattr(facts, attr)
                # A qualified size (the compressed artifact) is never replaced by a raw one.
                if previous is None or qual or not previous.label:
                    setattr(facts, attr, Fact(n, lineno, _evidence(line), qual))
                if attr == "artifact_bytes":
                    facts.artifact_sizes.append(Fact(n, lineno, _evidence(line), qual))
                return
    sd = _SEED_RE.match(line)
    if sd is None and len(_DUMP_PAIR_RE.findall(line)) >= _DUMP_MIN_PAIRS:
        sd = _DUMP_SEED_RE.search(line)
    if sd:
        seed = Fact(int(sd["n"]), lineno, _evidence(line))
        facts.seeds.append(seed)
        facts.seed = seed
    ws = _WORLD_SIZE_RE.search(line) if "world_size" in line else None
    if ws:
        facts.world_size = Fact(int(ws["n"]), lineno, _evidence(line))
    if sd:
        return
    vt = _VAL_TOKENS_RE.match(line)
    if vt:
        facts.val_tokens = Fact(int(vt["n"]), lineno, _evidence(line))


def _read_step(facts: LogFacts, m: re.Match[str], line: str, lineno: int) -> None:
    rest = m["rest"]
    if "train_loss" not in rest and "val_loss" not in rest and "train_time" not in rest:
        return  # e.g. "warmup_step:3/20" or a stray "step:3/20"
    facts.styles.add("legacy")
    step, total = int(m["step"]), int(m["total"])
    ev = _evidence(line)
    if facts.stopped_early is None or step >= (facts.steps.value if facts.steps else 0):
        facts.steps = Fact(step, lineno, ev, "step line")
        facts.planned_steps = Fact(total, lineno, ev, "step line")
    tt = _TRAIN_TIME_RE.search(rest)
    if tt and facts.stopped_early is None and (ms := _ms(tt["v"], tt["unit"])) is not None:
        facts.train_time_ms = Fact(ms, lineno, ev, "step line")
    sa = _STEP_AVG_RE.search(rest)
    if sa and (ms := _ms(sa["v"], sa["unit"])) is not None:
        facts.step_avg_ms = Fact(ms, lineno, ev, "step line")


def _source_region(lines: list[str]) -> tuple[int, int] | None:
    """First and last line of the trainer's printed source, when it is closed by a rule line."""
    start = next((i for i, line in enumerate(lines[:200], start=1) if _CODE_START_RE.match(line)), None)
    if start is None:
        return None
    for end in range(start + 1, len(lines) + 1):
        if _RULE_LINE_RE.match(lines[end - 1]):
            return (start, end - 1)
    return None


def _label_before(head: str) -> str | None:
    """The label words that end ``head`` (which must end in blanks), e.g. ``diagnostic quantized``."""
    if not head or head[-1] not in " \t":
        return None
    words: list[str] = []
    tokens = head.split()
    # Settings printed between the label and the values ("stride:64") are not part of the label.
    while tokens and _KEY_VALUE_TOKEN_RE.match(tokens[-1]) and len(tokens) > 1:
        tokens.pop()
    for token in reversed(tokens):
        if _LABEL_WORD_RE.fullmatch(token):
            words.append(token)
            continue
        tail = _LABEL_TAIL_RE.search(token)  # e.g. "[rank0]:final" -> "final"
        if tail and tail.start() > 0 and not token[tail.start() - 1].isalnum():
            words.append(tail.group())
        break
    return " ".join(reversed(words)) or None


def _read_metric(metrics: list[Metric], line: str, lineno: int) -> bool:
    for tries, m in enumerate(_BPB_RE.finditer(line)):
        if tries >= 4:  # a real metric line names val_bpb once; more is junk, keep it linear
            break
        head, loss_text = line[: m.start()], None
        lm = _LOSS_TAIL_RE.search(head)
        if lm:
            head, loss_text = head[: lm.start()], lm["loss"]
        label = _label_before(head)
        bpb = _float(m["bpb"])
        if label is None or bpb is None or label.lower() in {"step", "val"}:
            continue
        loss = _float(loss_text) if loss_text else None
        et = _EVAL_TIME_RE.search(line, m.end())
        eval_ms = _ms(et["v"], et["unit"]) if et else None
        metrics.append(
            Metric(
                label=label,
                val_bpb=bpb,
                val_loss=loss,
                line=lineno,
                text=_evidence(line),
                bpb_decimals=decimals_of(m["bpb"]),
                loss_decimals=decimals_of(loss_text) if loss_text else None,
                eval_time_ms=eval_ms,
                diagnostic=_is_diagnostic(label),
                eval_time_line=lineno if eval_ms is not None else None,
            )
        )
        return True
    return False


def _merge_exact(metrics: list[Metric]) -> list[Metric]:
    """``X_exact`` lines carry more digits of the line ``X`` just before them: keep one metric."""
    out: list[Metric] = []
    for metric in metrics:
        if metric.label.endswith("_exact") and out and out[-1].label == metric.label[: -len("_exact")]:
            base = out.pop()
            metric = Metric(
                label=metric.label,
                val_bpb=metric.val_bpb,
                val_loss=metric.val_loss if metric.val_loss is not None else base.val_loss,
                line=metric.line,
                text=metric.text,
                bpb_decimals=metric.bpb_decimals,
                loss_decimals=metric.loss_decimals if metric.val_loss is not None else base.loss_decimals,
                eval_time_ms=metric.eval_time_ms if metric.eval_time_ms is not None else base.eval_time_ms,
                diagnostic=metric.diagnostic,
                eval_time_line=metric.eval_time_line
                if metric.eval_time_ms is not None
                else base.eval_time_line,
            )
        out.append(metric)
    return out


def _merge_aliases(metrics: list[Metric]) -> list[Metric]:
    """A line repeating the previous metric's exact values under another label is an alias: keep the first (and its eval time)."""
    out: list[Metric] = []
    for metric in metrics:
        prev = out[-1] if out else None
        if (
            prev is not None
            and metric.val_bpb == prev.val_bpb
            and metric.val_loss == prev.val_loss
            and metric.eval_time_ms is None
            and metric.diagnostic == prev.diagnostic
        ):
            continue
        out.append(metric)
    return out


def _read_event(
    facts: LogFacts, metrics: list[Metric], events_t: dict[str, Fact[float]], line: str, lineno: int
) -> None:
    event = parse_event(line)
    if event is None:
        facts.warnings.append(f"line {lineno}: malformed {EVENT_PREFIX.strip()} event")
        return
    facts.styles.add("pgolf")
    ev = _evidence(line)
    facts.events.append(Fact(event, lineno, ev, str(event["event"])))
    name = event["event"]
    t = event.get("t")
    if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t):
        events_t[name] = Fact(float(t), lineno, ev, name)
    step = event.get("step")
    if name in (EV_STEP, EV_TRAIN_END) and isinstance(step, int) and not isinstance(step, bool):
        facts.steps = Fact(step, lineno, ev, name)
        step_ms = event.get("step_ms")
        if isinstance(step_ms, (int, float)) and not isinstance(step_ms, bool):
            facts.step_avg_ms = Fact(float(step_ms), lineno, ev, name)
    elif name == EV_ARTIFACT:
        n = event.get("bytes")
        if isinstance(n, int) and not isinstance(n, bool):
            facts.artifact_bytes = Fact(n, lineno, ev, "artifact event (trainer's claim)")
            facts.artifact_sizes.append(facts.artifact_bytes)
    elif name == EV_EVAL_END:
        bpb, loss = event.get("val_bpb"), event.get("val_loss")
        if isinstance(bpb, (int, float)) and not isinstance(bpb, bool) and math.isfinite(bpb):
            metrics.append(
                Metric(
                    label=f"{EVENT_PREFIX.strip()} {EV_EVAL_END}",
                    val_bpb=float(bpb),
                    val_loss=float(loss)
                    if isinstance(loss, (int, float)) and not isinstance(loss, bool)
                    else None,
                    line=lineno,
                    text=ev,
                    # JSON floats are printed exactly (repr): compare at full precision.
                    bpb_decimals=decimals_of(repr(float(bpb))),
                    loss_decimals=decimals_of(repr(float(loss))) if isinstance(loss, (int, float)) else None,
                )
            )
    # Harness-stamped times ("t", seconds), when the log carries them.
    for start, end, attr in (
        (EV_TRAIN_START, EV_TRAIN_END, "train_time_ms"),
        (EV_EVAL_START, EV_EVAL_END, "eval_time_ms"),
    ):
        if name == end and start in events_t and end in events_t:
            ms = (events_t[end].value - events_t[start].value) * 1000.0
            setattr(facts, attr, Fact(ms, lineno, ev, f"{start}..{end} event times"))


def read_text_tolerant(path: Path, max_bytes: int = MAX_LOG_BYTES) -> tuple[str | None, list[str]]:
    """A file's text (bad UTF-8 replaced), or None with the reason; never blocks on a FIFO or device."""
    notes: list[str] = []
    try:
        st = os.stat(path)
    except OSError as exc:
        return None, [f"{path.name}: cannot stat ({exc.strerror or exc})"]
    if not stat.S_ISREG(st.st_mode):
        return None, [f"{path.name}: not a regular file"]
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        return None, [f"{path.name}: cannot read ({exc.strerror or exc})"]
    if len(data) > max_bytes:
        data = data[:max_bytes]
        notes.append(f"{path.name}: larger than {max_bytes} bytes, read the first {max_bytes}")
    text = data.decode("utf-8", errors="replace")
    if "\ufffd" in text:
        notes.append(f"{path.name}: not valid UTF-8 in places (read with replacement characters)")
    return text, notes


def read_log(path: Path) -> LogFacts:
    """:func:`parse_log` of a file read tolerantly; unreadable files give empty facts with a warning."""
    text, notes = read_text_tolerant(path)
    facts = parse_log(text) if text is not None else LogFacts()
    facts.warnings[:0] = notes
    return facts
