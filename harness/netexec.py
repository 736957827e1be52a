"""Run a command inside a fresh network namespace with only loopback up.

Used as ``unshare --user --map-root-user --net python -m harness.netexec -- CMD...``:
inside the new namespace this brings ``lo`` up (ranks rendezvous over it), takes
away the root powers ``--map-root-user`` lent (so, for example, a read-only
artifact stays read-only), then executes CMD. ``--probe`` only checks that the
namespace is usable and has no route out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import socket
import struct
import sys

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECUREBITS = 28
# SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP | ..._LOCKED: uid 0 gains no powers on exec.
SECUREBITS = 0x01 | 0x02 | 0x04 | 0x08


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def drop_powers() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_SECUREBITS, SECUREBITS, 0, 0, 0)  # best effort: exec clears capabilities
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def probe() -> int:
    loopback_up()
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        with socket.create_connection(srv.getsockname(), timeout=2):
            pass
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed; a cut namespace has no route at all
        except OSError:
            return 0
    return 1


def main(argv: list[str]) -> int:
    if argv[:1] == ["--probe"]:
        return probe()
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m harness.netexec [--probe | -- CMD ...]", file=sys.stderr)
        return 2
    loopback_up()
    drop_powers()
    os.execvp(argv[0], argv)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
