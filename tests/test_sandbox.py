"""The walls hold: each phase runs in a bubblewrap sandbox, attacked by cheating trainers.

Every attack class of issue 18 runs under ``challenge`` and ``strict`` through the real
CLI (tests/fake_trainers/cheat/train_gpt.py, one attack per CHEAT value), with the
verdict it must get and, where it matters, the source data's sha256 unchanged. The
network probe connects only to a listener this test starts on 127.0.0.1.

Without a usable bwrap these tests skip with the reason; PGOLF_REQUIRE_BWRAP=1 (the nox
``tests`` session, which installs Debian's bubblewrap) makes that a failure instead.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from fixtures_run import write_tiny_dataset

from harness.isolation import inventory
from harness.results import read_result
from harness.sandbox import (
    ARTIFACT,
    CODE,
    DATA,
    OUT,
    Bind,
    HostFacts,
    PhaseInputs,
    bwrap_argv,
    phase_spec,
    sandbox_level,
)

REPO = Path(__file__).resolve().parents[1]
CHEAT = REPO / "tests" / "fake_trainers" / "cheat"
POLICIES = ("challenge", "strict")


def need_bwrap() -> None:
    level = sandbox_level()
    if level.available:
        return
    if os.environ.get("PGOLF_REQUIRE_BWRAP") == "1":
        pytest.fail(f"PGOLF_REQUIRE_BWRAP=1 but {level.reason}")
    pytest.skip(level.reason)


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    """A fresh tiny dataset per test (some attacks try to write it)."""
    d = tmp_path / "data"
    d.mkdir()
    return write_tiny_dataset(d, lock=False)


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def run_cheat(
    tmp_path: Path, data_dir: Path, cheat: str, policy: str, *extra: str, nproc: int = 1
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], str]:
    run_dir = tmp_path / f"run_{policy}"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            str(CHEAT),
            "--data-dir",
            str(data_dir),
            "--out",
            str(run_dir),
            "--seeds",
            "1",
            "--nproc",
            str(nproc),
            "--policy",
            policy,
            "--quiet",
            "--eval-protocol",  # the cheats read val shards in eval (v2's eval gets none: test_scoring)
            "v1",
            "--env",
            f"CHEAT={cheat}",
            "--env",
            f"CHEAT_VAL_FILE={data_dir / 'fineweb_val_000000.bin'}",
            "--env",
            f"CHEAT_TRAIN_FILE={data_dir / 'fineweb_train_000000.bin'}",
            *extra,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    result = read_result(run_dir / "seed1" / "result.json")
    return proc, result, (run_dir / "train_seed1.log").read_text()


def verdicts(result: dict[str, Any]) -> dict[str, str]:
    return {v["rule"]: v["verdict"] for v in result["verdicts"]}


def processes_with(word: str) -> list[int]:
    """Live processes whose command line holds ``word`` (a cheat's survivor)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        if word.encode() in cmdline.split(b"\0") and stat[stat.rfind(b")") + 2 :][:1] != b"Z":
            found.append(int(entry))
    return found


# ---------------------------------------------------------------- the attacks


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
def test_reading_the_other_split_by_path_fd_link_or_child_gets_nothing(
    tmp_path: Path, data_dir: Path, policy: str
) -> None:
    need_bwrap()
    before = {p.name: sha(p) for p in data_dir.iterdir()}
    proc, result, log = run_cheat(tmp_path, data_dir, "read_other_split", policy)
    assert proc.returncode == 0, proc.stderr
    for how in ("open", "dir_fd", "link", "cat"):
        assert f"cheat: {how} refused" in log, how
    assert "WON" not in log
    assert result["status"] == "ok" and result["model_bytes"] == 1000  # nothing of val in the model
    assert verdicts(result)["isolation_files"] == "pass"
    assert {p.name: sha(p) for p in data_dir.iterdir()} == before


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
def test_writing_into_the_data_cannot_change_it(tmp_path: Path, data_dir: Path, policy: str) -> None:
    need_bwrap()
    before = {p.name: sha(p) for p in data_dir.iterdir()}
    proc, result, log = run_cheat(tmp_path, data_dir, "write_data", policy)
    assert "cheat: overwrite source val refused" in log and "cheat: overwrite own shard refused" in log
    assert proc.returncode == 0, proc.stderr
    assert {p.name: sha(p) for p in data_dir.iterdir()} == before
    v = verdicts(result)
    assert result["status"] == "ok" and v["data_integrity"] == "pass" and v["isolation_files"] == "pass"


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
def test_no_process_outlives_its_phase(tmp_path: Path, data_dir: Path, policy: str) -> None:
    need_bwrap()
    mark = uuid.uuid4().hex
    proc, result, log = run_cheat(tmp_path, data_dir, "outlive", policy, "--env", f"CHEAT_MARK={mark}")
    assert proc.returncode == 0, proc.stderr
    assert "cheat: outlive child started" in log
    assert processes_with(mark) == []  # it died with the train phase's PID namespace
    assert "cheat: hidden bytes in eval 0" in log  # and handed nothing to eval
    assert result["status"] == "ok" and verdicts(result)["isolation_processes"] == "pass"


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
def test_files_left_in_tmp_shm_and_home_never_reach_eval(tmp_path: Path, data_dir: Path, policy: str) -> None:
    need_bwrap()
    proc, result, log = run_cheat(tmp_path, data_dir, "leave_files", policy)
    assert proc.returncode == 0, proc.stderr
    assert log.count("cheat: leave") == 3 and "cheat: leave" in log and "refused" not in log
    assert "cheat: hidden bytes in eval 0" in log
    assert result["artifact_bytes"] == result["code_bytes"] + 1000 and result["status"] == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
def test_a_symlink_or_fifo_in_the_artifact_fails_the_seed(
    tmp_path: Path, data_dir: Path, policy: str
) -> None:
    need_bwrap()
    proc, result, _ = run_cheat(tmp_path, data_dir, "symlink_artifact", policy)
    assert proc.returncode == 1
    assert result["status"] == "failed"
    assert result["reason"] == ("ARTIFACT_DIR may hold only regular files: more is a symlink, pipe is a FIFO")
    assert verdicts(result)["artifact_files"] == "fail"
    assert result["model_bytes"] == 1000  # only the regular file counts
    assert result["eval_phase_wall_s"] is None  # eval never got it


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
def test_one_rank_marking_train_end_early_does_not_stop_the_clock(
    tmp_path: Path, data_dir: Path, policy: str
) -> None:
    need_bwrap()
    proc, result, _ = run_cheat(
        tmp_path,
        data_dir,
        "early_mark",
        policy,
        "--env",
        "CHEAT_SLEEP_S=4",
        "--export-allowance-s",
        "2",
        "--train-limit-s",
        "3",
        nproc=2,
    )
    assert proc.returncode == 1
    v = verdicts(result)
    assert result["export_time_s"] >= 4.0
    assert v["export_time"] == "fail"
    if policy == "strict":
        assert v["train_phase_wall"] == "fail"
    assert result["status"] == "failed" and "export_time:" in result["reason"]


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
def test_a_libc_level_connection_never_arrives(tmp_path: Path, data_dir: Path, policy: str) -> None:
    need_bwrap()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        proc, result, log = run_cheat(
            tmp_path, data_dir, "libc_connect", policy, "--env", f"CHEAT_PORT={port}"
        )
        with pytest.raises(socket.timeout):
            listener.accept()
    assert log.count("cheat: libc connect refused") == 2  # train and eval
    assert proc.returncode == 0, proc.stderr
    assert verdicts(result)["isolation_network"] == "pass" and result["isolation"]["network"] == "netns"


# ---------------------------------------------------------------- without a sandbox


@pytest.mark.slow
def test_without_the_sandbox_every_isolation_verdict_is_not_verifiable(
    tmp_path: Path, data_dir: Path
) -> None:
    mark = uuid.uuid4().hex
    proc, result, _ = run_cheat(
        tmp_path, data_dir, "outlive", "challenge", "--no-sandbox", "--env", f"CHEAT_MARK={mark}"
    )
    assert proc.returncode == 0, proc.stderr
    v = verdicts(result)
    assert (v["isolation_network"], v["isolation_files"], v["isolation_processes"]) == ("not-verifiable",) * 3
    assert result["isolation"]["sandbox"] == "none"
    # The orphan came back to the harness (a child subreaper) and was killed, and said so.
    assert processes_with(mark) == []
    assert result["isolation"]["violations"] == ["train: 1 process(es) outlived the phase (killed)"]


@pytest.mark.slow
def test_without_the_sandbox_a_changed_val_shard_fails_the_seed_before_eval(
    tmp_path: Path, data_dir: Path
) -> None:
    proc, result, log = run_cheat(tmp_path, data_dir, "write_data", "challenge", "--no-sandbox")
    assert "cheat: overwrite source val WON" in log  # nothing stops it here...
    assert proc.returncode == 1
    val = (data_dir / "fineweb_val_000000.bin").resolve()
    assert result["status"] == "failed"
    assert result["reason"] == (
        f"scored data changed since the run began: {val} no longer matches its sha256 (taken before the train phase)"
    )
    assert verdicts(result)["data_integrity"] == "fail" and result["eval_phase_wall_s"] is None


# ---------------------------------------------------------------- the spec, without running


HOST = HostFacts(
    system_dirs=(Path("/usr"), Path("/etc"), Path("/srv")),
    system_links=(("usr/lib", PurePosixPath("/lib")),),
    python_dirs=(Path("/usr/lib/python3"), Path("/venv"), Path("/venv/lib/site")),
    dev_nodes=(Path("/dev/nvidia0"), Path("/dev/nvidiactl")),
)


def inputs(**kw: Any) -> PhaseInputs:
    base: dict[str, Any] = dict(
        code_dir=Path("/srv/run/.stage/seed1/train_code"),
        data_files=(Path("/srv/data/fineweb_train_000000.bin"),),
        artifact_dir=Path("/srv/run/seed1/artifact"),
        artifact_writable=True,
        out_dir=None,
        tokenizer=None,
        hidden=(Path("/srv/data"), Path("/srv/run"), Path("/elsewhere")),
        env={"ARTIFACT_DIR": "/srv/run/seed1/artifact", "HOME": "/root", "SEED": "1"},
    )
    base.update(kw)
    return PhaseInputs(**base)


def test_spec_shows_the_system_read_only_and_masks_data_and_runs_under_it() -> None:
    spec = phase_spec(inputs(), HOST)
    assert spec.system == (
        PurePosixPath("/usr"),
        PurePosixPath("/etc"),
        PurePosixPath("/srv"),
        PurePosixPath("/venv"),
    )
    # /srv shows the data and the run dir: both masked; /elsewhere is not shown at all.
    assert [str(m.dest) for m in spec.masks] == ["/srv/data", "/srv/run"]
    assert (
        Bind(Path("/srv/data/fineweb_train_000000.bin"), DATA / "fineweb_train_000000.bin") in spec.ro_binds
    )
    assert spec.rw_binds == (Bind(Path("/srv/run/seed1/artifact"), ARTIFACT),)
    env = dict(spec.env)
    assert env["ARTIFACT_DIR"] == str(ARTIFACT) and env["HOME"] == "/pgolf/home" and env["SEED"] == "1"
    assert spec.cwd == CODE and not spec.network


def test_eval_spec_gets_the_artifact_read_only_and_extra_binds_writable() -> None:
    sock_dir = Path("/srv/run/.stage/seed1/score")
    spec = phase_spec(
        inputs(
            artifact_writable=False,
            out_dir=Path("/srv/run/.stage/seed1/eval_out"),
            extra_binds=(Bind(sock_dir, PurePosixPath("/pgolf/score")),),
            env={
                "RESULT_PATH": "/srv/run/.stage/seed1/eval_out/result.json",
                "PGOLF_SCORE_SOCKET": f"{sock_dir}/s",
            },
        ),
        HOST,
    )
    assert Bind(Path("/srv/run/seed1/artifact"), ARTIFACT) in spec.ro_binds
    assert spec.rw_binds == (
        Bind(Path("/srv/run/.stage/seed1/eval_out"), OUT),
        Bind(sock_dir, PurePosixPath("/pgolf/score")),
    )
    env = dict(spec.env)
    assert env["RESULT_PATH"] == "/pgolf/out/result.json" and env["PGOLF_SCORE_SOCKET"] == "/pgolf/score/s"


def test_argv_orders_private_mounts_system_masks_then_the_phase() -> None:
    argv = bwrap_argv(phase_spec(inputs(), HOST), ["python", "train_gpt.py"], "/opt/bwrap")
    assert argv[:6] == [
        "/opt/bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--proc",
        "/proc",
    ]
    assert "--share-net" not in argv
    joined = " ".join(argv)

    def at(fragment: str) -> int:
        assert fragment in joined, fragment
        return joined.index(fragment)

    assert (
        at("--tmpfs /tmp") < at("--ro-bind /srv /srv") < at("--tmpfs /srv/data") < at("--ro-bind /srv/data/")
    )
    assert at("--dev /dev") < at("--dev-bind /dev/nvidia0 /dev/nvidia0")
    assert at("--symlink usr/lib /lib") < at("--remount-ro /")
    assert argv[-3:] == ["--", "python", "train_gpt.py"]
    assert at("--clearenv") < at("--setenv HOME /pgolf/home")


def test_inventory_counts_regular_files_and_names_everything_else(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.bin").write_bytes(b"x" * 10)
    (tmp_path / "b.bin").write_bytes(b"y" * 5)
    (tmp_path / "link").symlink_to(tmp_path / "sub")
    os.mkfifo(tmp_path / "fifo")
    inv = inventory(tmp_path)
    assert inv.files == (("b.bin", 5), ("sub/a.bin", 10)) and inv.bytes == 15
    assert inv.refused == (("fifo", "FIFO"), ("link", "symlink"))


def test_a_bwrap_that_cannot_make_namespaces_is_named_with_the_docker_flags(tmp_path: Path) -> None:
    # What bwrap says under Docker's default seccomp profile, from a stand-in binary.
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from harness.sandbox import sandbox_level as s; l = s(); print(l.name, l.reason)",
        ],
        env={**os.environ, "PGOLF_BWRAP": str(fake)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip() == (
        "none bwrap cannot create namespaces here (bwrap: No permissions to creating new namespace); in Docker "
        "run with --security-opt seccomp=unconfined --security-opt apparmor=unconfined "
        "--security-opt systempaths=unconfined"
    )


def test_scored_data_is_checked_against_the_fetch_lock_else_against_its_own_sha256(data_dir: Path) -> None:
    from harness.fetch import write_lock
    from harness.isolation import changed_files, data_digests

    val = [data_dir / "fineweb_val_000000.bin", data_dir / "fineweb_val_bytes_000000.bin"]
    lock = data_dir.parent / "tiny.lock.json"
    entries = [{"path": f"data/{p.name}", "sha256": sha(p)} for p in val]
    write_lock(lock, {"files": entries})
    digests = data_digests(val, lock)
    assert digests.source == f"fetch lock {lock}" and changed_files(digests) == []
    # The lock is the truth: a file that differs from it is caught even if it never changed here.
    write_lock(lock, {"files": [{**entries[0], "sha256": "0" * 64}, entries[1]]})
    assert changed_files(data_digests(val, lock)) == [str(val[0].resolve())]
    # A lock that does not list the files: the sha256 the harness takes itself.
    write_lock(lock, {"files": entries[1:]})
    own = data_digests(val, lock)
    assert own.source == "taken before the train phase" and changed_files(own) == []
    val[1].write_bytes(val[1].read_bytes()[:-2] + b"\x07\x00")
    assert changed_files(own) == [str(val[1].resolve())]


def test_train_clock_runs_from_the_earliest_start_to_the_latest_end_then_measures_the_export() -> None:
    from harness.launch import PhaseOutcome
    from harness.runner import TrainClock, Witness

    phase = PhaseOutcome(phase="train", returncode=0, start_t=0.0, end_t=20.0)
    clock = TrainClock.of(Witness(train_start=2.0, train_end=9.5), phase)
    assert (clock.train_time_s, clock.export_time_s) == (7.5, 10.5)
    v = clock.export_verdict(10.0)
    assert (v.verdict, v.measured, v.limit) == ("fail", 10.5, 10.0)
    assert (
        v.detail
        == "10.500 s from the last train_end to the train phase's exit (export), over the 10 s allowance"
    )
    assert clock.export_verdict(120.0).verdict == "pass"
    unmarked = TrainClock.of(Witness(train_start=2.0), phase)  # no train_end: the whole phase is training
    assert (unmarked.train_time_s, unmarked.export_time_s, unmarked.marked) == (20.0, None, False)
