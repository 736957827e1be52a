"""pgolf in-process guard, loaded by every Python process of a phase via PYTHONPATH.

Active only in torchrun's ranks (``LOCAL_RANK`` set) or where ``PGOLF_GUARD_ALL=1``,
so the launcher's own rendezvous is untouched. Through an audit hook it refuses, and
records in ``PGOLF_GUARD_LOG`` (one JSON line each):

- opening a file listed in ``PGOLF_GUARD_DENY`` (a file of real paths, one per line);
- with ``PGOLF_GUARD_NET=1``, any IP ``connect``/``sendto`` from Python (the
  distributed backends connect from C++ and are not affected).

It is a guard, not a jail: code that calls libc directly is not seen. The harness
names it as such ("guard") wherever it is the strongest isolation available.
This module must stay self-contained: it runs before anything else is imported.
"""

import json
import os
import socket
import sys
import threading

_state = threading.local()


def _install() -> None:
    if not os.environ.get("PGOLF_GUARD"):
        return
    if "LOCAL_RANK" not in os.environ and os.environ.get("PGOLF_GUARD_ALL") != "1":
        return
    log_path = os.environ.get("PGOLF_GUARD_LOG", "")
    deny: set[str] = set()
    deny_file = os.environ.get("PGOLF_GUARD_DENY")
    if deny_file:
        with open(deny_file, encoding="utf-8") as f:
            deny = {line.rstrip("\n") for line in f if line.strip()}
    block_net = os.environ.get("PGOLF_GUARD_NET") == "1"
    rank = os.environ.get("RANK", os.environ.get("LOCAL_RANK", "?"))
    realpath = os.path.realpath
    fspath = os.fspath
    dumps = json.dumps
    ip_families = (socket.AF_INET, socket.AF_INET6)

    def record(kind: str, what: str) -> None:
        if not log_path:
            return
        _state.busy = True
        try:
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(dumps({"kind": kind, "what": what, "rank": rank, "pid": os.getpid()}) + "\n")
        finally:
            _state.busy = False

    def hook(event: str, args: tuple[object, ...]) -> None:
        if getattr(_state, "busy", False):
            return
        if event == "open" and deny:
            path = args[0]
            if not isinstance(path, (str, bytes, os.PathLike)):
                return  # a file descriptor, or nothing to resolve
            try:
                raw = realpath(fspath(path))
            except (TypeError, ValueError):
                return
            rp = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
            if rp in deny:
                record("file", rp)
                raise PermissionError(f"pgolf isolation: {rp} is not available in this phase")
        elif block_net and event in ("socket.connect", "socket.sendto"):
            sock, addr = args[0], args[1] if event == "socket.connect" else args[-1]
            if getattr(sock, "family", None) in ip_families:
                where = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2 else str(addr)
                record("network", where)
                raise PermissionError(f"pgolf isolation: no network in this phase (connect to {where})")

    sys.addaudithook(hook)


def _chain() -> None:
    """Run the sitecustomize this one shadows (an image or venv may have its own)."""
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


_install()
_chain()
