"""Frames of the scoring channel: never pickle, nothing but JSON and raw arrays.

A frame is ``uint32 little-endian H`` + ``H`` bytes of a UTF-8 JSON object (the header) +
the raw bytes of each array the header lists under ``"arrays"`` as ``[dtype, shape]``, in
order. Only little-endian ``<u2`` (tokens, byte counts) and ``<f4`` (NLLs, log-probs) travel.
The trainer file re-implements this (it must stay self-contained); this is the reference.
"""

from __future__ import annotations

import json
import math
import socket
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from harness.errors import PgolfError
from harness.rules import SCORING

DTYPES: dict[str, np.dtype[Any]] = {"<u2": np.dtype("<u2"), "<f4": np.dtype("<f4")}
_LEN = struct.Struct("<I")


class FrameError(PgolfError):
    """A frame that is malformed, too large, or cut off."""


class FrameTooLarge(FrameError):
    """A frame whose arrays exceed what the receiver expects (checked before reading them)."""


class PeerClosed(FrameError):
    """The other end closed the connection between frames."""


def recv_exact(sock: socket.socket, buf: memoryview) -> None:
    got = 0
    while got < len(buf):
        n = sock.recv_into(buf[got:])
        if n == 0:
            if got == 0:
                raise PeerClosed("connection closed")
            raise FrameError(f"connection closed inside a frame ({got} of {len(buf)} bytes)")
        got += n


def send_frame(sock: socket.socket, header: dict[str, Any], *arrays: npt.NDArray[Any]) -> None:
    parts: list[npt.NDArray[Any]] = []
    specs = []
    for a in arrays:
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        if dt.str not in DTYPES:
            raise FrameError(f"array of dtype {a.dtype} cannot travel (expected one of {', '.join(DTYPES)})")
        a = np.ascontiguousarray(a, dtype=DTYPES[dt.str])
        parts.append(a)
        specs.append([dt.str, list(a.shape)])
    raw = json.dumps({**header, "arrays": specs}, separators=(",", ":")).encode()
    sock.sendall(_LEN.pack(len(raw)) + raw)
    for a in parts:
        if a.nbytes:
            sock.sendall(a.data.cast("B"))


def recv_frame(
    sock: socket.socket, max_array_bytes: int = 1 << 31
) -> tuple[dict[str, Any], list[npt.NDArray[Any]]]:
    """One frame: (header without "arrays", arrays). Raises PeerClosed at a clean end of stream."""
    head = bytearray(_LEN.size)
    recv_exact(sock, memoryview(head))
    (n,) = _LEN.unpack(head)
    if n > SCORING.max_frame_header_bytes:
        raise FrameError(f"frame header of {n} bytes, expected at most {SCORING.max_frame_header_bytes}")
    raw = bytearray(n)
    recv_exact(sock, memoryview(raw))
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FrameError(f"frame header is not JSON ({exc})") from None
    if not isinstance(header, dict) or not isinstance(header.get("op"), str):
        raise FrameError('frame header must be a JSON object with a string "op"')
    specs = header.pop("arrays", [])
    arrays: list[npt.NDArray[Any]] = []
    total = 0
    if not isinstance(specs, list):
        raise FrameError('frame "arrays" must be a list of [dtype, shape]')
    for spec in specs:
        ok = isinstance(spec, list) and len(spec) == 2 and spec[0] in DTYPES and isinstance(spec[1], list)
        if not ok or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in spec[1]):
            raise FrameError(f"frame array spec {spec!r}: expected [{' or '.join(DTYPES)}, [dims >= 0]]")
        dt = DTYPES[spec[0]]
        total += math.prod(spec[1]) * dt.itemsize
        if total > max_array_bytes:
            raise FrameTooLarge(f"frame arrays exceed {max_array_bytes} bytes")
        a = np.empty(tuple(spec[1]), dtype=dt)
        if a.nbytes:
            recv_exact(sock, a.data.cast("B"))
        arrays.append(a)
    return header, arrays
