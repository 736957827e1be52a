"""`pgolf fetch` against a real HTTP server on loopback, through the real huggingface_hub client.

The server (tests/hubserver.py) serves fake dataset repos laid out like the challenge's: the
CaseOps repo (proxy shards from the shared corpus, the real CaseOps tokenizer) and a
manifest-driven standard repo. Faults are injected by the server, never by patching the client.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from foreground import as_foreground  # tests/ is on sys.path (rootdir conftest)
from hubserver import FakeRepo, HubServer  # tests/ is on sys.path (rootdir conftest)

from harness.cli import main as cli_main
from harness.rules import RULES
from harness.variants import VARIANTS

CASEOPS = VARIANTS["caseops"]
SP8192 = VARIANTS["sp8192"]
SP1024 = VARIANTS["sp1024"]
DS = CASEOPS.dataset_path  # datasets/datasets/fineweb10B_sp8192_lossless_caps_caseops_v1_reserved
TOKENIZER = f"{CASEOPS.root}/{CASEOPS.tokenizer_files[0]}"
MiB = 1 << 20

# Environment the tests control: nothing from the developer's own Hub setup leaks in.
HF_ENV = (
    "HF_ENDPOINT",
    "HF_TOKEN",
    "HF_HUB_OFFLINE",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_XET_CACHE",
    "HF_ASSETS_CACHE",
    "HF_TOKEN_PATH",
    "HF_HUB_DISABLE_TELEMETRY",
    "HF_HUB_DISABLE_PROGRESS_BARS",
    "PGOLF_DATA_DIR",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in HF_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))


def shard_bytes(tokens: np.ndarray) -> bytes:
    fmt = RULES.shards
    header = np.zeros(fmt.header_ints, dtype=fmt.header_int_dtype)
    header[0], header[1], header[2] = fmt.magic, fmt.version, tokens.size
    return header.tobytes() + tokens.astype(fmt.token_dtype).tobytes()


def caseops_files(proxy_dir: Path, tokenizers_dir: Path) -> dict[str, bytes]:
    src = proxy_dir / "sp8192_caseops"
    files = {
        f"{DS}/{name}": (src / name).read_bytes()
        for name in (
            "fineweb_val_000000.bin",
            "fineweb_val_bytes_000000.bin",
            "fineweb_train_000000.bin",
            "fineweb_train_000001.bin",
        )
    }
    files[TOKENIZER] = (tokenizers_dir / CASEOPS.tokenizer_files[0].split("/")[-1]).read_bytes()
    files["README.md"] = b"# fake caseops repo\n"
    return files


@pytest.fixture(scope="module")
def caseops_repo(proxy_dir: Path, tokenizers_dir: Path) -> FakeRepo:
    return FakeRepo.build(CASEOPS.repo_id, caseops_files(proxy_dir, tokenizers_dir))


@pytest.fixture(scope="module")
def big_repo(proxy_dir: Path, tokenizers_dir: Path) -> FakeRepo:
    """CaseOps layout with a 24 MiB train shard: larger than the client's 10 MiB write chunk."""
    files = caseops_files(proxy_dir, tokenizers_dir)
    rng = np.random.default_rng(0)
    files[f"{DS}/fineweb_train_000002.bin"] = shard_bytes(
        rng.integers(0, 8192, size=12 * MiB, dtype=np.uint16)
    )
    return FakeRepo.build(CASEOPS.repo_id, files)


def standard_files(
    proxy_dir: Path, tokenizers_dir: Path, variant: str, vocab_in_manifest: int
) -> dict[str, bytes]:
    v = VARIANTS[variant]
    src = proxy_dir / "sp8192"
    files = {
        f"{v.dataset_path}/{name}": (src / name).read_bytes()
        for name in ("fineweb_val_000000.bin", "fineweb_train_000000.bin", "fineweb_train_000001.bin")
    }
    tok_name = f"fineweb_{vocab_in_manifest}_bpe"
    files[f"{v.root}/tokenizers/{tok_name}.model"] = (tokenizers_dir / "fineweb_8192_bpe.model").read_bytes()
    manifest = {
        "datasets": [
            {"name": v.dataset, "tokenizer_name": tok_name, "stats": {"files_train": 2, "files_val": 1}}
        ],
        "tokenizers": [{"name": tok_name, "model_path": f"tokenizers/{tok_name}.model"}],
    }
    files[v.manifest_path] = json.dumps(manifest, indent=1).encode()
    return files


@pytest.fixture()
def hub(caseops_repo: FakeRepo):
    with HubServer([caseops_repo]) as server:
        yield server


def pgolf_fetch(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    endpoint: str,
    data_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
) -> tuple[int, str, str]:
    """Run `pgolf fetch` in-process (the real CLI) and return (exit code, stdout, stderr)."""
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    capsys.readouterr()
    code = cli_main(["fetch", "--data-dir", str(data_dir), "--quiet", *args])
    out, err = capsys.readouterr()
    for k in env or {}:
        monkeypatch.delenv(k, raising=False)
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("pgolf fetch: error: ")
    for n in needles:
        assert n in lines[0], lines[0]


def local_of(data_dir: Path, repo_path: str) -> Path:
    return data_dir / repo_path.split("/", 1)[1]  # the repo's root folder `datasets/` is stripped


def resolve_gets(server: HubServer) -> list[str]:
    return [r.path for r in server.requests if r.method == "GET" and "/resolve/" in r.path]


def partial_name(repo_path: str, repo: FakeRepo) -> str:
    local = repo_path.split("/", 1)[1].replace("/", "_")
    return f"{local}.{repo.files[repo_path].sha256[:16]}.part"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- the happy paths ---------------------------------------------------------------------------------


def test_full_fetch_writes_real_files_and_a_lock(hub, caseops_repo, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    code, out, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, data)
    assert code == 0, err
    wanted = [p for p in caseops_repo.files if p.startswith(CASEOPS.root + "/")]
    for p in wanted:
        local = local_of(data, p)
        assert local.is_file() and not local.is_symlink()
        assert local.read_bytes() == caseops_repo.files[p].data
    assert not (data / "README.md").exists()  # only what the variant needs

    lock_path = data / f"{CASEOPS.dataset}.lock.json"
    assert str(lock_path) in out
    lock = json.loads(lock_path.read_text())
    assert lock["repo_id"] == CASEOPS.repo_id
    assert lock["revision"] == caseops_repo.commit
    assert lock["train_shards"] == 2
    by_path = {e["path"]: e for e in lock["files"]}
    assert set(by_path) == {local_of(data, p).relative_to(data).as_posix() for p in wanted}
    for p in wanted:
        e = by_path[local_of(data, p).relative_to(data).as_posix()]
        assert e["size"] == len(caseops_repo.files[p].data)
        assert e["sha256"] == sha256(caseops_repo.files[p].data)
    assert not list((data / ".pgolf-fetch" / "partial").iterdir())

    # A second run finds everything verified in place: no file is downloaded again, same lock.
    before = len(resolve_gets(hub))
    lock_bytes = lock_path.read_bytes()
    code, out, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, data)
    assert code == 0, err
    assert len(resolve_gets(hub)) == before
    assert "all already present" in out
    assert lock_path.read_bytes() == lock_bytes


def test_fetch_makes_one_request_per_file_in_parallel(hub, caseops_repo, tmp_path, capsys, monkeypatch):
    """No per-file HEAD: one info call, listings, then one GET per file."""
    code, _, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, tmp_path / "d")
    assert code == 0, err
    assert not [r for r in hub.requests if r.method == "HEAD"]
    assert len(resolve_gets(hub)) == 5  # val, sidecar, 2 train, tokenizer


def test_train_shards_takes_the_first_n_in_order(hub, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    code, _, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, data, "--train-shards", "1")
    assert code == 0, err
    ds = local_of(data, DS)
    assert sorted(p.name for p in ds.iterdir()) == [
        "fineweb_train_000000.bin",
        "fineweb_val_000000.bin",
        "fineweb_val_bytes_000000.bin",
    ]
    lock = json.loads((data / f"{CASEOPS.dataset}.lock.json").read_text())
    assert lock["train_shards"] == 1

    code, _, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, data, "--train-shards", "3")
    assert_one_line_error(code, err, "--train-shards 3", "only 2 train shards")


def test_standard_variant_is_manifest_driven(proxy_dir, tokenizers_dir, tmp_path, capsys, monkeypatch):
    repo = FakeRepo.build(SP8192.repo_id, standard_files(proxy_dir, tokenizers_dir, "sp8192", 8192))
    with HubServer([repo]) as server:
        data = tmp_path / "data"
        code, _, err = pgolf_fetch(capsys, monkeypatch, server.endpoint, data, "--variant", "sp8192")
        assert code == 0, err
        assert (data / "manifest.json").is_file()
        assert (data / "tokenizers" / "fineweb_8192_bpe.model").is_file()
        assert (data / "datasets" / SP8192.dataset / "fineweb_train_000001.bin").is_file()
        lock = json.loads((data / f"{SP8192.dataset}.lock.json").read_text())
        assert {e["kind"] for e in lock["files"]} == {"manifest", "val", "train", "tokenizer"}


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda m: m.update(datasets=[]), "'fineweb10B_sp8192' (variant sp8192) is not listed"),
        (lambda m: m["datasets"][0]["stats"].update(files_val=2), "the manifest lists 2 val shards"),
        (lambda m: m["datasets"][0]["stats"].update(files_train=5), "the manifest lists 5 train shards"),
        (lambda m: m.update(datasets="oops"), "unexpected manifest structure"),
    ],
)
def test_manifest_disagreements_are_one_line(
    proxy_dir, tokenizers_dir, tmp_path, capsys, monkeypatch, edit, needle
):
    files = standard_files(proxy_dir, tokenizers_dir, "sp8192", 8192)
    manifest = json.loads(files[SP8192.manifest_path])
    edit(manifest)
    files[SP8192.manifest_path] = json.dumps(manifest).encode()
    with HubServer([FakeRepo.build(SP8192.repo_id, files)]) as server:
        code, _, err = pgolf_fetch(
            capsys, monkeypatch, server.endpoint, tmp_path / "d", "--variant", "sp8192"
        )
    assert_one_line_error(code, err, needle)


# -- interruptions and faults ------------------------------------------------------------------------


def test_resume_after_kill_mid_download(big_repo, tmp_path):
    """A fetch killed in the middle of a 24 MiB file resumes it with a Range request."""
    big = f"{DS}/fineweb_train_000002.bin"
    size = len(big_repo.files[big].data)
    data = tmp_path / "data"
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in HF_ENV}
    env.update(HOME=str(home), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    cmd = [sys.executable, "-m", "harness", "fetch", "--data-dir", str(data), "--quiet", "--workers", "2"]
    with HubServer([big_repo]) as server:
        env["HF_ENDPOINT"] = server.endpoint
        server.stall(big, 12 * MiB)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        part = data / ".pgolf-fetch" / "partial" / partial_name(big, big_repo)
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size >= 10 * MiB):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the download never got past 10 MiB"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kept = part.stat().st_size
        assert 10 * MiB <= kept < size
        assert not (data / "datasets" / CASEOPS.dataset / "fineweb_train_000002.bin").exists()

        server.unstall(big)
        sent_before = server.bytes_sent[big]
        loud = [a for a in cmd if a != "--quiet"]
        run = subprocess.run(loud, env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert "download" in run.stderr and "MB" in run.stderr  # the rich progress display
        last = server.gets(big)[-1]
        assert last.headers.get("range") == f"bytes={kept}-"
        assert server.bytes_sent[big] - sent_before == size - kept
    final = data / "datasets" / CASEOPS.dataset / "fineweb_train_000002.bin"
    assert sha256(final.read_bytes()) == big_repo.files[big].sha256
    # Nothing of the Hub client landed in the user's home (~/.cache): its caches live under DATA_DIR.
    assert not [p for p in home.rglob("*") if "huggingface" in p.as_posix() or "xet" in p.name]


def test_ctrl_c_stops_promptly_and_keeps_the_partial_file(big_repo, tmp_path):
    big = f"{DS}/fineweb_train_000002.bin"
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in HF_ENV}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    cmd = [sys.executable, "-m", "harness", "fetch", "--data-dir", str(data), "--quiet"]
    with HubServer([big_repo]) as server:
        env["HF_ENDPOINT"] = server.endpoint
        server.stall(big, 12 * MiB)  # the transfer hangs: Ctrl-C must not wait for it
        # As from a terminal: SIGINT not ignored, even when these tests run in a background job.
        proc = subprocess.Popen(
            as_foreground(cmd), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        part = data / ".pgolf-fetch" / "partial" / partial_name(big, big_repo)
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size >= 10 * MiB):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert time.monotonic() - t0 < 10  # not the minutes a stuck transfer could take
        assert proc.returncode == 130
        assert err.strip() == "pgolf fetch: interrupted"
        assert part.stat().st_size >= 10 * MiB


def test_datasets_folder_may_be_a_symlink_to_another_disk(hub, caseops_repo, tmp_path, capsys, monkeypatch):
    data, elsewhere = tmp_path / "data", tmp_path / "big-disk"
    data.mkdir()
    elsewhere.mkdir()
    (data / "datasets").symlink_to(elsewhere)
    code, _, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, data)
    assert code == 0, err
    val = f"{DS}/fineweb_val_000000.bin"
    assert (elsewhere / val.split("/", 2)[2]).read_bytes() == caseops_repo.files[val].data


def test_5xx_mid_transfer_is_retried_and_resumed(big_repo, tmp_path, capsys, monkeypatch):
    big = f"{DS}/fineweb_train_000002.bin"
    with HubServer([big_repo]) as server:
        # The connection breaks after 12 MiB; the resumed request then meets a 503, which the
        # client does not retry: pgolf fetch must, and from where the file stopped.
        server.cut_next(big, 12 * MiB)
        server.fail_next_resume(big, 503)
        data = tmp_path / "data"
        code, _, err = pgolf_fetch(capsys, monkeypatch, server.endpoint, data)
        assert code == 0, err
        assert server.pending_failures(big) == 0  # the 503 was served
        ranges = [g.headers.get("range") for g in server.gets(big)]
        assert ranges[0] is None and len(ranges) >= 3
        # Every later request resumed after the 10 MiB the client had written; none restarted at 0.
        assert set(ranges[1:]) == {f"bytes={10 * MiB}-"}
    final = local_of(data, big)
    assert sha256(final.read_bytes()) == big_repo.files[big].sha256


def test_persistent_5xx_fails_after_bounded_retries(hub, tmp_path, capsys, monkeypatch):
    path = f"{DS}/fineweb_val_000000.bin"
    hub.fail_next(path, *([500] * 10))
    code, _, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, tmp_path / "d", "--retries", "2")
    assert_one_line_error(code, err, "HTTP 500", "fineweb_val_000000.bin", "after 3 attempts")
    assert len(hub.gets(path)) == 3
    # The other files finished and are kept: the next run fetches only the failed one.
    data = tmp_path / "d"
    assert local_of(data, f"{DS}/fineweb_train_000001.bin").is_file()
    n = len(resolve_gets(hub))
    hub.faults.fail_status[path].clear()
    code, out, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, data)
    assert code == 0, err
    assert resolve_gets(hub)[n:] == [r.path for r in hub.gets(path)[3:]]
    assert "1 downloaded" in out


def test_several_failures_are_counted_in_one_line(hub, tmp_path, capsys, monkeypatch):
    for name in ("fineweb_train_000000.bin", "fineweb_train_000001.bin"):
        hub.fail_next(f"{DS}/{name}", 502)
    code, _, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, tmp_path / "d", "--retries", "0")
    assert_one_line_error(code, err, "HTTP 502", "and 1 more file(s) failed")


def test_local_file_with_a_flipped_byte_is_repaired(hub, caseops_repo, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    assert pgolf_fetch(capsys, monkeypatch, hub.endpoint, data)[0] == 0
    path = f"{DS}/fineweb_train_000001.bin"
    local = local_of(data, path)
    raw = bytearray(local.read_bytes())
    raw[5000] ^= 0x01  # same size, header intact: only the sha256 can tell
    local.write_bytes(bytes(raw))
    before = len(hub.gets(path))
    code, out, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, data)
    assert code == 0, err
    assert "1 downloaded" in out and "1 repaired" in out
    assert len(hub.gets(path)) == before + 1
    assert local.read_bytes() == caseops_repo.files[path].data


def test_corrupt_transfer_is_fetched_again_once(hub, caseops_repo, tmp_path, capsys, monkeypatch):
    path = f"{DS}/fineweb_train_000000.bin"
    hub.flip_next(path, 1)
    data = tmp_path / "data"
    code, _, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, data)
    assert code == 0, err
    assert len(hub.gets(path)) == 2
    assert local_of(data, path).read_bytes() == caseops_repo.files[path].data

    hub.flip_next(path, 5)  # the repo keeps serving bad bytes: one refetch, then a clear error
    local_of(data, path).unlink()
    code, _, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, data)
    assert_one_line_error(code, err, "fineweb_train_000000.bin", "does not match")
    assert len(hub.gets(path)) == 4


# -- bad input ---------------------------------------------------------------------------------------


def test_wrong_repo_id_with_existing_data_dir_fails(hub, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    assert pgolf_fetch(capsys, monkeypatch, hub.endpoint, data)[0] == 0
    code, _, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, data, "--repo-id", "nobody/not-a-repo")
    assert_one_line_error(code, err, "nobody/not-a-repo", "not found")


def test_missing_revision_folder_or_file(
    caseops_repo, proxy_dir, tokenizers_dir, tmp_path, capsys, monkeypatch
):
    files = caseops_files(proxy_dir, tokenizers_dir)
    no_tokenizer = FakeRepo.build("someone/no-tokenizer", {p: d for p, d in files.items() if p != TOKENIZER})
    no_dataset = FakeRepo.build("someone/no-dataset", {TOKENIZER: files[TOKENIZER]})
    with HubServer([caseops_repo, no_tokenizer, no_dataset]) as server:
        ep = server.endpoint
        code, _, err = pgolf_fetch(capsys, monkeypatch, ep, tmp_path / "a", "--revision", "v9")
        assert_one_line_error(code, err, "revision 'v9' not found", CASEOPS.repo_id)
        code, _, err = pgolf_fetch(
            capsys, monkeypatch, ep, tmp_path / "b", "--repo-id", "someone/no-tokenizer"
        )
        assert_one_line_error(code, err, TOKENIZER, "not found")
        code, _, err = pgolf_fetch(capsys, monkeypatch, ep, tmp_path / "c", "--repo-id", "someone/no-dataset")
        assert_one_line_error(code, err, DS, "not found")


def test_unknown_variant(tmp_path, capsys, monkeypatch):
    code, _, err = pgolf_fetch(capsys, monkeypatch, "http://127.0.0.1:9", tmp_path, "--variant", "sp9999")
    assert_one_line_error(code, err, "unknown variant 'sp9999'", "caseops", "sp1024")


def test_network_down(tmp_path, capsys, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    code, _, err = pgolf_fetch(capsys, monkeypatch, endpoint, tmp_path / "d", "--retries", "1")
    assert_one_line_error(code, err, f"cannot reach {endpoint}", "after 2 attempts")


def test_disk_space_is_checked_before_downloading(hub, tmp_path, capsys, monkeypatch):
    hub.announce(f"{DS}/fineweb_train_000001.bin", 10**16)  # the repo announces 10 PB
    code, _, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, tmp_path / "d")
    assert_one_line_error(code, err, "not enough disk space", "free")
    assert resolve_gets(hub) == []


def _can_mount_tmpfs(tmp: Path) -> bool:
    """Whether an unprivileged user+mount namespace with a tmpfs is allowed here."""
    point = tmp / "probe"
    point.mkdir()
    try:
        r = subprocess.run(
            [*UNSHARE, "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs '{point}'"],
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


UNSHARE = ["unshare", "--user", "--map-root-user", "--mount"]


def _subprocess_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in HF_ENV}
    env.update(HF_ENDPOINT=endpoint, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return env


def test_disk_space_is_checked_where_the_datasets_folder_really_is(hub, tmp_path):
    """DATA_DIR/datasets linked to a small disk (a 4 MB tmpfs): refused before downloading."""
    if not _can_mount_tmpfs(tmp_path):
        pytest.skip("no unprivileged mount namespace here (unshare --user --mount) for a small tmpfs")
    data, small = tmp_path / "data", tmp_path / "small"
    data.mkdir()
    small.mkdir()
    (data / "datasets").symlink_to(small)
    script = f"mount -t tmpfs -o size=4m tmpfs '{small}' && exec {sys.executable} -m harness fetch --quiet --data-dir '{data}'"
    r = subprocess.run(
        [*UNSHARE, "sh", "-c", script],
        env=_subprocess_env(hub.endpoint),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(r.returncode, r.stderr, f"not enough disk space in {data / 'datasets'}")
    assert resolve_gets(hub) == []


def test_disk_full_during_download_is_one_line(big_repo, tmp_path):
    """The disk fills up (another process) in the middle of a download: a clear error."""
    if not _can_mount_tmpfs(tmp_path):
        pytest.skip("no unprivileged mount namespace here (unshare --user --mount) for a small tmpfs")
    big = f"{DS}/fineweb_train_000002.bin"
    data, mark = tmp_path / "data", tmp_path / "disk-filled"
    data.mkdir()
    part = data / ".pgolf-fetch" / "partial" / partial_name(big, big_repo)
    script = f"""
mount -t tmpfs -o size=40m tmpfs '{data}' || exit 99
{sys.executable} -m harness fetch --quiet --workers 2 --data-dir '{data}' &
pid=$!
while [ ! -f '{part}' ] || [ "$(stat -c %s '{part}')" -lt {10 * MiB} ]; do sleep 0.05; done
dd if=/dev/zero of='{data}/filler' bs=1M 2>/dev/null
touch '{mark}'
wait $pid
"""
    with HubServer([big_repo]) as server:
        server.stall(big, 12 * MiB)
        proc = subprocess.Popen(
            [*UNSHARE, "sh", "-c", script],
            env=_subprocess_env(server.endpoint),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not mark.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        server.unstall(big)
        _, err = proc.communicate(timeout=120)
    assert_one_line_error(proc.returncode, err, "disk full in", "fineweb_train_000002.bin")


def test_wrong_vocab_is_refused(proxy_dir, tokenizers_dir, tmp_path, capsys, monkeypatch):
    """sp1024 shards with ids >= 1024 (here: an 8192-vocab export under the sp1024 name)."""
    repo = FakeRepo.build(SP1024.repo_id, standard_files(proxy_dir, tokenizers_dir, "sp1024", 1024))
    with HubServer([repo]) as server:
        code, _, err = pgolf_fetch(
            capsys, monkeypatch, server.endpoint, tmp_path / "d", "--variant", "sp1024"
        )
    assert_one_line_error(
        code, err, "fineweb_val_000000.bin", ">= vocab size 1024", "and 3 more file(s) failed"
    )


def test_token_is_sent_but_never_printed(hub, tmp_path, capsys, monkeypatch):
    token = "hf_" + "S3cr3tT0kenValue" * 2
    data = tmp_path / "data"
    code, out, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, data, env={"HF_TOKEN": token})
    assert code == 0, err
    assert all(r.headers.get("authorization") == f"Bearer {token}" for r in hub.requests)
    code2, out2, err2 = pgolf_fetch(
        capsys, monkeypatch, hub.endpoint, data, "--repo-id", "nobody/private", env={"HF_TOKEN": token}
    )
    assert code2 != 0
    for text in (out, err, out2, err2):
        assert token not in text
    for f in data.rglob("*"):
        if f.is_file():
            assert token.encode() not in f.read_bytes(), f


# -- offline -----------------------------------------------------------------------------------------


def test_offline_verifies_present_data_without_network(hub, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    assert pgolf_fetch(capsys, monkeypatch, hub.endpoint, data)[0] == 0
    n_requests = len(hub.requests)
    offline = {"HF_HUB_OFFLINE": "1"}
    code, out, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, data, env=offline)
    assert code == 0, err
    assert "offline: verified 5 files" in out
    assert len(hub.requests) == n_requests  # no network

    code, _, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, data, "--train-shards", "4", env=offline)
    assert_one_line_error(code, err, "fineweb_train_000002.bin", "fineweb_train_000003.bin")

    (data / "datasets" / CASEOPS.dataset / "fineweb_val_bytes_000000.bin").unlink()
    train = data / "datasets" / CASEOPS.dataset / "fineweb_train_000000.bin"
    raw = bytearray(train.read_bytes())
    raw[-1] ^= 0x01
    train.write_bytes(bytes(raw))
    code, _, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, data, env=offline)
    assert_one_line_error(
        code, err, "missing 1", "fineweb_val_bytes_000000.bin", "corrupt 1", "fineweb_train_000000.bin"
    )
    assert len(hub.requests) == n_requests


def test_offline_with_nothing_fetched_says_what_is_missing(tmp_path, capsys, monkeypatch):
    code, _, err = pgolf_fetch(
        capsys, monkeypatch, "http://127.0.0.1:9", tmp_path / "d", env={"HF_HUB_OFFLINE": "1"}
    )
    assert_one_line_error(code, err, "offline", f"{CASEOPS.dataset}.lock.json", "missing")


# -- the fake Hub itself ----------------------------------------------------------------------------


def test_hubserver_serves_the_clients_own_download_path(hub, caseops_repo, tmp_path):
    """hf_hub_download and snapshot_download work against the loopback server, and show the
    client behaviour pgolf fetch guards against: a flipped byte of the right size is accepted."""
    from huggingface_hub import hf_hub_download, snapshot_download

    val = f"{DS}/fineweb_val_000000.bin"
    out = tmp_path / "snap"
    snapshot_download(
        CASEOPS.repo_id, repo_type="dataset", local_dir=out, endpoint=hub.endpoint, cache_dir=tmp_path / "c"
    )
    for p, f in caseops_repo.files.items():
        assert (out / p).read_bytes() == f.data
    hub.flip_next(val)
    got = hf_hub_download(
        CASEOPS.repo_id,
        val,
        repo_type="dataset",
        local_dir=tmp_path / "one",
        endpoint=hub.endpoint,
        cache_dir=tmp_path / "c",
    )
    assert sha256(Path(got).read_bytes()) != caseops_repo.files[val].sha256  # accepted silently


def test_one_fetch_per_data_dir_at_a_time(hub, tmp_path, capsys, monkeypatch):
    import fcntl

    data = tmp_path / "data"
    (data / ".pgolf-fetch").mkdir(parents=True)
    with (data / ".pgolf-fetch" / "lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a running fetch holds it
        code, _, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, data)
    assert_one_line_error(code, err, "another pgolf fetch is using", str(data))
    assert resolve_gets(hub) == []


def test_git_blob_id_matches_git_itself(tmp_path):
    """Small (non-LFS) files are checked against the Hub's oid, the git blob id: pin our
    computation (and the fake Hub's) to git's own."""
    import shutil as _shutil

    from hubserver import git_blob_oid

    from harness.fetch import hash_file

    git = _shutil.which("git")
    if git is None:
        pytest.skip("git not installed")
    f = tmp_path / "manifest.json"
    f.write_bytes(b'{"datasets": []}\n' * 1000)
    expected = subprocess.run(
        [git, "hash-object", str(f)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert hash_file(f, git=True)[1] == expected
    assert git_blob_oid(f.read_bytes()) == expected
    assert hash_file(f)[0] == sha256(f.read_bytes())


def test_fetch_warns_with_the_numbers_when_the_data_is_not_the_canonical_set(
    hub, tmp_path, capsys, monkeypatch
):
    """The fake CaseOps repo holds the proxy corpus: 2 train shards and 63 val documents."""
    code, _, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, tmp_path / "data")
    assert code == 0, err
    assert "pgolf fetch: warning: 2 train shards, the canonical caseops set has 80" in err
    assert "63 val documents, the canonical caseops validation has 50,000" in err
    # A chosen subset of train shards is not a mismatch; the validation split still is.
    code, _, err = pgolf_fetch(capsys, monkeypatch, hub.endpoint, tmp_path / "sub", "--train-shards", "1")
    assert code == 0 and "train shards" not in err and "val documents" in err
