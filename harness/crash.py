"""Why a phase died, in one line a competitor can act on.

A crash reason carries the trainer's own last error line (not torchrun's summary of
it), names a fatal signal, and for a SIGKILL that pgolf did not send says whether the
kernel's memory killer was seen (cgroup ``memory.events`` or the kernel log) or is
likely (the phase's peak resident memory, sampled while it ran, near what the machine
allows). The same crash before ``train_start`` on two seeds in a row is the
environment, not the seed: the run stops there (unless ``--keep-going``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

MEMORY_LIMIT_ENV = "PGOLF_MEMORY_LIMIT_BYTES"  # what the machine allows, where it is not the cgroup's
LIKELY_OOM_FRACTION = 0.75  # sampled peak vs. limit: a kill comes at the (unsampled) top of a spike
SAMPLE_INTERVAL_S = 0.25
GIB = 1 << 30

_RANK_PREFIX = r"(?:\[(?:rank|default)(?P<rank>\d+)\]:\s*)?"
# `prog: error: message` (argparse, the reference trainer's TrainerError) and `SomeError: message`.
_ERROR_LINE_RE = re.compile(_RANK_PREFIX + r"(?P<line>[\w.\-]+: error: .+)$")
_EXC_LINE_RE = re.compile(
    _RANK_PREFIX + r"(?P<line>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)\b(?::.*)?)$"
)
_TORCHRUN_NOISE = ("ChildFailedError", "torch.distributed.elastic", "SignalException")
_ROOT_RANK_RE = re.compile(r"^\s*rank\s*:\s*(\d+)")
_ROOT_EXIT_RE = re.compile(r"^\s*exitcode\s*:\s*(-?\d+)")
_OOM_KILLED_RE = re.compile(r"(?:Killed process|oom-kill:.*?,pid=)\s*(\d+)")


# ---------------------------------------------------------------- the trainer's output


@dataclass(frozen=True)
class Failure:
    """What torchrun's summary and the ranks' output say about a failed phase."""

    rank: int | None  # the root-cause rank (torchrun's summary), when named
    exit_code: int | None  # that rank's exit code; negative: killed by a signal
    error_line: str | None  # the trainer's own last error line

    @property
    def signal(self) -> int | None:
        return -self.exit_code if self.exit_code is not None and self.exit_code < 0 else None


def parse_failure(lines: Sequence[str], returncode: int | None) -> Failure:
    rank = code = None
    for line in lines:
        if m := _ROOT_RANK_RE.match(line):
            rank = int(m.group(1))
        if m := _ROOT_EXIT_RE.match(line):
            code = int(m.group(1))
    if code is None:  # not run by torchrun, or torchrun itself died
        code = returncode
    candidates: list[tuple[int | None, str]] = []
    for line in lines:
        text = line.strip()
        if any(noise in text for noise in _TORCHRUN_NOISE):
            continue
        m = _ERROR_LINE_RE.match(text) or _EXC_LINE_RE.match(text)
        if m:
            candidates.append((int(m.group("rank")) if m.group("rank") else None, m.group("line").strip()))
    # The root-cause rank's last error when the lines say which rank wrote them, else the last one.
    own = [c for c in candidates if rank is not None and c[0] == rank]
    chosen = own or candidates
    return Failure(rank=rank, exit_code=code, error_line=chosen[-1][1][:300] if chosen else None)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


# ---------------------------------------------------------------- memory


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def own_cgroup() -> Path | None:
    """This process's cgroup v2 folder, where it can be read."""
    text = _read(Path("/proc/self/cgroup")) or ""
    for line in text.splitlines():
        if line.startswith("0::"):
            d = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
            return d if d.is_dir() else None
    return None


def cgroup_oom_kills(cgroup: Path | None) -> int | None:
    text = _read(cgroup / "memory.events") if cgroup is not None else None
    m = re.search(r"^oom_kill (\d+)$", text or "", flags=re.MULTILINE)
    return int(m.group(1)) if m else None


def memory_limit(cgroup: Path | None = None) -> tuple[int | None, str]:
    """(bytes the phase's processes may use together, where that figure comes from)."""
    env = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if env.isdigit():
        return int(env), f"${MEMORY_LIMIT_ENV}"
    raw = (_read(cgroup / "memory.max") or "").strip() if cgroup is not None else ""
    if raw.isdigit():
        return int(raw), "the cgroup's memory.max"
    m = re.search(r"^MemTotal:\s+(\d+) kB", _read(Path("/proc/meminfo")) or "", flags=re.MULTILINE)
    return (int(m.group(1)) * 1024, "the machine's memory") if m else (None, "unknown")


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read(Path(f"/proc/{entry}/stat"))
            if stat:
                rest = stat[stat.rfind(")") + 2 :].split()
                if len(rest) >= 2:
                    out.setdefault(int(rest[1]), []).append(int(entry))
    return out


def descendants(root: int) -> set[int]:
    children, found, todo = _children(), set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def rss_bytes(pids: Iterable[int]) -> int:
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in pids:
        statm = _read(Path(f"/proc/{pid}/statm"))
        if statm:
            total += int(statm.split()[1]) * page
    return total


@dataclass
class MemoryReport:
    """What was seen of memory while a phase ran."""

    peak_rss_bytes: int = 0
    pids: set[int] = field(default_factory=set)
    limit_bytes: int | None = None
    limit_source: str = "unknown"
    oom_kills: int | None = None  # the cgroup's oom_kill count rose by this much during the phase


@contextmanager
def watch_memory(interval_s: float = SAMPLE_INTERVAL_S) -> Iterator[MemoryReport]:
    """Sample the summed RSS of this process's descendants (the phase) until the block ends."""
    cgroup = own_cgroup()
    report = MemoryReport()
    report.limit_bytes, report.limit_source = memory_limit(cgroup)
    before = cgroup_oom_kills(cgroup)
    stop = threading.Event()
    me = os.getpid()

    def sample() -> None:
        while True:
            pids = descendants(me)
            report.pids |= pids
            report.peak_rss_bytes = max(report.peak_rss_bytes, rss_bytes(pids))
            if stop.wait(interval_s):
                return

    thread = threading.Thread(target=sample, name="pgolf-memory", daemon=True)
    thread.start()
    try:
        yield report
    finally:
        stop.set()
        thread.join()
        after = cgroup_oom_kills(cgroup)
        if before is not None and after is not None:
            report.oom_kills = after - before


def kernel_killed(pids: set[int]) -> bool:
    """The kernel log names one of ``pids`` as killed for memory (where the log can be read)."""
    dmesg = shutil.which("dmesg")
    if not dmesg or not pids:
        return False
    try:
        out = subprocess.run([dmesg], capture_output=True, text=True, timeout=3, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(int(m.group(1)) in pids for m in _OOM_KILLED_RE.finditer(out))


def memory_hint(mem: MemoryReport, *, kernel_log: bool | None = None) -> str:
    """The memory part of a SIGKILL's reason."""
    peak = f"peak RSS of the phase's processes {mem.peak_rss_bytes / GIB:.2f} GiB"
    limit = f"{mem.limit_bytes / GIB:.2f} GiB ({mem.limit_source})" if mem.limit_bytes else None
    seen = (mem.oom_kills or 0) > 0 or (kernel_log if kernel_log is not None else kernel_killed(mem.pids))
    if seen:
        return f"killed by the kernel for memory (out-of-memory kill recorded); {peak}" + (
            f" of {limit}" if limit else ""
        )
    if mem.limit_bytes and mem.peak_rss_bytes >= LIKELY_OOM_FRACTION * mem.limit_bytes:
        return f"likely out of memory: {peak} of {limit}"
    return f"{peak}" + (f" of {limit}, not near it" if limit else "")


# ---------------------------------------------------------------- the reason


def crash_reason(
    phase: str,
    lines: Sequence[str],
    returncode: int | None,
    memory: MemoryReport | None,
    paths: Mapping[str, str] | None = None,
) -> str:
    """One line: which rank, how it ended, and the trainer's own words."""
    f = parse_failure(lines, returncode)
    who = f"rank {f.rank}" if f.rank is not None else "the trainer"
    if f.signal is not None:
        reason = f"{phase} phase crashed: {who} was killed by {signal_name(f.signal)} (not sent by pgolf)"
        if f.signal == signal.SIGKILL and memory is not None:
            reason += f"; {memory_hint(memory)}"
    else:
        reason = f"{phase} phase crashed: {who} exited with code {f.exit_code}"
    if f.error_line:
        reason += f" ({f.error_line})"
    return real_paths(reason, paths or {})


def real_paths(text: str, paths: Mapping[str, str]) -> str:
    """Staged paths (gone after the run) replaced by the files they stand for, longest first."""
    for staged in sorted(paths, key=len, reverse=True):
        text = text.replace(staged, paths[staged])
    return text


def same_failure(a: str | None, b: str | None) -> bool:
    """Two setup crashes with the same cause: equal once numbers (pids, seeds, times) are ignored."""
    if a is None or b is None:
        return False
    return re.sub(r"\d+(?:\.\d+)?", "#", a) == re.sub(r"\d+(?:\.\d+)?", "#", b)
