"""The scoring channel: a Unix socket serving eval ranks their segments, one at a time.

Per connection (one per rank)::

    trainer: {"op": "hello", "rank": r, "world": w}
    harness: {"op": "welcome", "rank": r, "world": w, "targets": n, "max_segment_targets": cap, ...}
    repeat:
      trainer: {"op": "next", "max_targets": m, "context": c}
      harness: {"op": "segment", "index": i, "start": p, "n_targets": n, "context": c'}
               + tokens <u2 (c' context tokens, then the n targets) + bytes <u2 (one per target)
               or {"op": "done"}: the rank's range is scored
      trainer: {"op": "nll", "index": i} + <f4 (n): NLL in nats of each target, in order
      harness (sometimes): {"op": "audit", "index": i, "targets": [j, ...]}
      trainer:             {"op": "logprobs", "index": i} + <f4 (k, vocab): log-probs at those targets
      harness: {"op": "committed", "index": i}
    trainer: {"op": "bye"}
    (any violation: {"op": "error", "message": ...}, then the harness closes the connection)

Segments are cut by ``plan.segment_end`` with ``max_targets`` capped by
``SCORING.max_segment_targets``. ``context`` preceding tokens (at least 1, at most
``SCORING.max_context_tokens``, never before the stream) come first: the first target of a
segment is always predicted from the token before it, so a document's BOS is scored after the
previous document's last token. A trainer that wants more of what it already scored keeps it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.rules import SCORING
from harness.scoring.audits import LogprobCheck, ReplayCheck, check_logprobs, compare_replay
from harness.scoring.frames import FrameError, FrameTooLarge, PeerClosed, recv_frame, send_frame
from harness.scoring.plan import rank_ranges, segment_end
from harness.scoring.valset import ValSet

COVERAGE, ORDER = "score_coverage", "score_order"


class Violation(Exception):
    """A rank broke the protocol: which verdict it fails, and why (one line)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule, self.message = rule, message


@dataclass
class FirstSegment:
    start: int
    context: int
    nll: npt.NDArray[np.float32]


@dataclass
class RankLedger:
    """What one rank was served and committed."""

    rank: int
    start: int
    end: int
    pos: int = 0
    segments: int = 0
    max_served: int = 0
    asked_max: int = 0  # the largest max_targets asked for (before the cap)
    nll_sums: list[float] = field(default_factory=list)
    first: FirstSegment | None = None
    audited_segments: int = 0
    checks: list[LogprobCheck] = field(default_factory=list)
    connected: bool = False
    first_request: float | None = None  # time.monotonic() of the first segment asked for
    last_commit: float | None = None

    @property
    def committed_targets(self) -> int:
        return self.pos - self.start


class ChannelServer:
    """Accepts one connection per rank on ``socket_path`` and serves each in its own thread."""

    def __init__(self, socket_path: Path, world: int, seed: int | None = None) -> None:
        self.socket_path = Path(socket_path)
        self.world = world
        self.seed = seed if seed is not None else int.from_bytes(os.urandom(8), "little")
        self.violations: list[tuple[int, Violation]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._taken: set[int] = set()
        self._listener: socket.socket | None = None

    # -- life cycle
    def start(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.socket_path))
        sock.listen(max(8, 2 * self.world))
        sock.settimeout(0.2)
        self._listener = sock
        t = threading.Thread(target=self._accept_loop, name="pgolf-score-accept", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
        for t in self._threads:
            t.join(timeout=10)
        if self._listener is not None:
            self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def __enter__(self) -> ChannelServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(SCORING.io_timeout_s)
            with self._lock:
                self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), name="pgolf-score-rank", daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        rank = -1
        try:
            with conn:
                try:
                    rank = self._hello(conn)
                    self.serve_rank(conn, rank)
                except Violation as v:
                    with self._lock:
                        self.violations.append((rank, v))
                    with contextlib.suppress(OSError):
                        send_frame(conn, {"op": "error", "message": v.message})
        except (OSError, FrameError) as exc:
            if not self._stop.is_set() and not isinstance(exc, PeerClosed):
                with self._lock:
                    self.violations.append((rank, Violation(ORDER, f"rank {rank}: channel broken: {exc}")))

    def _hello(self, conn: socket.socket) -> int:
        hdr, _ = recv_frame(conn, max_array_bytes=0)
        rank, world = hdr.get("rank"), hdr.get("world")
        if hdr["op"] != "hello" or not isinstance(rank, int) or not isinstance(world, int):
            raise Violation(
                ORDER, f"first frame was {hdr['op']!r}, expected hello with integer rank and world"
            )
        if world != self.world or not 0 <= rank < world:
            raise Violation(ORDER, f"hello from rank {rank} of {world}, expected a rank of {self.world}")
        with self._lock:
            if rank in self._taken:
                raise Violation(ORDER, f"rank {rank} connected twice")
            self._taken.add(rank)
        send_frame(conn, {"op": "welcome", "rank": rank, "world": self.world, **self.welcome(rank)})
        return rank

    # -- for subclasses
    def welcome(self, rank: int) -> dict[str, Any]:
        return {}

    def serve_rank(self, conn: socket.socket, rank: int) -> None:
        raise NotImplementedError


def _clamp(x: Any, lo: int, hi: int, what: str) -> int:
    if not isinstance(x, int) or isinstance(x, bool):
        raise Violation(ORDER, f"{what} = {x!r}, expected an integer")
    return max(lo, min(hi, x))


def _await_nll(conn: socket.socket, rank: int, index: int, n: int) -> npt.NDArray[np.float32]:
    """The NLLs of the segment in flight, checked for count, finiteness and sign."""
    try:
        hdr, arrs = recv_frame(conn, max_array_bytes=4 * n)
    except FrameTooLarge:
        raise Violation(
            COVERAGE, f"rank {rank} segment {index}: more NLLs than its {n} targets (extra scores)"
        ) from None
    if hdr["op"] != "nll" or hdr.get("index") != index:
        raise Violation(
            ORDER,
            f"rank {rank}: sent {hdr['op']!r} (index {hdr.get('index')}) while segment {index} awaited its NLLs",
        )
    if len(arrs) != 1 or arrs[0].dtype != np.dtype("<f4") or arrs[0].ndim != 1:
        raise Violation(COVERAGE, f"rank {rank} segment {index}: expected one float32 vector of NLLs")
    nll = arrs[0]
    if nll.size != n:
        what = "skipped targets" if nll.size < n else "extra scores"
        raise Violation(COVERAGE, f"rank {rank} segment {index}: {nll.size} NLLs for {n} targets ({what})")
    bad = ~np.isfinite(nll)
    if bad.any():
        i = int(np.argmax(bad))
        raise Violation(COVERAGE, f"rank {rank} segment {index}: NLL of target {i} is {nll[i]}")
    if nll.size and float(nll.min()) < -SCORING.negative_nll_atol:
        i = int(np.argmin(nll))
        raise Violation(COVERAGE, f"rank {rank} segment {index}: NLL of target {i} is negative ({nll[i]})")
    return nll


class MainPass(ChannelServer):
    """The scored pass: every target of the stream, once, in order, rank by rank."""

    def __init__(self, socket_path: Path, valset: ValSet, world: int, seed: int | None = None) -> None:
        super().__init__(socket_path, world, seed)
        self.valset = valset
        ranges = rank_ranges(valset.doc_starts, int(valset.tokens.size), world)
        self.ledgers = [RankLedger(r, a, b, pos=a) for r, (a, b) in enumerate(ranges)]

    def welcome(self, rank: int) -> dict[str, Any]:
        led = self.ledgers[rank]
        return {
            "targets": led.end - led.start,
            "max_segment_targets": SCORING.max_segment_targets,
            "max_context_tokens": SCORING.max_context_tokens,
        }

    def serve_rank(self, conn: socket.socket, rank: int) -> None:
        vs, led = self.valset, self.ledgers[rank]
        led.connected = True
        rng = np.random.default_rng([self.seed, rank])
        while True:
            try:  # room for a stray NLL frame: it is judged below, not as garbage
                hdr, _ = recv_frame(conn, max_array_bytes=4 * (SCORING.max_segment_targets + 1))
            except PeerClosed:
                return
            op = hdr["op"]
            if op == "bye":
                return
            if op == "nll":
                i = hdr.get("index")
                if isinstance(i, int) and 0 <= i < led.segments:
                    raise Violation(COVERAGE, f"rank {rank}: segment {i} scored twice (it was committed)")
                raise Violation(ORDER, f"rank {rank}: NLLs (index {i}) with no segment in flight")
            if op != "next":
                raise Violation(ORDER, f"rank {rank}: unexpected {op!r} (expected next or bye)")
            if led.pos >= led.end:
                send_frame(conn, {"op": "done"})
                continue
            if led.first_request is None:
                led.first_request = time.monotonic()
            asked = _clamp(hdr.get("max_targets"), 1, 1 << 62, "max_targets")
            led.asked_max = max(led.asked_max, asked)
            max_t = min(asked, SCORING.max_segment_targets)
            ctx = _clamp(hdr.get("context", 1), 1, SCORING.max_context_tokens, "context")
            start, index = led.pos, led.segments
            stop = segment_end(vs.doc_starts, start, led.end, max_t)
            c, n = min(ctx, start), stop - start
            head = {"op": "segment", "index": index, "start": start, "n_targets": n, "context": c}
            send_frame(conn, head, vs.tokens[start - c : stop], vs.target_bytes[start:stop])
            nll = _await_nll(conn, rank, index, n)
            if index == 0 or rng.random() < SCORING.audit_segment_rate:
                self._audit(conn, rank, index, rng, vs.tokens[start:stop], nll)
            # Commit: only now may the rank learn from the segment and ask for the next one.
            led.nll_sums.append(float(nll.sum(dtype=np.float64)))
            if index == 0:
                led.first = FirstSegment(start, c, nll.copy())
            led.pos, led.segments, led.max_served = stop, index + 1, max(led.max_served, n)
            led.last_commit = time.monotonic()
            send_frame(conn, {"op": "committed", "index": index})

    def _audit(
        self,
        conn: socket.socket,
        rank: int,
        index: int,
        rng: np.random.Generator,
        targets: npt.NDArray[np.uint16],
        nll: npt.NDArray[np.float32],
    ) -> None:
        k = min(SCORING.audit_positions, nll.size)
        picks = sorted(int(i) for i in rng.choice(nll.size, size=k, replace=False))
        send_frame(conn, {"op": "audit", "index": index, "targets": picks})
        hdr, arrs = recv_frame(conn)
        if hdr["op"] != "logprobs" or hdr.get("index") != index:
            raise Violation(ORDER, f"rank {rank}: sent {hdr['op']!r} when segment {index} was audited")
        lp = arrs[0] if len(arrs) == 1 else None
        if lp is None or lp.dtype != np.dtype("<f4") or lp.ndim != 2 or lp.shape[0] != k:
            raise Violation(
                ORDER, f"rank {rank} segment {index}: expected float32 log-probs of shape ({k}, vocab)"
            )
        led = self.ledgers[rank]
        led.audited_segments += 1
        led.checks += check_logprobs(rank, index, lp, picks, targets, nll)


@dataclass(frozen=True)
class ReplayPlan:
    """One rank's first segment, to be replayed cut before target ``cut``."""

    rank: int
    start: int
    context: int
    cut: int
    segment_targets: int
    main_nll: npt.NDArray[np.float32]


class CausalityReplay(ChannelServer):
    """A fresh process (world = number of plans) scores each plan's cut segment once."""

    def __init__(self, socket_path: Path, valset: ValSet, plans: list[ReplayPlan]) -> None:
        super().__init__(socket_path, len(plans))
        self.valset, self.plans = valset, plans
        self.checks: list[ReplayCheck | None] = [None] * len(plans)

    def welcome(self, rank: int) -> dict[str, Any]:
        return {
            "targets": self.plans[rank].cut,
            "max_segment_targets": SCORING.max_segment_targets,
            "max_context_tokens": SCORING.max_context_tokens,
        }

    def serve_rank(self, conn: socket.socket, rank: int) -> None:
        p, vs = self.plans[rank], self.valset
        served = False
        while True:
            try:
                hdr, _ = recv_frame(conn, max_array_bytes=0)
            except PeerClosed:
                return
            if hdr["op"] == "bye":
                return
            if hdr["op"] != "next":
                raise Violation(ORDER, f"replay rank {rank}: unexpected {hdr['op']!r}")
            if served:
                send_frame(conn, {"op": "done"})
                continue
            stop = p.start + p.cut
            head = {"op": "segment", "index": 0, "start": p.start, "n_targets": p.cut, "context": p.context}
            send_frame(conn, head, vs.tokens[p.start - p.context : stop], vs.target_bytes[p.start : stop])
            nll = _await_nll(conn, rank, 0, p.cut)
            self.checks[rank] = compare_replay(p.rank, p.main_nll, nll, p.segment_targets)
            served = True
            send_frame(conn, {"op": "committed", "index": 0})
