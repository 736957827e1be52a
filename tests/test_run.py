"""`pgolf run` witnesses a trainer: every limit gets a verdict, every misbehaviour a clear reason.

The trainers here are small fakes (tests/fake_trainers/native/train_gpt.py, one
misbehaviour per FAKE_MODE) launched for real through torchrun by the real CLI.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fixtures_run import pgolf, write_tiny_dataset
from foreground import as_foreground  # tests/ is on sys.path (rootdir conftest)

from harness.results import load_schema, read_events, read_result
from harness.sandbox import sandbox_level

REPO = Path(__file__).resolve().parents[1]
FAKE = REPO / "tests" / "fake_trainers" / "native"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny dataset in the challenge's shard format: one train shard, one val shard and its sidecar."""
    d = tmp_path_factory.mktemp("data")
    return write_tiny_dataset(d)


def run_fake(
    run_dir: Path,
    data_dir: Path,
    *extra: str,
    mode: str = "ok",
    seeds: str = "1",
    nproc: int = 1,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return pgolf(
        "run",
        str(FAKE),
        "--data-dir",
        str(data_dir),
        "--out",
        str(run_dir),
        "--seeds",
        seeds,
        "--nproc",
        str(nproc),
        "--env",
        f"FAKE_MODE={mode}",
        "--quiet",
        "--eval-protocol",  # this fake reads val shards and writes RESULT_PATH (test_scoring: v2)
        "v1",
        *extra,
        env=env,
    )


def verdict(result: dict[str, Any], rule: str) -> dict[str, Any]:
    matches = [v for v in result["verdicts"] if v["rule"] == rule]
    assert len(matches) == 1, f"{rule}: {result['verdicts']}"
    return matches[0]


def marked_processes(mark: str) -> list[int]:
    """Live (non-zombie) processes carrying FAKE_MARK=mark in their environment."""
    needle = f"FAKE_MARK={mark}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0") and stat[stat.rfind(b")") + 2 :][:1] != b"Z":
            pids.append(int(entry))
    return pids


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_process_run_is_witnessed_by_the_harness(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "run"
    proc = run_fake(
        run_dir,
        data_dir,
        "--train-limit-s",
        "40",
        "--eval-limit-s",
        "30",
        "--setup-allowance-s",
        "120",
        nproc=2,
        env={"FAKE_DIST": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    run_json = json.loads((run_dir / "run.json").read_text())
    jsonschema.validate(run_json, load_schema("run"))
    assert run_json["status"] == "complete" and run_json["results"]["1"]["status"] == "ok"
    assert run_json["device"] == ("cuda" if run_json["fingerprint"]["gpu_count"] else "cpu")
    result = read_result(run_dir / "seed1" / "result.json")  # schema-checked
    assert result["status"] == "ok" and result["reason"] is None and result["nproc"] == 2
    # Scaled limits are recorded where the verdicts are.
    assert result["limits"] == {
        "artifact_cap_bytes": 16_000_000,
        "train_time_limit_s": 40.0,
        "eval_time_limit_s": 30.0,
        "setup_allowance_s": 120.0,
        "export_allowance_s": 120.0,
    }
    # Artifact = the submission's code bytes on disk + what train left in ARTIFACT_DIR.
    assert result["code_bytes"] == (FAKE / "train_gpt.py").stat().st_size
    assert result["model_bytes"] == (run_dir / "seed1" / "artifact" / "model.bin").stat().st_size == 1000
    assert result["artifact_bytes"] == result["code_bytes"] + 1000
    # Times come from the harness's stamps on the trainer's marks.
    events = read_events(run_dir / "seed1" / "events.jsonl")
    t = {e["event"]: e["t"] for e in events}
    assert [e["phase"] for e in events].count("train") == 7
    assert result["train_time_s"] == pytest.approx(t["train_end"] - t["train_start"], abs=1e-3)
    assert result["eval_time_s"] == pytest.approx(t["eval_end"] - t["eval_start"], abs=1e-3)
    assert 0.2 <= result["train_time_s"] < result["train_phase_wall_s"]
    assert all(a["t"] <= b["t"] for a, b in itertools.pairwise(events))
    assert all(e["t"] > 0 for e in events)  # the harness's stamps, not the trainer's "t": -1
    assert result["steps"] == 5
    walls = "pass" if sandbox_level().available else "not-verifiable"
    assert {v["rule"]: v["verdict"] for v in result["verdicts"]} == {
        "train_time": "pass",
        "export_time": "pass",
        "eval_time": "pass",
        "artifact_bytes": "pass",
        "artifact_files": "pass",
        "data_integrity": "pass",
        "isolation_network": walls,
        "isolation_files": walls,
        "isolation_processes": walls,
    }
    # The export: from the last train_end to the phase's exit, by the harness clock.
    assert 0 <= result["export_time_s"] <= result["train_phase_wall_s"] - result["train_time_s"]
    assert result["isolation"]["sandbox"] == sandbox_level().name
    assert result["isolation"]["violations"] == []
    assert result["val_tokens"] == 501  # the eval phase saw the val shard (and only it)
    assert result["score_source"] == "self-reported" and result["scoring"] is None  # --eval-protocol v1
    log = (run_dir / "train_seed1.log").read_text()
    assert ':::PGOLF {"event": "train_end"' in log and ':::PGOLF {"event": "eval_end"' in log
    assert (run_dir / "code" / "train_gpt.py").read_bytes() == (FAKE / "train_gpt.py").read_bytes()
    fp = result["fingerprint"]
    assert fp["code_sha256"] == run_json["submission"]["code_sha256"] and fp["torch_version"]
    lock_sha = hashlib.sha256((data_dir / "tiny.lock.json").read_bytes()).hexdigest()
    assert fp["data_lock_sha256"] == run_json["data"]["lock_sha256"] == lock_sha


def test_training_past_the_limit_fails_train_time(tmp_path: Path, data_dir: Path) -> None:
    proc = run_fake(
        tmp_path / "run", data_dir, "--train-limit-s", "1", mode="sleep_train", env={"FAKE_SLEEP_S": "2"}
    )
    assert proc.returncode == 1
    result = read_result(tmp_path / "run" / "seed1" / "result.json")
    v = verdict(result, "train_time")
    assert v["verdict"] == "fail" and v["measured"] >= 2.0 and v["limit"] == 1.0
    assert result["status"] == "failed" and result["reason"].startswith("train_time:")
    assert "over the 1 s limit" in result["reason"]
    assert result["val_bpb"] is not None  # the run finished; only a limit failed


def test_strict_policy_counts_the_whole_phase(tmp_path: Path, data_dir: Path) -> None:
    # The marks cover ~0.3 s, but torchrun's start alone (importing torch) takes longer than 1 s.
    proc = run_fake(tmp_path / "run", data_dir, "--policy", "strict", "--train-limit-s", "1")
    assert proc.returncode == 1
    result = read_result(tmp_path / "run" / "seed1" / "result.json")
    assert verdict(result, "train_time")["verdict"] == "pass"
    wall = verdict(result, "train_phase_wall")
    assert wall["verdict"] == "fail" and wall["measured"] > 1.0
    assert result["status"] == "failed"


def test_hard_ceiling_kills_every_rank_even_one_ignoring_sigterm(tmp_path: Path, data_dir: Path) -> None:
    mark = uuid.uuid4().hex
    start = time.monotonic()
    proc = run_fake(
        tmp_path / "run",
        data_dir,
        "--train-limit-s",
        "1",
        "--setup-allowance-s",
        "8",
        "--kill-grace-s",
        "1",
        "--env",
        f"FAKE_MARK={mark}",
        mode="ignore_sigterm",
        nproc=2,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 1
    result = read_result(tmp_path / "run" / "seed1" / "result.json")
    assert result["status"] == "crashed"
    assert result["reason"] == (
        "train phase killed at the hard ceiling of 9 s (limit 1 s + setup allowance 8 s)"
    )
    assert 9.0 <= result["train_phase_wall_s"] < 9.0 + 1.0 + 5.0
    assert elapsed < 60
    assert marked_processes(mark) == []  # no orphan rank left behind


def test_crash_on_rank_1_is_named_and_the_next_seed_still_runs(tmp_path: Path, data_dir: Path) -> None:
    proc = run_fake(tmp_path / "run", data_dir, mode="crash_rank1", nproc=2, seeds="1,2")
    assert proc.returncode == 1
    for seed in (1, 2):
        result = read_result(tmp_path / "run" / f"seed{seed}" / "result.json")
        assert result["status"] == "crashed"
        assert result["reason"] == (
            "train phase crashed: rank 1 exited with code 1 (RuntimeError: fake failure on rank 1)"
        )
    run_json = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_json["status"] == "incomplete"
    assert "Traceback" in (tmp_path / "run" / "train_seed2.log").read_text()


def test_nan_loss_stops_the_seed(tmp_path: Path, data_dir: Path) -> None:
    proc = run_fake(tmp_path / "run", data_dir, mode="nan")
    assert proc.returncode == 1
    result = read_result(tmp_path / "run" / "seed1" / "result.json")
    assert result["status"] == "failed"
    assert result["reason"] == "train loss is nan at step 3 (train phase stopped)"
    assert verdict(result, "finite_loss")["verdict"] == "fail"
    assert result["val_bpb"] is None and result["eval_phase_wall_s"] is None  # eval never ran
    events = read_events(tmp_path / "run" / "seed1" / "events.jsonl")
    assert events[-1]["train_loss"] == "nan"  # events.jsonl stays valid JSON


def test_oversize_artifact_fails_the_cap_counted_on_disk(tmp_path: Path, data_dir: Path) -> None:
    code = (FAKE / "train_gpt.py").stat().st_size
    proc = run_fake(
        tmp_path / "run",
        data_dir,
        "--artifact-cap-bytes",
        str(code + 4000),
        mode="oversize",
        env={"FAKE_MODEL_BYTES": "4001"},
    )
    assert proc.returncode == 1
    result = read_result(tmp_path / "run" / "seed1" / "result.json")
    v = verdict(result, "artifact_bytes")
    assert v["verdict"] == "fail" and v["measured"] == code + 4001 and v["limit"] == code + 4000
    assert result["status"] == "failed"
    assert result["reason"] == (
        f"artifact_bytes: code {code} + model 4001 = {code + 4001} bytes counted on disk, "
        f"over the cap of {code + 4000} bytes"
    )


def test_train_phase_without_artifact_is_a_crash(tmp_path: Path, data_dir: Path) -> None:
    run_fake(tmp_path / "run", data_dir, mode="no_artifact")
    result = read_result(tmp_path / "run" / "seed1" / "result.json")
    assert result["status"] == "crashed" and result["reason"] == "train phase left nothing in ARTIFACT_DIR"


def test_resume_after_a_killed_run_keeps_finished_seeds(tmp_path: Path, data_dir: Path) -> None:
    run_dir, mark = tmp_path / "run", uuid.uuid4().hex
    args = [
        sys.executable,
        "-m",
        "harness",
        "run",
        str(FAKE),
        "--data-dir",
        str(data_dir),
        "--out",
        str(run_dir),
        "--seeds",
        "1,2,3",
        "--quiet",
        "--env",
        "FAKE_MODE=sleep_train",
        "--env",
        "FAKE_SLEEP_SEEDS=2",
        "--env",
        "FAKE_SLEEP_S=60",
        "--env",
        f"FAKE_MARK={mark}",
        "--eval-protocol",
        "v1",
    ]
    harness = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (run_dir / "seed2" / "events.jsonl").exists(), 90, "seed 2 to start training")
    finally:
        harness.kill()  # the machine goes away mid-seed: no chance to clean up
        harness.wait()
    for pid in marked_processes(mark):  # the orphaned trainer, as a reboot would
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not marked_processes(mark), 10, "orphans to die")
    seed1 = (run_dir / "seed1" / "result.json").read_bytes()
    assert json.loads(seed1)["status"] == "ok"
    assert not (run_dir / "seed2" / "result.json").exists()

    refused = pgolf("run", str(FAKE), "--data-dir", str(data_dir), "--out", str(run_dir), "--seeds", "1,2,3")
    assert refused.returncode == 1 and "already holds a run; pass --resume" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    proc = pgolf(
        "run",
        str(FAKE),
        "--data-dir",
        str(data_dir),
        "--out",
        str(run_dir),
        "--seeds",
        "1,2,3",
        "--resume",
        "--quiet",
        "--eval-protocol",
        "v1",
    )
    assert proc.returncode == 0, proc.stderr
    assert "seed 1 (1/3): already ok, kept (--resume)" in proc.stderr
    assert (run_dir / "seed1" / "result.json").read_bytes() == seed1
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["status"] == "complete"
    assert {s: r["status"] for s, r in run_json["results"].items()} == {"1": "ok", "2": "ok", "3": "ok"}


def test_ctrl_c_stops_cleanly_and_keeps_what_finished(tmp_path: Path, data_dir: Path) -> None:
    run_dir, mark = tmp_path / "run", uuid.uuid4().hex
    args = [
        sys.executable,
        "-m",
        "harness",
        "run",
        str(FAKE),
        "--data-dir",
        str(data_dir),
        "--out",
        str(run_dir),
        "--seeds",
        "1,2",
        "--quiet",
        "--env",
        "FAKE_MODE=sleep_train",
        "--env",
        "FAKE_SLEEP_SEEDS=2",
        "--env",
        "FAKE_SLEEP_S=60",
        "--env",
        f"FAKE_MARK={mark}",
        "--eval-protocol",
        "v1",
    ]
    # As from a terminal: SIGINT not ignored, even when these tests run in a background job.
    harness = subprocess.Popen(
        as_foreground(args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: (run_dir / "seed2" / "events.jsonl").exists(), 90, "seed 2 to start training")
        harness.send_signal(signal.SIGINT)
        _, err = harness.communicate(timeout=30)
    finally:
        if harness.poll() is None:
            harness.kill()
    assert harness.returncode == 130
    assert err.strip().splitlines()[-1] == "pgolf run: interrupted"
    assert marked_processes(mark) == []
    assert read_result(run_dir / "seed1" / "result.json")["status"] == "ok"
    seed2 = read_result(run_dir / "seed2" / "result.json")
    assert seed2["status"] == "interrupted"
    assert seed2["reason"] == "interrupted (Ctrl-C) during the train phase"
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["status"] == "interrupted"
    assert run_json["results"]["1"]["status"] == "ok" and run_json["results"]["2"]["status"] == "interrupted"


def test_bad_input_gives_one_line_and_writes_nothing(tmp_path: Path, data_dir: Path) -> None:
    empty = tmp_path / "empty_submission"
    empty.mkdir()
    proc = pgolf("run", str(empty), "--data-dir", str(data_dir), "--out", str(tmp_path / "r1"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"pgolf run: error: {empty / 'train_gpt.py'}: not found, expected the submission's train_gpt.py"
    )
    no_val = tmp_path / "no_val"
    no_val.mkdir()
    (no_val / "fineweb_train_000000.bin").write_bytes((data_dir / "fineweb_train_000000.bin").read_bytes())
    proc = pgolf("run", str(FAKE), "--data-dir", str(no_val), "--out", str(tmp_path / "r2"))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"pgolf run: error: {no_val}: no fineweb_val_*.bin shards found"
    proc = pgolf(
        "run", str(FAKE), "--data-dir", str(data_dir), "--out", str(tmp_path / "r3"), "--env", "NOEQUALS"
    )
    assert proc.returncode == 1 and "--env 'NOEQUALS': expected KEY=VALUE" in proc.stderr
    assert not any((tmp_path / r).exists() for r in ("r1", "r2", "r3"))


def test_legacy_protocol_reads_the_log_and_trusts_nothing_it_cannot_measure(
    tmp_path: Path, data_dir: Path
) -> None:
    legacy = REPO / "tests" / "fake_trainers" / "legacy"
    run_dir = tmp_path / "run"
    proc = pgolf(
        "run",
        str(legacy),
        "--protocol",
        "legacy",
        "--data-dir",
        str(data_dir),
        "--out",
        str(run_dir),
        "--seeds",
        "7",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    result = read_result(run_dir / "seed7" / "result.json")
    assert result["protocol"] == "legacy" and result["status"] == "ok"
    # The *_exact line refines the rounded one before it.
    assert (result["val_loss"], result["val_bpb"]) == (2.50001234, 1.48004321)
    assert result["steps"] == 3
    assert result["claimed"]["artifact_bytes"] == 15000 and result["claimed"]["train_time_s"] == 0.15
    # What the harness measured: the whole process, an upper bound on training.
    assert result["train_time_s"] == result["train_phase_wall_s"] > 0.15
    assert result["code_bytes"] == (legacy / "train_gpt.py").stat().st_size
    verdicts = {v["rule"]: v["verdict"] for v in result["verdicts"]}
    assert verdicts == {
        "train_time": "pass",
        "eval_time": "pass",
        "artifact_bytes": "not-verifiable",
        "isolation_network": "not-verifiable",
        "isolation_files": "not-verifiable",
    }
    assert "the trainer claims 15000 bytes" in verdict(result, "artifact_bytes")["detail"]
    # A custom pattern for a format the defaults do not know.
    proc = pgolf(
        "run",
        str(legacy),
        "--protocol",
        "legacy",
        "--data-dir",
        str(data_dir),
        "--out",
        str(tmp_path / "run2"),
        "--seeds",
        "7",
        "--quiet",
        "--legacy-final-pattern",
        r"^final_int8_zlib_roundtrip val_loss:(?P<val_loss>\S+) val_bpb:(?P<val_bpb>\S+)",
    )
    assert proc.returncode == 0, proc.stderr
    assert read_result(tmp_path / "run2" / "seed7" / "result.json")["val_bpb"] == 1.48


def test_run_finds_the_tokenizer_and_lock_file_fetch_leaves(tmp_path: Path) -> None:
    """`pgolf fetch` layout: DATA_DIR/datasets/<dataset>/, DATA_DIR/tokenizers/, DATA_DIR/<dataset>.lock.json."""
    from harness.runner import find_lock, find_tokenizer

    ds = tmp_path / "datasets" / "fineweb10B_sp1024"
    ds.mkdir(parents=True)
    (tmp_path / "tokenizers").mkdir()
    for name in (
        "fineweb_1024_bpe.model",
        "fineweb_8192_bpe.model",
        "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model",
    ):
        (tmp_path / "tokenizers" / name).write_bytes(b"model")
    (tmp_path / "fineweb10B_sp1024.lock.json").write_text("{}")
    (tmp_path / "other.lock.json").write_text("{}")
    assert find_tokenizer(ds) == tmp_path / "tokenizers" / "fineweb_1024_bpe.model"
    assert find_lock(ds) == tmp_path / "fineweb10B_sp1024.lock.json"
    caseops = tmp_path / "datasets" / "fineweb10B_sp8192_lossless_caps_caseops_v1_reserved"
    caseops.mkdir()
    assert find_tokenizer(caseops) == (
        tmp_path / "tokenizers" / "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model"
    )
    assert find_lock(caseops) is None  # never someone else's lock file
