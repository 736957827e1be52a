"""Launch one phase of a trainer and witness it.

The harness is the only clock: every output line is stamped with ``time.monotonic()``
the moment the harness reads it, and ``:::PGOLF`` events are written to
``events.jsonl`` with that stamp, never with a time the trainer reports.

Killing: torchrun starts each rank in its own session, so killing torchrun's
process group does not reach the ranks. Every process of a phase carries a unique
token in its environment (``PGOLF_KILL_TOKEN``), and a kill signals the launched
process's descendants *and* every process of this user that carries the token (an
orphaned rank re-parented to init included): TERM, a grace period, then KILL.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import signal
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness.protocol import parse_event

KILL_TOKEN_ENV = "PGOLF_KILL_TOKEN"
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


def _proc_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may contain spaces or parentheses: fields start after the last ')'.
        rest = stat[stat.rfind(b")") + 2 :].split()
        if len(rest) >= 2:
            children.setdefault(int(rest[1]), []).append(int(entry))
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


def processes_with_token(token: str) -> set[int]:
    """Pids of this user's processes whose environment carries ``PGOLF_KILL_TOKEN=token``."""
    needle = f"{KILL_TOKEN_ENV}={token}".encode()
    found: set[int] = set()
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2 :][:1]
    return state not in (b"Z", b"X")  # a zombie holds no memory and no GPU


def _signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_tree(root: int | None, token: str, grace_s: float = DEFAULT_KILL_GRACE_S) -> set[int]:
    """TERM then (after ``grace_s``) KILL every process of a phase; returns the pids signalled."""
    targets = processes_with_token(token)
    if root is not None:
        targets |= _descendants(root)
        targets.add(root)
    targets = {p for p in targets if _alive(p)}
    if not targets:
        return set()
    _signal_all(targets, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        # Children may have been spawned between the scan and the signal: look again.
        more = processes_with_token(token)
        if root is not None:
            more |= _descendants(root)
        new = {p for p in more - targets if _alive(p)}
        if new:
            _signal_all(new, signal.SIGTERM)
            targets |= new
        if not any(_alive(p) for p in targets):
            return targets
        time.sleep(0.05)
    for _ in range(3):
        survivors = {p for p in targets | processes_with_token(token) if _alive(p)}
        if not survivors:
            break
        _signal_all(survivors, signal.SIGKILL)
        targets |= survivors
        time.sleep(0.1)
    return targets


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
    token = uuid.uuid4().hex
    env = {**env, KILL_TOKEN_ENV: token, "PYTHONUNBUFFERED": "1"}
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
                        kill_tree(proc.pid, token, kill_grace_s)
                        break
            now = clock.now()
            if on_tick is not None:
                on_tick(now)
            if now - start > ceiling_s:
                outcome.killed = "ceiling"
                kill_tree(proc.pid, token, kill_grace_s)
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
        kill_tree(proc.pid, token, kill_grace_s)
        _finish(proc, outcome, lines, log, tail, clock, handle)
        raise
    _finish(proc, outcome, lines, log, tail, clock, handle)
    leftovers = {p for p in processes_with_token(token) if _alive(p)}
    if leftovers:
        outcome.leftover_pids = sorted(leftovers)
        kill_tree(None, token, kill_grace_s)
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
