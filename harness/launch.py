"""Launch one phase of a trainer and witness it.

The harness is the only clock: every output line is stamped with ``time.monotonic()``
the moment the harness reads it, and ``:::PGOLF`` events are written to
``events.jsonl`` with that stamp, never with a time the trainer reports.

Killing: a phase's processes are the launched process's descendants. The harness is
a child subreaper (``PR_SET_CHILD_SUBREAPER``), so a process that double-forks or
calls ``setsid`` is re-parented to the harness, not to init, and is still found (by
its start time, no earlier than the phase's). A kill sends TERM to all of them, waits
a grace period, then KILL. Inside the sandbox this is only the polite part: when the
phase's first process ends, its PID namespace ends and the kernel kills the rest.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import math
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness.protocol import parse_event

PR_SET_CHILD_SUBREAPER = 36
DEFAULT_KILL_GRACE_S = 5.0
TAIL_LINES = 200

# Called with (harness time, phase, event); returns a reason to stop the phase, or None.
EventHook = Callable[[float, str, dict[str, Any]], "str | None"]
LineHook = Callable[[str], None]


@dataclass
class PhaseOutcome:
    """What the harness saw of one phase."""

    phase: str
    returncode: int | None
    start_t: float  # harness seconds (relative to the run clock's origin)
    end_t: float
    killed: str | None = None  # why the harness killed it: "ceiling", "abort: ...", "interrupt"
    events: list[dict[str, Any]] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)
    leftover_pids: list[int] = field(default_factory=list)  # processes alive after exit, then killed

    @property
    def wall_s(self) -> float:
        return self.end_t - self.start_t


class Clock:
    """The harness clock: monotonic seconds since a run's origin."""

    def __init__(self) -> None:
        self.origin = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.origin


def _stat_fields(pid: int) -> list[bytes] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces or parentheses)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2 :].split()


def _proc_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))) is not None and len(fields) >= 2:
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def _descendants(root: int) -> set[int]:
    children = _proc_children()
    found: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None and len(fields) > 19 else None  # field 22: starttime


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in (b"Z", b"X")  # a zombie holds no memory and no GPU


def become_subreaper() -> bool:
    """Orphans of this process's descendants come back to it (Linux >= 3.4)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0


@dataclass(frozen=True)
class PhaseProcesses:
    """How to find a phase's processes: under the launched one, or orphans re-parented to us."""

    root: int
    since: int  # start time (clock ticks since boot) of the launched process

    def alive(self) -> set[int]:
        found = _descendants(self.root) | {self.root}
        found |= {p for p in _descendants(os.getpid()) if (_start_ticks(p) or -1) >= self.since}
        return {p for p in found if _alive(p)}


def _signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_phase(procs: PhaseProcesses, grace_s: float = DEFAULT_KILL_GRACE_S) -> set[int]:
    """TERM then (after ``grace_s``) KILL every process of a phase; returns the pids signalled."""
    targets = procs.alive()
    if not targets:
        return set()
    _signal_all(targets, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        # Children may have been spawned between the scan and the signal: look again.
        new = procs.alive() - targets
        if new:
            _signal_all(new, signal.SIGTERM)
            targets |= new
        if not any(_alive(p) for p in targets):
            break
        time.sleep(0.05)
    for _ in range(3):
        survivors = procs.alive()
        if not survivors:
            break
        _signal_all(survivors, signal.SIGKILL)
        targets |= survivors
        time.sleep(0.1)
    _reap(targets - {procs.root})
    return targets


def _reap(pids: set[int]) -> None:
    """Collect orphans re-parented to the harness (the launched process is Popen's to reap)."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def _reader(stream: IO[bytes], out: queue.Queue[tuple[float, str | None]], clock: Clock) -> None:
    for raw in iter(stream.readline, b""):
        out.put((clock.now(), raw.decode("utf-8", errors="replace").rstrip("\r\n")))
    out.put((clock.now(), None))


def run_phase(
    cmd: Sequence[str],
    *,
    phase: str,
    env: dict[str, str],
    cwd: Path,
    clock: Clock,
    log: IO[str],
    events_path: Path,
    ceiling_s: float,
    kill_grace_s: float = DEFAULT_KILL_GRACE_S,
    on_line: LineHook | None = None,
    on_event: EventHook | None = None,
    on_tick: Callable[[float], None] | None = None,
) -> PhaseOutcome:
    """Run ``cmd`` to completion (or the hard ceiling), teeing output and stamping events.

    ``KeyboardInterrupt`` kills the phase's processes, then propagates.
    """
    become_subreaper()
    env = {**env, "PYTHONUNBUFFERED": "1"}
    lines: queue.Queue[tuple[float, str | None]] = queue.Queue()
    start = clock.now()
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches the harness only; the harness decides
    )
    assert proc.stdout is not None
    procs = PhaseProcesses(proc.pid, _start_ticks(proc.pid) or 0)
    reader = threading.Thread(target=_reader, args=(proc.stdout, lines, clock), daemon=True)
    reader.start()
    outcome = PhaseOutcome(phase=phase, returncode=None, start_t=start, end_t=start)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    eof = False

    def handle(t: float, line: str) -> str | None:
        log.write(line + "\n")
        tail.append(line)
        if on_line is not None:
            on_line(line)
        ev = parse_event(line)
        if ev is None:
            return None
        # NaN/inf are not JSON: keep them as strings ("nan") so events.jsonl stays valid.
        trainer_fields = {
            k: (repr(v) if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in ev.items()
            if k not in ("t", "phase")
        }
        stamped = {"t": round(t, 4), "phase": phase, **trainer_fields}
        outcome.events.append(stamped)
        with events_path.open("a", encoding="utf-8") as ef:
            ef.write(json.dumps(stamped, allow_nan=False, default=str) + "\n")
        return on_event(t, phase, stamped) if on_event is not None else None

    exited_at: float | None = None
    try:
        while True:
            try:
                t, line = lines.get(timeout=0.2)
            except queue.Empty:
                pass
            else:
                if line is None:
                    eof = True
                else:
                    abort = handle(t, line)
                    if abort is not None:
                        outcome.killed = f"abort: {abort}"
                        kill_phase(procs, kill_grace_s)
                        break
            now = clock.now()
            if on_tick is not None:
                on_tick(now)
            if now - start > ceiling_s:
                outcome.killed = "ceiling"
                kill_phase(procs, kill_grace_s)
                break
            if proc.poll() is not None:
                if eof:
                    break
                # The launcher is gone but a rank that outlived it still holds the pipe.
                exited_at = now if exited_at is None else exited_at
                if now - exited_at > 1.0:
                    break
    except KeyboardInterrupt:
        outcome.killed = "interrupt"
        kill_phase(procs, kill_grace_s)
        _finish(proc, outcome, lines, log, tail, clock, handle)
        raise
    _finish(proc, outcome, lines, log, tail, clock, handle)
    leftovers = procs.alive() - {proc.pid}
    if leftovers:
        outcome.leftover_pids = sorted(leftovers)
        kill_phase(procs, kill_grace_s)
    return outcome


def _finish(
    proc: subprocess.Popen[bytes],
    outcome: PhaseOutcome,
    lines: queue.Queue[tuple[float, str | None]],
    log: IO[str],
    tail: deque[str],
    clock: Clock,
    handle: Callable[[float, str], str | None],
) -> None:
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    outcome.end_t = clock.now()
    outcome.returncode = proc.returncode
    # Drain what is already read; a reader blocked on a pipe held by a dead rank ends with it.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            t, line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None:
            break
        handle(t, line)
    log.flush()
    outcome.tail = list(tail)


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
