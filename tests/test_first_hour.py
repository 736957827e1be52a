"""A competitor's first hour: bad input refused before any phase, crashes explained in one line.

Preflight (harness/preflight.py) reads every shard and compiles the code before the
first phase; crash reasons (harness/crash.py) carry the trainer's own error, name a
fatal signal and, for a SIGKILL, what was seen of memory; the same crash before
training on two seeds in a row stops the run. The trainers are fakes
(tests/fake_trainers/crashing) launched for real through torchrun by the real CLI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_run import pgolf

from harness import crash
from harness.preflight import PreflightError, preflight
from harness.results import read_result
from harness.shards import write_shard

REPO = Path(__file__).resolve().parents[1]
FAKE = REPO / "tests" / "fake_trainers" / "native"
CRASHING = REPO / "tests" / "fake_trainers" / "crashing"
TOKENIZER = (
    REPO / "harness" / "data" / "rehearsal" / "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model"
)


def make_data(d: Path) -> Path:
    """One train shard, one val shard and its sidecar, ids below the tokenizer's 8192."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_shard(d / "fineweb_train_000000.bin", np.concatenate([[1], rng.integers(2, 8192, 3000)]))
    val = np.concatenate([[1], rng.integers(2, 8192, 400), [1], rng.integers(2, 8192, 99)])
    write_shard(d / "fineweb_val_000000.bin", val)
    write_shard(d / "fineweb_val_bytes_000000.bin", np.where(val == 1, 0, 3))
    shutil.copy(TOKENIZER, d / TOKENIZER.name)
    return d


# ---------------------------------------------------------------- preflight


def corrupt(d: Path, how: str) -> Path:
    """The file a damaged download leaves, and the path the refusal must name."""
    train, val, side = (d / f"fineweb_{k}_000000.bin" for k in ("train", "val", "val_bytes"))
    if how == "truncated":
        train.write_bytes(train.read_bytes()[:-7])
        return train
    if how == "bad_magic":
        raw = bytearray(val.read_bytes())
        raw[0] ^= 0xFF
        val.write_bytes(bytes(raw))
        return val
    if how == "token_over_vocab":
        raw = bytearray(train.read_bytes())
        raw[1024 + 2 * 500 : 1024 + 2 * 501] = (9000).to_bytes(2, "little")
        train.write_bytes(bytes(raw))
        return train
    if how == "sidecar_count":
        write_shard(side, np.full(10, 3))
        return side
    if how == "sidecar_bos":
        tokens = np.fromfile(val, dtype="<u2", offset=1024)
        write_shard(side, np.full(tokens.size, 3))
        return side
    if how == "sidecar_missing":
        side.unlink()
        return val
    raise AssertionError(how)


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("truncated", "truncated: header says 3001 tokens"),
        ("bad_magic", "bad magic"),
        ("token_over_vocab", "token id 9000 at position 500 is >= vocab size 8192"),
        ("sidecar_count", "sidecar has 10 entries, expected 501"),
        ("sidecar_bos", "entry 0 is 3 for a BOS token of fineweb_val_000000.bin, expected 0"),
        ("sidecar_missing", "byte sidecar fineweb_val_bytes_000000.bin missing"),
    ],
)
def test_preflight_names_the_damaged_file(tmp_path: Path, how: str, expected: str) -> None:
    d = make_data(tmp_path / "data")
    bad = corrupt(d, how)
    with pytest.raises(PreflightError) as err:
        preflight(FAKE, d, d / TOKENIZER.name)
    assert str(err.value).startswith(f"{bad}: ") and expected in str(err.value)
    assert "\n" not in str(err.value)


def test_preflight_passes_good_data_and_counts_it(tmp_path: Path) -> None:
    d = make_data(tmp_path / "data")
    report = preflight(FAKE, d, d / TOKENIZER.name)
    assert (report.shards, report.tokens, report.vocab_size, report.sidecars) == (3, 3001 + 501, 8192, 1)


def test_code_that_does_not_compile_is_refused_with_its_line(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "train_gpt.py").write_text("import os\n\ndef main(:\n    pass\n")
    with pytest.raises(PreflightError, match=rf"^{sub / 'train_gpt.py'}:3: SyntaxError: "):
        preflight(sub, make_data(tmp_path / "data"), None)


def test_a_bad_shard_is_refused_before_the_train_phase_starts(tmp_path: Path) -> None:
    d = make_data(tmp_path / "data")
    bad = corrupt(d, "token_over_vocab")
    run_dir = tmp_path / "run"
    proc = pgolf("run", str(FAKE), "--data-dir", str(d), "--out", str(run_dir), "--seeds", "1")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"pgolf run: error: {bad}: token id 9000 at position 500 is >= vocab size 8192"
    )
    assert ".stage" not in proc.stderr
    assert not run_dir.exists()  # no phase ran: nothing was written


# ---------------------------------------------------------------- crashes


TORCHRUN_TAIL = """\
[rank1]: Traceback (most recent call last):
[rank1]:   File "train_gpt.py", line 9, in <module>
[rank1]: RuntimeError: CUDA error: an illegal memory access was encountered
[rank0]: RuntimeError: Connection closed by peer
E1202 01:02:03.456000 123 torch/distributed/elastic/multiprocessing/api.py:874] failed (exitcode: 1) local_rank: 1 (pid: 4242) of binary: /usr/bin/python
Traceback (most recent call last):
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
train_gpt.py FAILED
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-02_01:02:03
  host      : pod
  rank      : 1 (local_rank: 1)
  exitcode  : 1 (pid: 4242)
  error_file: <N/A>
============================================================"""


def test_the_root_cause_ranks_own_error_is_the_reason() -> None:
    f = crash.parse_failure(TORCHRUN_TAIL.splitlines(), 1)
    assert (f.rank, f.exit_code, f.signal) == (1, 1, None)
    assert f.error_line == "RuntimeError: CUDA error: an illegal memory access was encountered"


def test_a_signal_from_torchruns_summary_is_named() -> None:
    tail = TORCHRUN_TAIL.replace("exitcode  : 1 (pid: 4242)", "exitcode  : -9 (pid: 4242)")
    mem = crash.MemoryReport(
        peak_rss_bytes=60 << 30, limit_bytes=64 << 30, limit_source="the machine's memory"
    )
    reason = crash.crash_reason("train", tail.splitlines(), 1, mem)
    assert reason.startswith("train phase crashed: rank 1 was killed by SIGKILL (not sent by pgolf); ")
    assert "likely out of memory: peak RSS of the phase's processes 60.00 GiB of 64.00 GiB" in reason


def test_memory_hint_says_what_was_seen() -> None:
    low = crash.MemoryReport(peak_rss_bytes=1 << 30, limit_bytes=64 << 30, limit_source="x")
    assert crash.memory_hint(low, kernel_log=False).endswith("1.00 GiB of 64.00 GiB (x), not near it")
    counted = crash.MemoryReport(peak_rss_bytes=1 << 30, limit_bytes=64 << 30, oom_kills=1)
    assert crash.memory_hint(counted, kernel_log=False).startswith("killed by the kernel for memory")
    assert crash.memory_hint(low, kernel_log=True).startswith("killed by the kernel for memory")


def test_staged_paths_become_the_real_ones() -> None:
    staged = {"/r/.stage/seed1/train_data": "/data/sp"}
    line = "TrainerError: /r/.stage/seed1/train_data/fineweb_train_000003.bin: truncated header"
    assert (
        crash.real_paths(line, staged) == "TrainerError: /data/sp/fineweb_train_000003.bin: truncated header"
    )


def run_crashing(
    run_dir: Path, data: Path, mode: str, seeds: str, *extra: str, env: dict[str, str] | None = None
):
    return pgolf(
        "run", str(CRASHING), "--data-dir", str(data), "--out", str(run_dir), "--seeds", seeds,
        "--eval-protocol", "v1", "--env", f"FAKE_MODE={mode}", *extra, env=env,
    )  # fmt: skip


@pytest.mark.slow
def test_sigkill_of_a_rank_is_named_with_the_peak_memory(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data")
    limit = 500 << 20  # the fake holds 400 MiB: above 3/4 of this, whatever torchrun itself holds
    proc = run_crashing(
        tmp_path / "run", data, "oom", "1", "--env", "FAKE_ALLOC_MB=400",
        env={crash.MEMORY_LIMIT_ENV: str(limit)},
    )  # fmt: skip
    assert proc.returncode == 1
    reason = read_result(tmp_path / "run" / "seed1" / "result.json")["reason"]
    assert reason.startswith("train phase crashed: rank 0 was killed by SIGKILL (not sent by pgolf); ")
    assert "likely out of memory: peak RSS of the phase's processes " in reason
    assert reason.endswith(f"of {limit / 2**30:.2f} GiB (${crash.MEMORY_LIMIT_ENV})")
    peak = float(reason.split("processes ")[1].split(" GiB")[0])
    assert peak >= 0.39  # the 400 MiB were seen
    # The terminal: pgolf's lines, the crash in one line with the log's place; no trainer output.
    seed_line = next(
        line
        for line in proc.stderr.splitlines()
        if line.startswith("pgolf: seed 1: crashed — train phase crashed: rank 0 was killed by SIGKILL")
    )
    assert seed_line.endswith(f"; log: {tmp_path / 'run' / 'train_seed1.log'}")
    assert "c10d warning" not in proc.stderr + proc.stdout and ":::PGOLF" not in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "c10d warning" in (tmp_path / "run" / "train_seed1.log").read_text()


@pytest.mark.slow
def test_the_same_setup_crash_twice_stops_the_remaining_seeds(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data")
    proc = run_crashing(tmp_path / "run", data, "setup_error", "1,2,3")
    assert proc.returncode == 1
    run_json = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_json["status"] == "incomplete" and set(run_json["results"]) == {"1", "2"}
    reason = run_json["results"]["2"]["reason"]
    assert reason == (
        "train phase crashed: rank 0 exited with code 2 "
        "(train_gpt.py: error: environment NUM_LAYERS='x': expected a int)"
    )
    assert not (tmp_path / "run" / "seed3").exists()
    assert "stopped: two seeds in a row crashed the same way before training started" in proc.stderr
    assert "seed(s) 3 not run" in proc.stderr
    # --keep-going runs them all; --resume later would have run seed 3 too.
    proc = run_crashing(tmp_path / "run2", data, "setup_error", "1,2,3", "--keep-going")
    run_json = json.loads((tmp_path / "run2" / "run.json").read_text())
    assert set(run_json["results"]) == {"1", "2", "3"} and "stopped" not in proc.stderr


@pytest.mark.slow
def test_different_setup_crashes_do_not_stop_the_run(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data")
    proc = run_crashing(tmp_path / "run", data, "seed_error", "1,2,3", "--env", "FAKE_BAD_SEEDS=1,3")
    run_json = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [run_json["results"][s]["status"] for s in "123"] == ["crashed", "ok", "crashed"]
    assert "stopped" not in proc.stderr


# ---------------------------------------------------------------- metrics


@pytest.mark.slow
def test_tensorboard_event_files_hold_the_run_per_seed(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = make_data(tmp_path / "data")
    tb = tmp_path / "tb"
    proc = run_crashing(tmp_path / "run", data, "", "1,2", "--tensorboard", str(tb))
    assert proc.returncode == 0, proc.stderr
    for seed in (1, 2):
        acc = EventAccumulator(str(tb / "run" / f"seed{seed}"))
        acc.Reload()
        scalars = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
        assert scalars["train/loss"] == [(1, 5.0), (2, 4.0)]
        assert scalars["train/lr_scale"] == [(1, 0.5), (2, 1.0)]
        assert [s for s, _ in scalars["train/tokens_per_s"]] == [1, 2]
        assert all(v > 0 for _, v in scalars["train/tokens_per_s"])
        result = read_result(tmp_path / "run" / f"seed{seed}" / "result.json")
        assert scalars["val/val_bpb"] == [(2, pytest.approx(result["val_bpb"]))]
        assert scalars["val/val_loss"] == [(2, pytest.approx(result["val_loss"]))]


def test_tensorboard_without_its_writer_is_refused_up_front(tmp_path: Path) -> None:
    probe = (
        "import sys; sys.modules['tensorboardX'] = None\n"
        "from harness.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    data = make_data(tmp_path / "data")
    proc = subprocess.run(
        [sys.executable, "-c", probe, "run", str(CRASHING), "--data-dir", str(data), "--out", str(tmp_path / "r"),
         "--eval-protocol", "v1", "--tensorboard", str(tmp_path / "tb")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "pgolf run: error: --tensorboard: the tensorboardX package is not installed; "
        "pip install 'pgolf[tensorboard]' (tensorboardX)"
    )
    assert not (tmp_path / "r").exists()
