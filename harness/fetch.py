"""Download a data variant from the Hugging Face Hub: parallel, resumable, verified (DESIGN §2).

How it works, and why (the client's own download helpers do not cover these, measured on
huggingface_hub 2.x):

- One ``dataset_info`` call resolves the revision to a commit; listings at that commit give every
  file's size and sha256 (the LFS oid) or git blob id. Files are then fetched straight from the
  ``resolve`` URL at that commit with the client's ``http_get``, several at a time: no per-file
  HEAD round trip, and every file comes from the same commit.
- Each download goes to ``DATA_DIR/.pgolf-fetch/partial/<file>.<hash>.part`` and is resumed with a
  Range request on the next attempt or the next run: the client deletes a partial file when a
  call fails, so a killed or failed fetch would otherwise restart at byte 0. One failed file
  does not stop the others; Ctrl-C stops at once and keeps every partial file.
- 5xx answers and transport errors are retried a bounded number of times (the client does not
  retry a 5xx on a file GET); a file whose sha256 is wrong is fetched again once, then it is an
  error (the client only compares sizes).
- Nothing goes to the default HF cache: HF_HOME (unless set) and the cache folders point under
  DATA_DIR/.pgolf-fetch, telemetry is off, and huggingface_hub is imported only after that
  (it reads its environment at import time). The endpoint is passed explicitly.
- Free space is checked (on every filesystem the data lands on) before anything is downloaded;
  each file is then checked for size, sha256, shard header/token range and tokenizer vocabulary.
- The result is ``DATA_DIR/<dataset>.lock.json``: repo, resolved commit, and every file with its
  size and sha256. It holds no timestamps, so the same data always gives the same lock file.
  Offline (HF_HUB_OFFLINE=1), the lock file is what the data is verified against.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, TypeVar

from harness import __version__
from harness.errors import PgolfError
from harness.rules import RULES
from harness.shards import ShardError, read_header, shard_kind, sidecar_name, validate_shard
from harness.variants import Variant, check_canonical, get_variant

DEFAULT_ENDPOINT = "https://huggingface.co"
REPO_TYPE = "dataset"
STATE_DIR = ".pgolf-fetch"
LOCK_SCHEMA = 1
HASH_BLOCK = 8 << 20
# Left free after the download, so the fetch does not fill the disk to the last byte.
DISK_RESERVE_BYTES = 256 << 20
TRUE_VALUES = {"1", "ON", "YES", "TRUE"}
SUPPORTED_HF_HUB_MAJOR = "2"  # also pinned in pyproject.toml

T = TypeVar("T")


@dataclass
class FetchOptions:
    data_dir: Path
    variant: str = "caseops"
    train_shards: int | None = None  # None: every train shard of the repo
    repo_id: str | None = None
    revision: str = "main"
    endpoint: str | None = None  # None: HF_ENDPOINT, else the public Hub
    token: str | None = None  # None: HF_TOKEN / the stored login, as the client finds it
    workers: int = 8
    retries: int = 4
    backoff_s: float = 1.0
    offline: bool | None = None  # None: HF_HUB_OFFLINE
    progress: bool = True


@dataclass(frozen=True)
class RemoteFile:
    repo_path: str
    local: str  # relative to DATA_DIR, posix
    kind: str  # train | val | val_bytes | tokenizer | manifest
    size: int
    sha256: str | None  # LFS files: the repo publishes it
    git_oid: str | None  # other files: the git blob id, checked instead

    @property
    def part_name(self) -> str:
        """Partial-download file name: one per destination and content (two files with the same
        content never share one; a file whose content changed in the repo starts afresh)."""
        content = (self.sha256 or self.git_oid or "unknown")[:16]
        return f"{re.sub(r'[^A-Za-z0-9._-]', '_', self.local)}.{content}.part"


@dataclass(frozen=True)
class LockEntry:
    path: str
    repo_path: str
    kind: str
    size: int
    sha256: str


@dataclass
class FetchResult:
    lock_path: Path
    repo_id: str
    revision: str
    files: list[LockEntry]
    downloaded_files: int = 0
    downloaded_bytes: int = 0
    reused_files: int = 0
    repaired_files: int = 0
    offline: bool = False
    elapsed_s: float = 0.0
    # Where the data differs from the variant's canonical facts (harness/variants.py CANONICAL).
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Stats:
    downloaded_files: int = 0
    downloaded_bytes: int = 0
    repaired_files: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Cancelled(Exception):
    """Raised inside a download when the fetch is being stopped (Ctrl-C or another file failed)."""


# -- small helpers ---------------------------------------------------------------------------------


def is_offline(flag: bool | None = None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in TRUE_VALUES


def lock_path_for(data_dir: Path, variant: Variant) -> Path:
    return Path(data_dir) / f"{variant.dataset}.lock.json"


def hash_file(path: Path, git: bool = False) -> tuple[str, str | None]:
    """sha256 of the file and, when ``git``, its git blob id (what the Hub lists for non-LFS files)."""
    sha = hashlib.sha256()
    blob = None
    if git:
        blob = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as f:
        while chunk := f.read(HASH_BLOCK):
            sha.update(chunk)
            if blob is not None:
                blob.update(chunk)
    return sha.hexdigest(), blob.hexdigest() if blob is not None else None


def _one_line(text: str) -> str:
    first = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return first or type(text).__name__


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n:.2f} TB"


def _prepare_environment(data_dir: Path) -> None:
    """Point every client cache under DATA_DIR and turn telemetry off, before the client is imported."""
    hf_dir = data_dir / STATE_DIR / "hf"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    # Our own rich progress replaces the client's tqdm bars.
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if not os.environ.get("HF_HOME"):
        # Keep finding a token stored by `hf auth login` in its usual place.
        default_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
        os.environ.setdefault("HF_TOKEN_PATH", str(default_home / "token"))
        os.environ["HF_HOME"] = str(hf_dir)
    os.environ["HF_HUB_CACHE"] = str(hf_dir / "hub")
    os.environ["HF_XET_CACHE"] = str(hf_dir / "xet")
    os.environ["HF_ASSETS_CACHE"] = str(hf_dir / "assets")


# -- the fetcher -----------------------------------------------------------------------------------


class _Fetcher:
    def __init__(self, opts: FetchOptions, variant: Variant) -> None:
        self.opts = opts
        self.variant = variant
        self.data_dir = Path(opts.data_dir).resolve()
        self.repo_id = opts.repo_id or variant.repo_id
        self.endpoint = (opts.endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        self.state_dir = self.data_dir / STATE_DIR
        self.partial_dir = self.state_dir / "partial"
        self.stop = threading.Event()
        self.stats = _Stats()
        self.token: str | None = None
        self.commit = ""
        self.vocab = variant.vocab_size
        self.verified: dict[str, str] = {}  # local path -> sha256, for files checked in place
        self._advance: Callable[[int], None] = lambda n: None

        import huggingface_hub  # lazily: after _prepare_environment
        import huggingface_hub.errors as hf_errors
        import huggingface_hub.file_download as hf_download
        import huggingface_hub.utils as hf_utils

        major = huggingface_hub.__version__.split(".")[0]
        if major != SUPPORTED_HF_HUB_MAJOR:
            # We rely on the 2.x download internals (http_get with resume_size, typed errors).
            raise PgolfError(
                f"huggingface_hub {huggingface_hub.__version__} is installed; pgolf fetch needs "
                f"{SUPPORTED_HF_HUB_MAJOR}.x (pip install 'huggingface_hub>={SUPPORTED_HF_HUB_MAJOR}.0,<3')"
            )
        hf_utils.disable_progress_bars()  # type: ignore[attr-defined]  # lazily exported
        self.hf = huggingface_hub
        self.hf_errors = hf_errors
        self.hf_download = hf_download
        self.token = opts.token or huggingface_hub.get_token()
        self.api = huggingface_hub.HfApi(
            endpoint=self.endpoint,
            token=self.token or False,
            library_name="pgolf",
            library_version=__version__,
        )
        self.headers = hf_utils.build_hf_headers(  # type: ignore[attr-defined]
            token=self.token or False, library_name="pgolf", library_version=__version__
        )

    # -- errors ------------------------------------------------------------------------------
    def scrub(self, text: str) -> str:
        """The token never appears in anything we print (the client's messages included)."""
        if self.token:
            text = text.replace(self.token, "***")
        return text

    def error(self, message: str) -> PgolfError:
        return PgolfError(self.scrub(message))

    def _transient(self, exc: BaseException) -> bool:
        import httpx2

        if isinstance(exc, self.hf_errors.HfHubHTTPError):
            status = exc.response.status_code if exc.response is not None else 0
            return status >= 500 or status in (408, 429)
        if isinstance(exc, httpx2.TransportError):
            return True
        # The client's size consistency check after a short body.
        return isinstance(exc, OSError) and "Consistency check failed" in str(exc)

    def _explain(self, exc: BaseException, what: str, attempts: int) -> PgolfError:
        import httpx2

        e = self.hf_errors
        rev = self.opts.revision
        if isinstance(exc, e.GatedRepoError):
            return self.error(f"repo {self.repo_id} is gated: accept its terms on the Hub and set HF_TOKEN")
        if isinstance(exc, e.RepositoryNotFoundError):
            return self.error(
                f"dataset repo {self.repo_id} not found at {self.endpoint}"
                " (check --repo-id; a private repo needs HF_TOKEN)"
            )
        if isinstance(exc, e.RevisionNotFoundError):
            return self.error(f"revision {rev!r} not found in dataset repo {self.repo_id}")
        if isinstance(exc, e.RemoteEntryNotFoundError):
            return self.error(f"{what} not found in dataset repo {self.repo_id} at revision {rev!r}")
        tries = f" (after {attempts} attempt{'s' if attempts != 1 else ''})"
        if isinstance(exc, e.HfHubHTTPError):
            status = exc.response.status_code if exc.response is not None else "?"
            if status in (401, 403):
                return self.error(f"{self.endpoint} refused access (HTTP {status}) to {what}: check HF_TOKEN")
            return self.error(f"{self.endpoint} answered HTTP {status} for {what}{tries}")
        if isinstance(exc, httpx2.TransportError):
            return self.error(
                f"cannot reach {self.endpoint} for {what}: {type(exc).__name__}: {_one_line(str(exc))}{tries}"
            )
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return self.error(f"disk full in {self.data_dir} while writing {what}")
        return self.error(f"{what}: {type(exc).__name__}: {_one_line(str(exc))}{tries}")

    def retrying(self, what: str, call: Callable[[], T]) -> T:
        """``call`` with bounded retries on 5xx and transport errors; other errors at once."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except (_Cancelled, PgolfError):
                raise
            except Exception as exc:
                if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                    raise  # the caller knows which folder filled up
                if self.stop.is_set():
                    raise _Cancelled() from exc
                if not self._transient(exc) or attempt > self.opts.retries:
                    raise self._explain(exc, what, attempt) from None
                time.sleep(self.opts.backoff_s * 2 ** (attempt - 1))

    # -- planning ----------------------------------------------------------------------------
    def local_of(self, repo_path: str) -> str:
        root = self.variant.root.strip("/") + "/"
        rel = PurePosixPath(repo_path[len(root) :] if repo_path.startswith(root) else repo_path)
        # Lexical check (not resolve()): DATA_DIR/datasets may well be a symlink to a bigger disk.
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise self.error(f"repo path {repo_path!r} would land outside {self.data_dir}")
        return rel.as_posix()

    def remote(self, entry: Any, kind: str) -> RemoteFile:
        lfs = getattr(entry, "lfs", None)
        return RemoteFile(
            repo_path=entry.path,
            local=self.local_of(entry.path),
            kind=kind,
            size=int(entry.size),
            sha256=lfs.sha256 if lfs is not None else None,
            git_oid=None if lfs is not None else entry.blob_id,
        )

    def paths_info(self, paths: list[str], what: str) -> dict[str, Any]:
        found = self.retrying(
            what,
            lambda: self.api.get_paths_info(self.repo_id, paths, repo_type=REPO_TYPE, revision=self.commit),
        )
        files = {e.path: e for e in found if hasattr(e, "size")}
        missing = [p for p in paths if p not in files]
        if missing:
            raise self.error(
                f"{', '.join(missing)} not found in dataset repo {self.repo_id} at revision "
                f"{self.opts.revision!r} ({what})"
            )
        return files

    def plan(self) -> list[RemoteFile]:
        """Resolve the revision and list what to fetch."""
        v = self.variant
        info = self.retrying(
            f"dataset repo {self.repo_id}",
            lambda: self.api.dataset_info(self.repo_id, revision=self.opts.revision),
        )
        self.commit = str(info.sha)
        files: list[RemoteFile] = []
        tokenizer_paths = [f"{v.root}/{t}" for t in v.tokenizer_files]
        expected_train = expected_val = None
        if v.manifest:
            entry = self.paths_info([v.manifest_path], "the variant's manifest")[v.manifest_path]
            manifest_file = self.remote(entry, "manifest")
            local = self.data_dir / manifest_file.local
            if not (local.is_file() and self.matches(local, manifest_file)[0]):
                self.fetch_all([manifest_file])
            manifest = self.read_manifest(manifest_file)
            tokenizer_paths, self.vocab, expected_train, expected_val = self.from_manifest(
                manifest, manifest_file
            )
            files.append(manifest_file)

        listing = self.retrying(
            f"dataset folder {v.dataset_path}",
            lambda: list(
                self.api.list_repo_tree(
                    self.repo_id, v.dataset_path, repo_type=REPO_TYPE, revision=self.commit
                )
            ),
        )
        by_kind: dict[str, list[Any]] = {"train": [], "val": [], "val_bytes": []}
        for e in listing:
            kind = shard_kind(e.path.rsplit("/", 1)[-1]) if hasattr(e, "size") else None
            if kind is not None:
                by_kind[kind].append(e)
        for k in by_kind:
            by_kind[k].sort(key=lambda e: e.path)
        fmt = RULES.shards
        train = by_kind["train"]
        # The frozen order: train shard i must be fineweb_train_<i>.bin, so "the first N" is unambiguous.
        for i, e in enumerate(train):
            want = f"{fmt.train_prefix}{i:06d}{fmt.suffix}"
            if not e.path.endswith("/" + want):
                raise self.error(f"{v.dataset_path}: train shards are not contiguous: {want} is missing")
        if expected_train is not None and len(train) < expected_train:
            raise self.error(
                f"{v.dataset_path}: the manifest lists {expected_train} train shards, the repo has {len(train)}"
            )
        if expected_val is not None and len(by_kind["val"]) != expected_val:
            raise self.error(
                f"{v.dataset_path}: the manifest lists {expected_val} val shards, the repo has "
                f"{len(by_kind['val'])} (validation must be whole)"
            )
        n = len(train) if self.opts.train_shards is None else self.opts.train_shards
        if n > len(train):
            raise self.error(
                f"--train-shards {n}: dataset repo {self.repo_id} has only {len(train)} train shards "
                f"in {v.dataset_path}"
            )
        if not by_kind["val"]:
            raise self.error(f"{v.dataset_path}: no {fmt.val_prefix}*{fmt.suffix} shards in {self.repo_id}")
        if v.sidecar:
            have = {e.path.rsplit("/", 1)[-1] for e in by_kind["val_bytes"]}
            for e in by_kind["val"]:
                side = sidecar_name(e.path.rsplit("/", 1)[-1])
                if side not in have:
                    raise self.error(
                        f"{v.dataset_path}/{side} not found in {self.repo_id} (CaseOps val needs it)"
                    )
        for e in by_kind["val"]:
            files.append(self.remote(e, "val"))
        for e in by_kind["val_bytes"]:
            files.append(self.remote(e, "val_bytes"))
        for e in train[:n]:
            files.append(self.remote(e, "train"))
        if tokenizer_paths:
            tok = self.paths_info(tokenizer_paths, "tokenizer")
            files.extend(self.remote(tok[p], "tokenizer") for p in tokenizer_paths)
        return files

    def read_manifest(self, f: RemoteFile) -> dict[str, Any]:
        path = self.data_dir / f.local
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise self.error(f"{path}: not a JSON manifest ({_one_line(str(exc))})") from None
        if not isinstance(data, dict):
            raise self.error(f"{path}: expected a JSON object with 'datasets' and 'tokenizers'")
        return data

    def from_manifest(
        self, manifest: dict[str, Any], f: RemoteFile
    ) -> tuple[list[str], int, int | None, int | None]:
        """(tokenizer repo paths, vocab size, train shard count, val shard count) from the manifest."""
        try:
            return self._from_manifest(manifest, f)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            raise self.error(
                f"{self.data_dir / f.local}: unexpected manifest structure ({type(exc).__name__}: {exc})"
            ) from None

    def _from_manifest(
        self, manifest: dict[str, Any], f: RemoteFile
    ) -> tuple[list[str], int, int | None, int | None]:
        v = self.variant
        where = self.data_dir / f.local
        ds = next((d for d in manifest.get("datasets", []) if d.get("name") == v.dataset), None)
        if ds is None:
            raise self.error(f"{where}: dataset {v.dataset!r} (variant {v.name}) is not listed")
        tok_name = ds.get("tokenizer_name")
        tok = next((t for t in manifest.get("tokenizers", []) if t.get("name") == tok_name), None)
        if tok is None:
            raise self.error(f"{where}: tokenizer {tok_name!r} of dataset {v.dataset!r} is not listed")
        paths = [f"{v.root}/{tok[k]}" for k in ("model_path", "vocab_path", "path") if tok.get(k)]
        if not paths:
            raise self.error(f"{where}: tokenizer {tok_name!r} names no file (model_path/vocab_path/path)")
        vocab = tok.get("vocab_size")
        if isinstance(vocab, int) and vocab != v.vocab_size:
            raise self.error(
                f"{where}: tokenizer {tok_name!r} has vocab_size {vocab}, variant {v.name} expects {v.vocab_size}"
            )
        stats = ds.get("stats") or {}
        n_train, n_val = stats.get("files_train"), stats.get("files_val")
        return (
            paths,
            v.vocab_size,
            int(n_train) if n_train is not None else None,
            int(n_val) if n_val is not None else None,
        )

    # -- verification ------------------------------------------------------------------------
    def matches(self, path: Path, f: RemoteFile) -> tuple[bool, str]:
        """(whether ``path`` is exactly the repo's file, its sha256)."""
        if path.stat().st_size != f.size:
            return False, ""
        sha, blob = hash_file(path, git=f.sha256 is None)
        if f.sha256 is not None:
            return sha == f.sha256, sha
        return blob == f.git_oid, sha

    def check_content(self, path: Path, f: RemoteFile) -> None:
        """Shard header/size/token range and tokenizer vocabulary: one-line errors. A file that
        matches the repo's sha256 and fails here is wrong in the repo: fetching it again cannot help."""
        if f.kind in ("train", "val"):
            validate_shard(path, self.vocab)
        elif f.kind == "val_bytes":
            validate_shard(path)
        elif f.kind == "tokenizer":
            check_tokenizer(path, self.vocab, self.variant.name)

    def check_present(self, f: RemoteFile) -> None:
        """Keep a file already in DATA_DIR if it is exactly the repo's; otherwise remove it."""
        path = self.data_dir / f.local
        ok, sha = self.matches(path, f)
        if ok:
            self.check_content(path, f)
            with self.stats.lock:
                self.verified[f.local] = sha
        else:
            path.unlink(missing_ok=True)
            with self.stats.lock:
                self.stats.repaired_files += 1
        self._advance(f.size)

    # -- downloading -------------------------------------------------------------------------
    def transfer(self, f: RemoteFile, part: Path) -> None:
        url = self.hf.hf_hub_url(
            self.repo_id, f.repo_path, repo_type=REPO_TYPE, revision=self.commit, endpoint=self.endpoint
        )

        def once() -> None:
            have = part.stat().st_size if part.exists() else 0
            if have > f.size:
                part.unlink()
                have = 0
            if have == f.size:
                return
            with part.open("ab") as fh:
                sink = _ProgressSink(fh, self._advance, self.stop)
                self.hf_download.http_get(
                    url, sink, resume_size=have, headers=dict(self.headers), expected_size=f.size
                )

        self.retrying(f.repo_path, once)

    def fetch_one(self, f: RemoteFile) -> None:
        dest = self.data_dir / f.local
        part = self.partial_dir / f.part_name
        refetched = False
        while True:
            try:
                self.transfer(f, part)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise self.error(f"disk full in {part.parent} while downloading {f.local}") from None
                raise
            ok, sha = self.matches(part, f)
            if ok:
                break
            part.unlink(missing_ok=True)
            want = f.sha256 or f"git blob {f.git_oid}"
            if refetched:
                raise self.error(
                    f"{f.repo_path}: downloaded twice, content still does not match the repo "
                    f"(expected {want}, got sha256 {sha or 'a different size'})"
                )
            refetched = True
            with self.stats.lock:
                self.stats.repaired_files += 1
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.move(part, dest)  # a rename, or a copy when DATA_DIR/datasets is on another disk
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                dest.unlink(missing_ok=True)
                raise self.error(f"disk full in {dest.parent} while writing {f.local}") from None
            raise
        self.check_content(dest, f)
        with self.stats.lock:
            self.stats.downloaded_files += 1
            self.stats.downloaded_bytes += f.size
            self.verified[f.local] = sha

    def fetch_all(self, files: list[RemoteFile]) -> None:
        if not files:
            return
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        self.run_parallel(self.fetch_one, files)

    def run_parallel(self, fn: Callable[[RemoteFile], None], files: Iterable[RemoteFile]) -> None:
        """Run ``fn`` over ``files`` on ``workers`` threads. A failed file does not stop the others
        (what finishes is kept); the first error is raised once all are done. Ctrl-C stops at once:
        the threads are daemons, so a transfer stuck on the network cannot hold the exit, and a
        partial file is always a correct prefix that the next run resumes."""
        todo: queue.SimpleQueue[RemoteFile] = queue.SimpleQueue()
        items = list(files)
        for f in items:
            todo.put(f)
        errors: list[tuple[RemoteFile, BaseException]] = []

        def worker() -> None:
            while not self.stop.is_set():
                try:
                    f = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    fn(f)
                except BaseException as exc:
                    errors.append((f, exc))

        threads = [
            threading.Thread(target=worker, name=f"pgolf-fetch-{i}", daemon=True)
            for i in range(max(1, min(self.opts.workers, len(items))))
        ]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except KeyboardInterrupt:
            self.stop.set()
            raise
        # Report in plan order (val, sidecars, train, tokenizer), not in the order threads failed.
        order = {id(f): i for i, f in enumerate(items)}
        real = sorted(
            ((f, e) for f, e in errors if not isinstance(e, _Cancelled)), key=lambda fe: order[id(fe[0])]
        )
        if real:
            f, exc = real[0]
            more = f" (and {len(real) - 1} more file(s) failed)" if len(real) > 1 else ""
            if isinstance(exc, PgolfError):
                raise type(exc)(self.scrub(str(exc)) + more) from None
            raise self._explain(exc, f.repo_path, 1) from exc
        if errors:
            raise errors[0][1]


class _ProgressSink:
    """The file object handed to ``http_get``: counts bytes for the progress bar, honours a stop."""

    def __init__(self, fh: IO[bytes], advance: Callable[[int], None], stop: threading.Event) -> None:
        self._fh = fh
        self._advance = advance
        self._stop = stop

    def write(self, data: bytes) -> int:
        if self._stop.is_set():
            raise _Cancelled()
        n = self._fh.write(data)
        self._advance(len(data))
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


def check_tokenizer(path: Path, vocab: int, variant: str) -> None:
    """A SentencePiece model must have exactly the variant's vocabulary size."""
    if path.suffix == ".model":
        import sentencepiece as spm

        try:
            sp = spm.SentencePieceProcessor(model_file=str(path))
        except Exception:
            raise PgolfError(f"{path}: not a SentencePiece model") from None
        n = int(sp.get_piece_size())
        if n != vocab:
            raise PgolfError(f"{path}: tokenizer has vocab size {n}, variant {variant} expects {vocab}")
    elif path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise PgolfError(f"{path}: not a JSON tokenizer file") from None
        n_json = data.get("vocab_size") if isinstance(data, dict) else None
        if isinstance(n_json, int) and n_json != vocab:
            raise PgolfError(f"{path}: tokenizer has vocab size {n_json}, variant {variant} expects {vocab}")


# -- progress --------------------------------------------------------------------------------------


class _Progress:
    """A rich progress display on stderr (bytes, rate, ETA), or nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def task(self, description: str, total: int) -> Callable[[int], None]:
        if self._progress is None or total <= 0:
            return lambda n: None
        progress = self._progress
        task_id = progress.add_task(description, total=total)
        return lambda n: progress.advance(task_id, n)

    def print(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, highlight=False)


# -- entry points ----------------------------------------------------------------------------------


class _DirLock:
    """One fetch per DATA_DIR at a time (partial files are shared state)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def __enter__(self) -> _DirLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("w")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.close()
            raise PgolfError(
                f"another pgolf fetch is using {self.path.parent.parent} (lock {self.path})"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()


def fetch(opts: FetchOptions) -> FetchResult:
    """Fetch (or, offline, verify) a data variant into ``opts.data_dir`` and write its lock file."""
    variant = get_variant(opts.variant)
    if opts.train_shards is not None and opts.train_shards < 0:
        raise PgolfError(f"--train-shards {opts.train_shards}: expected a number >= 0")
    data_dir = Path(opts.data_dir).resolve()
    if data_dir.exists() and not data_dir.is_dir():
        raise PgolfError(f"--data-dir {data_dir}: exists and is not a directory")
    if is_offline(opts.offline):
        return verify_offline(opts, variant, data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PgolfError(f"--data-dir {data_dir}: cannot create it ({exc.strerror})") from None
    _prepare_environment(data_dir)
    with _DirLock(data_dir / STATE_DIR / "lock"):
        return _fetch_online(opts, variant, data_dir)


def _fetch_online(opts: FetchOptions, variant: Variant, data_dir: Path) -> FetchResult:
    start = time.monotonic()
    fx = _Fetcher(opts, variant)
    with _Progress(opts.progress) as progress:
        files = fx.plan()

        # What is already here and exactly right is kept; anything else is fetched again.
        present = [f for f in files if (data_dir / f.local).is_file() and f.local not in fx.verified]
        fx._advance = progress.task("verify", sum(f.size for f in present))
        fx.run_parallel(fx.check_present, present)
        todo = [f for f in files if f.local not in fx.verified]

        need = _check_disk_space(fx, todo)
        fx._advance = progress.task("download", need)
        fx.fetch_all(todo)

    entries = [LockEntry(f.local, f.repo_path, f.kind, f.size, fx.verified[f.local]) for f in files]
    _check_sidecars(data_dir, files)
    _remove_stale_partials(fx, files)
    lock_path = lock_path_for(data_dir, variant)
    write_lock(
        lock_path,
        {
            "schema": LOCK_SCHEMA,
            "variant": variant.name,
            "dataset": variant.dataset,
            "vocab_size": fx.vocab,
            "repo_id": fx.repo_id,
            "repo_type": REPO_TYPE,
            "revision": fx.commit,
            "train_shards": sum(1 for e in entries if e.kind == "train"),
            "files": [e.__dict__ for e in sorted(entries, key=lambda e: e.path)],
        },
    )
    return FetchResult(
        lock_path=lock_path,
        repo_id=fx.repo_id,
        revision=fx.commit,
        files=entries,
        downloaded_files=fx.stats.downloaded_files,
        downloaded_bytes=fx.stats.downloaded_bytes,
        reused_files=len(files) - fx.stats.downloaded_files,
        repaired_files=fx.stats.repaired_files,
        elapsed_s=time.monotonic() - start,
        warnings=check_canonical(
            variant.name, data_dir / "datasets" / variant.dataset, opts.train_shards is None
        ),
    )


def _remove_stale_partials(fx: _Fetcher, files: list[RemoteFile]) -> None:
    """Partial files of content the repo no longer has (after a successful fetch)."""
    keep = {f.part_name for f in files}
    if fx.partial_dir.is_dir():
        for p in fx.partial_dir.iterdir():
            if p.name not in keep:
                p.unlink(missing_ok=True)


def _check_disk_space(fx: _Fetcher, todo: list[RemoteFile]) -> int:
    """Refuse before downloading when a filesystem cannot hold what goes there (the partial
    folder, and DATA_DIR/datasets when it is a link to another disk). Returns the bytes to fetch."""

    def existing(p: Path) -> Path:
        while not p.exists() and p != p.parent:
            p = p.parent
        return p

    need: dict[int, list[int]] = {}  # st_dev -> [bytes, files]
    where: dict[int, Path] = {}

    def add(folder: Path, n: int) -> None:
        at = existing(folder)
        dev = at.stat().st_dev
        where.setdefault(dev, at)
        slot = need.setdefault(dev, [0, 0])
        slot[0] += n
        slot[1] += 1

    total = 0
    for f in todo:
        remaining = f.size - _partial_size(fx, f)
        total += remaining
        add(fx.partial_dir, remaining)
        dest = existing((fx.data_dir / f.local).parent)
        if dest.stat().st_dev != existing(fx.partial_dir).stat().st_dev:
            add(dest, f.size)
    for dev, (n, count) in need.items():
        usage = shutil.disk_usage(where[dev])
        reserve = min(DISK_RESERVE_BYTES, usage.total // 50)
        if n + reserve > usage.free:
            raise fx.error(
                f"not enough disk space in {where[dev]}: {count} files need {_human(n)} "
                f"(+{_human(reserve)} reserve), {_human(usage.free)} free"
            )
    return total


def _partial_size(fx: _Fetcher, f: RemoteFile) -> int:
    part = fx.partial_dir / f.part_name
    try:
        size = part.stat().st_size
    except FileNotFoundError:
        return 0
    return size if size <= f.size else 0


def _check_sidecars(data_dir: Path, files: list[RemoteFile]) -> None:
    """Each val shard's byte sidecar has one entry per token."""
    locals_ = {Path(f.local).name: data_dir / f.local for f in files if f.kind in ("val", "val_bytes")}
    for f in files:
        if f.kind != "val":
            continue
        side = locals_.get(sidecar_name(Path(f.local).name))
        if side is None:
            continue
        n_val, n_side = read_header(data_dir / f.local), read_header(side)
        if n_val != n_side:
            raise ShardError(f"{side}: sidecar has {n_side} entries, expected {n_val} (one per token)")


def lock_digest(path: Path) -> str:
    """sha256 of a lock file: the fingerprint of exactly which data a run used."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise PgolfError(f"{path}: cannot read the data lock file ({exc.strerror})") from None


def write_lock(path: Path, content: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_lock(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PgolfError(f"{path}: not a readable lock file ({_one_line(str(exc))})") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise PgolfError(f"{path}: not a pgolf fetch lock file (no 'files' list)")
    return data


def verify_offline(opts: FetchOptions, variant: Variant, data_dir: Path) -> FetchResult:
    """HF_HUB_OFFLINE: no network. Verify what the lock file lists, or say what is missing."""
    start = time.monotonic()
    lock_path = lock_path_for(data_dir, variant)
    if not lock_path.is_file():
        raise PgolfError(
            f"offline (HF_HUB_OFFLINE=1) and {lock_path} is missing: variant {variant.name} was never "
            f"fetched into {data_dir}; missing: everything under {data_dir / 'datasets' / variant.dataset}"
        )
    lock = read_lock(lock_path)
    if opts.repo_id and lock.get("repo_id") != opts.repo_id:
        raise PgolfError(
            f"{lock_path}: fetched from {lock.get('repo_id')}, not from --repo-id {opts.repo_id}"
        )
    try:
        entries = [LockEntry(**e) for e in lock["files"]]
    except TypeError:
        raise PgolfError(f"{lock_path}: a 'files' entry lacks path/repo_path/kind/size/sha256") from None
    train = [e for e in entries if e.kind == "train"]
    missing: list[str] = []
    if opts.train_shards is not None:
        if opts.train_shards > len(train):
            fmt = RULES.shards
            dataset_dir = Path(train[0].path).parent if train else Path("datasets") / variant.dataset
            missing += [
                (dataset_dir / f"{fmt.train_prefix}{i:06d}{fmt.suffix}").as_posix()
                for i in range(len(train), opts.train_shards)
            ]
        keep = {e.path for e in sorted(train, key=lambda e: e.path)[: opts.train_shards]}
        entries = [e for e in entries if e.kind != "train" or e.path in keep]
    vocab = int(lock.get("vocab_size") or variant.vocab_size)

    def check(e: LockEntry) -> str | None:
        """'missing', 'corrupt', or None once size, sha256 and content are right."""
        path = data_dir / e.path
        if not path.is_file():
            return "missing"
        if path.stat().st_size != e.size or hash_file(path)[0] != e.sha256:
            return "corrupt"
        if e.kind in ("train", "val"):
            validate_shard(path, vocab)
        elif e.kind == "val_bytes":
            validate_shard(path)
        elif e.kind == "tokenizer":
            check_tokenizer(path, vocab, variant.name)
        return None

    # Threads: hashlib and file reads release the GIL, so a large dataset verifies in parallel.
    with _Progress(opts.progress) as progress, ThreadPoolExecutor(max(1, opts.workers)) as pool:
        advance = progress.task("verify", sum(e.size for e in entries))
        verdicts = []
        for e, verdict in zip(entries, pool.map(check, entries), strict=True):
            verdicts.append(verdict)
            advance(e.size)
    missing += [e.path for e, v in zip(entries, verdicts, strict=True) if v == "missing"]
    corrupt = [e.path for e, v in zip(entries, verdicts, strict=True) if v == "corrupt"]
    if missing or corrupt:
        parts = []
        for label, paths in (("missing", missing), ("corrupt", corrupt)):
            if paths:
                more = " ..." if len(paths) > 8 else ""
                parts.append(f"{label} {len(paths)}: {', '.join(paths[:8])}{more}")
        raise PgolfError(
            f"offline (HF_HUB_OFFLINE=1): {data_dir} is incomplete for variant {variant.name}: "
            + "; ".join(parts)
        )
    return FetchResult(
        lock_path=lock_path,
        repo_id=str(lock.get("repo_id")),
        revision=str(lock.get("revision")),
        files=entries,
        reused_files=len(entries),
        offline=True,
        elapsed_s=time.monotonic() - start,
        warnings=check_canonical(
            variant.name, data_dir / "datasets" / variant.dataset, opts.train_shards is None
        ),
    )
