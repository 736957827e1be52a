"""A small Hugging Face Hub look-alike on loopback, for testing ``pgolf fetch`` with the real client.

It serves dataset repos held in memory through the part of the Hub's HTTP API that the
``huggingface_hub`` 2.x download path uses (read from the installed client's source):

- ``GET /api/datasets/{repo}[/revision/{rev}]``: repo info with the resolved commit ``sha``;
- ``GET /api/datasets/{repo}/tree/{rev}[/{path}]``: the listing (``recursive`` honoured), LFS
  entries carry ``lfs.oid`` = the file's sha256;
- ``POST /api/datasets/{repo}/paths-info/{rev}``: metadata of named paths (missing ones omitted);
- ``HEAD``/``GET /datasets/{repo}/resolve/{rev}/{path}``: the file, with ``Range`` support and the
  ``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``, ``X-Linked-Size`` headers the client reads.

Errors carry the Hub's ``X-Error-Code`` header (``RepoNotFound``, ``RevisionNotFound``,
``EntryNotFound``) so the client raises its own typed errors.

Fault knobs (all on :class:`HubServer`, thread-safe, set between or during requests): latency
per request, a status code for the next GETs of a file (or for the next resumed ones), cutting the connection after N body
bytes, stalling after N body bytes (to kill a client mid-download), flipping one byte of the
body, and announcing a different size in listings. Every request is recorded (method, path,
headers) so tests can check what the client asked for.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

# Files at least this large, or with these suffixes, are stored as LFS (like the Hub's defaults).
LFS_SUFFIXES = (".bin", ".model")


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob: what the Hub reports as ``oid`` for a non-LFS file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class RepoFile:
    data: bytes
    lfs: bool
    sha256: str
    oid: str

    @classmethod
    def make(cls, path: str, data: bytes) -> RepoFile:
        lfs = path.endswith(LFS_SUFFIXES)
        sha = hashlib.sha256(data).hexdigest()
        # An LFS file's git oid is the oid of its pointer file; any stable value serves the client.
        oid = git_blob_oid(f"lfs pointer {sha}".encode()) if lfs else git_blob_oid(data)
        return cls(data=data, lfs=lfs, sha256=sha, oid=oid)


@dataclass
class FakeRepo:
    """One dataset repo at one commit; ``branches`` maps names (``main``) to that commit."""

    repo_id: str
    files: dict[str, RepoFile]
    commit: str
    branches: tuple[str, ...] = ("main",)

    @classmethod
    def build(cls, repo_id: str, files: dict[str, bytes], branches: tuple[str, ...] = ("main",)) -> FakeRepo:
        entries = {p: RepoFile.make(p, d) for p, d in sorted(files.items())}
        digest = hashlib.sha1(repo_id.encode())
        for p, f in entries.items():
            digest.update(p.encode() + f.sha256.encode())
        return cls(repo_id=repo_id, files=entries, commit=digest.hexdigest(), branches=branches)

    def resolve(self, revision: str) -> str | None:
        if revision in self.branches or revision == self.commit:
            return self.commit
        return None

    def folders(self) -> set[str]:
        out: set[str] = set()
        for p in self.files:
            parts = p.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                out.add("/".join(parts[:i]))
        return out


@dataclass
class RequestRecord:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Faults:
    """What the server does wrong, keyed by repo file path. Counters count down per GET."""

    latency_s: float = 0.0
    fail_status: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    fail_ranged: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    cut_after: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    stall_after: dict[str, int] = field(default_factory=dict)
    flip_byte: dict[str, int] = field(default_factory=dict)
    announce_size: dict[str, int] = field(default_factory=dict)


_RE_INFO = re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
_RE_TREE = re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")
_RE_PATHS = re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)/paths-info/(?P<rev>[^/]+)$")
_RE_RESOLVE = re.compile(r"^/datasets/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


class HubServer:
    """Threaded HTTP server on 127.0.0.1 (ephemeral port) serving :class:`FakeRepo` objects."""

    def __init__(self, repos: list[FakeRepo], latency_s: float = 0.0) -> None:
        self.repos = {r.repo_id: r for r in repos}
        self.faults = Faults(latency_s=latency_s)
        self.requests: list[RequestRecord] = []
        self.bytes_sent: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- knobs -------------------------------------------------------------------------------
    def fail_next(self, path: str, *statuses: int) -> None:
        """The next GETs of ``path`` answer these statuses, one each, before serving normally."""
        with self._lock:
            self.faults.fail_status[path].extend(statuses)

    def fail_next_resume(self, path: str, *statuses: int) -> None:
        """Like :meth:`fail_next`, for GETs of ``path`` that carry a Range header (a resumed transfer)."""
        with self._lock:
            self.faults.fail_ranged[path].extend(statuses)

    def pending_failures(self, path: str) -> int:
        with self._lock:
            return len(self.faults.fail_status.get(path, [])) + len(self.faults.fail_ranged.get(path, []))

    def cut_next(self, path: str, after_bytes: int) -> None:
        """The next GET of ``path`` drops the connection after ``after_bytes`` body bytes."""
        with self._lock:
            self.faults.cut_after[path].append(after_bytes)

    def stall(self, path: str, after_bytes: int) -> None:
        """Every GET of ``path`` sends ``after_bytes`` body bytes, then hangs until :meth:`unstall`."""
        with self._lock:
            self.faults.stall_after[path] = after_bytes

    def unstall(self, path: str) -> None:
        with self._lock:
            self.faults.stall_after.pop(path, None)

    def flip_next(self, path: str, times: int = 1) -> None:
        """The next ``times`` GETs of ``path`` serve the right size with one byte flipped."""
        with self._lock:
            self.faults.flip_byte[path] = self.faults.flip_byte.get(path, 0) + times

    def announce(self, path: str, size: int) -> None:
        """Listings announce ``size`` for ``path`` (the file itself is unchanged)."""
        with self._lock:
            self.faults.announce_size[path] = size

    def gets(self, path: str) -> list[RequestRecord]:
        """Recorded GETs of the resolve URL of ``path`` (any repo, any revision)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == "GET" and "/resolve/" in r.path and r.path.endswith("/" + path)
            ]

    # -- internals ---------------------------------------------------------------------------
    def _record(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(RequestRecord(method, path, headers))

    def _take(self, table: dict[str, list[int]], path: str) -> int | None:
        with self._lock:
            pending = table.get(path)
            return pending.pop(0) if pending else None

    def _take_flip(self, path: str) -> bool:
        with self._lock:
            n = self.faults.flip_byte.get(path, 0)
            if n > 0:
                self.faults.flip_byte[path] = n - 1
                return True
            return False

    def _entry(self, path: str, f: RepoFile) -> dict[str, object]:
        with self._lock:
            size = self.faults.announce_size.get(path, len(f.data))
        entry: dict[str, object] = {"type": "file", "oid": f.oid, "size": size, "path": path}
        if f.lfs:
            entry["lfs"] = {"oid": f.sha256, "size": size, "pointerSize": 134}
        return entry


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the Hub; every response sets Content-Length

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    # -- plumbing ----------------------------------------------------------------------------
    def _begin(self) -> tuple[str, dict[str, list[str]]]:
        url = urlsplit(self.path)
        self.hub._record(self.command, url.path, {k.lower(): v for k, v in self.headers.items()})
        if self.hub.faults.latency_s:
            time.sleep(self.hub.faults.latency_s)
        return unquote(url.path), parse_qs(url.query)

    def _send_json(self, obj: object, status: int = 200, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str | None, message: str, commit: str | None = None) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send_json({"error": message}, status=status, headers=headers)

    def _repo_and_commit(self, repo_id: str, rev: str) -> tuple[FakeRepo, str] | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found")
            return None
        commit = repo.resolve(rev)
        if commit is None:
            self._error(404, "RevisionNotFound", "Invalid rev id: " + rev)
            return None
        return repo, commit

    # -- verbs -------------------------------------------------------------------------------
    def do_GET(self) -> None:
        path, query = self._begin()
        if m := _RE_RESOLVE.match(path):
            return self._resolve(m["repo"], m["rev"], m["path"], body=True)
        if m := _RE_TREE.match(path):
            return self._tree(m["repo"], m["rev"], m["path"] or "", query)
        if m := _RE_INFO.match(path):
            return self._info(m["repo"], m["rev"] or "main")
        self._error(404, None, "Not found: " + path)

    def do_HEAD(self) -> None:
        path, _ = self._begin()
        if m := _RE_RESOLVE.match(path):
            return self._resolve(m["repo"], m["rev"], m["path"], body=False)
        self._error(404, None, "Not found: " + path)

    def do_POST(self) -> None:
        path, _ = self._begin()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        if m := _RE_PATHS.match(path):
            form = parse_qs(raw)
            return self._paths_info(m["repo"], m["rev"], form.get("paths", []))
        self._error(404, None, "Not found: " + path)

    # -- endpoints ---------------------------------------------------------------------------
    def _info(self, repo_id: str, rev: str) -> None:
        found = self._repo_and_commit(repo_id, rev)
        if found is None:
            return
        repo, commit = found
        self._send_json(
            {
                "id": repo.repo_id,
                "sha": commit,
                "private": False,
                "lastModified": "2026-01-01T00:00:00.000Z",
                "siblings": [{"rfilename": p} for p in repo.files],
            }
        )

    def _tree(self, repo_id: str, rev: str, folder: str, query: dict[str, list[str]]) -> None:
        found = self._repo_and_commit(repo_id, rev)
        if found is None:
            return
        repo, commit = found
        folder = folder.strip("/")
        recursive = query.get("recursive", ["False"])[0].lower() in ("true", "1")
        if folder and folder not in repo.folders():
            self._error(404, "EntryNotFound", f"{folder} does not exist on {rev}", commit)
            return
        prefix = folder + "/" if folder else ""
        out: list[dict[str, object]] = []
        for sub in sorted(repo.folders()):
            if sub.startswith(prefix) and (recursive or "/" not in sub[len(prefix) :]):
                out.append({"type": "directory", "oid": git_blob_oid(sub.encode()), "size": 0, "path": sub})
        for p, f in repo.files.items():
            if p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :]):
                out.append(self.hub._entry(p, f))
        self._send_json(out)

    def _paths_info(self, repo_id: str, rev: str, paths: list[str]) -> None:
        found = self._repo_and_commit(repo_id, rev)
        if found is None:
            return
        repo, _ = found
        out = [self.hub._entry(p, repo.files[p]) for p in paths if p in repo.files]
        out += [
            {"type": "directory", "oid": git_blob_oid(p.encode()), "path": p}
            for p in paths
            if p in repo.folders()
        ]
        self._send_json(out)

    def _resolve(self, repo_id: str, rev: str, path: str, body: bool) -> None:
        found = self._repo_and_commit(repo_id, rev)
        if found is None:
            return
        repo, commit = found
        f = repo.files.get(path)
        if f is None:
            self._error(404, "EntryNotFound", f"{path} does not exist on {rev}", commit)
            return
        status_now = self.hub._take(self.hub.faults.fail_status, path) if body else None
        if status_now is None and body and self.headers.get("Range"):
            status_now = self.hub._take(self.hub.faults.fail_ranged, path)
        if status_now is not None:
            self._error(status_now, None, f"injected {status_now}", commit)
            return
        data = f.data
        if body and self.hub._take_flip(path):
            flipped = bytearray(data)
            flipped[len(flipped) // 2] ^= 0xFF
            data = bytes(flipped)
        total = len(data)
        start, end = 0, total - 1
        status = 200
        rng = self.headers.get("Range")
        if rng and (m := re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())):
            if m[1]:
                start = int(m[1])
                end = int(m[2]) if m[2] else total - 1
            else:  # suffix range: the last N bytes
                start = max(total - int(m[2]), 0)
            end = min(end, total - 1)
            if start >= total:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{total}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        etag = f.sha256 if f.lfs else f.oid
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("X-Repo-Commit", commit)
        self.send_header("ETag", f'"{etag}"')
        if f.lfs:
            self.send_header("X-Linked-Etag", f'"{f.sha256}"')
            self.send_header("X-Linked-Size", str(total))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if not body:
            return
        cut = self.hub._take(self.hub.faults.cut_after, path)
        self._stream(path, data[start : end + 1], cut)

    def _stream(self, path: str, payload: bytes, cut: int | None) -> None:
        sent = 0
        step = 1 << 20
        while sent < len(payload):
            stall = self.hub.faults.stall_after.get(path)
            limit = len(payload)
            if cut is not None:
                limit = min(limit, cut)
            if stall is not None:
                limit = min(limit, stall)
            if sent >= limit:
                if cut is not None and sent >= cut:
                    self.close_connection = True
                    self.connection.close()  # the transfer breaks off mid-body
                    return
                # Stalled: hold the connection open until released or the server stops.
                while self.hub.faults.stall_after.get(path) is not None and not self.hub._stop.is_set():
                    time.sleep(0.05)
                if self.hub._stop.is_set():
                    return
                continue
            chunk = payload[sent : min(sent + step, limit)]
            try:
                self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                return
            sent += len(chunk)
            with self.hub._lock:
                self.hub.bytes_sent[path] += len(chunk)
