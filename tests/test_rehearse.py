"""`pgolf rehearse`: the whole pipeline offline on the embedded data, ending in a rehearsal folder."""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_run import pgolf as run_pgolf

from harness.fingerprint import file_sha256
from harness.rehearsal_data import TOKENIZER, build, embedded, unigram_bpb
from harness.rehearse import template_dir
from harness.results import read_result
from harness.shards import read_shard, validate_dataset_dir

REPO = Path(__file__).resolve().parents[1]
MAX_EMBEDDED_BYTES = 6_000_000


pgolf = functools.partial(run_pgolf, timeout=600)


def test_embedded_data_is_valid_small_and_verified() -> None:
    data = embedded(verify=True)  # every sha256 in the manifest checked
    files = validate_dataset_dir(data.data_dir, vocab_size=8192, require_sidecar=True)
    assert [p.name for p in files.train] == ["fineweb_train_000000.bin"]
    shipped = [*files.train, *files.val, *files.val_bytes, data.tokenizer]
    assert sum(p.stat().st_size for p in shipped) <= MAX_EMBEDDED_BYTES
    val = np.asarray(read_shard(files.val[0]))
    side = np.asarray(read_shard(files.val_bytes[0])).astype(np.int64)
    assert val[0] == 1 and int(side.sum()) == data.manifest["val"]["original_bytes"]
    assert int(side[val == 1].sum()) == 0  # BOS stands for no bytes of the original text
    train = np.asarray(read_shard(files.train[0]))
    assert unigram_bpb(train, val, int(side.sum())) == pytest.approx(data.unigram_bpb, abs=1e-6)
    readme = (data.data_dir / "README.md").read_text()
    assert f"**{data.unigram_bpb:.4f} bpb**" in readme and "Debian package" in readme


def test_embedded_data_is_a_reproducible_cut_of_the_proxy(shared_dir: Path, tmp_path: Path) -> None:
    manifest = build(shared_dir / "data" / "proxy", shared_dir / "tokenizers", tmp_path)
    shipped = embedded(verify=False).manifest
    assert {n: f["sha256"] for n, f in manifest["files"].items()} == {
        n: f["sha256"] for n, f in shipped["files"].items()
    }
    assert file_sha256(tmp_path / TOKENIZER) == shipped["tokenizer"]["sha256"]


def test_a_wheel_carries_the_reference_trainer_and_the_data(tmp_path: Path) -> None:
    """A non-editable install (no checkout next to it) still finds everything a rehearsal needs."""
    wheels, target, src = tmp_path / "wheels", tmp_path / "site", tmp_path / "src"
    # Build from a copy holding what the Docker context holds, so the checkout is left alone.
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("harness", "submission_template"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            *glob.glob(str(wheels / "*.whl")),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    probe = (
        "from pathlib import Path; from harness.rehearse import template_dir; from harness.rehearsal_data import embedded; "
        "import harness.sandbox as s; e = embedded(verify=True); "
        "print(template_dir()); print(e.data_dir); print(Path(s.__file__).parent == template_dir().parent)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(target)},
        check=True,
    ).stdout.split()
    assert out[0] == str(target / "harness" / "_template") and out[1].startswith(str(target))
    assert out[2] == "True"
    assert (target / "harness" / "_template" / "train_gpt.py").read_bytes() == (
        src / "submission_template" / "train_gpt.py"
    ).read_bytes()


def test_rehearse_refuses_a_folder_in_use(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    proc = pgolf("rehearse", "--out", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"pgolf rehearse: error: {tmp_path}: not empty; a rehearsal writes a fresh folder (choose another --out)"
    )


@pytest.mark.slow
def test_rehearsal_with_two_cpu_processes_ends_in_a_rehearsal_folder(tmp_path: Path) -> None:
    """The reference trainer at tiny size, 2 processes over gloo, scaled limits, then packaged."""
    out = tmp_path / "reh"
    proc = pgolf("rehearse", "--out", str(out), "--nproc", "2", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_json = json.loads((out / "run" / "run.json").read_text())
    assert run_json["rehearsal"] is True and run_json["status"] == "complete"
    assert run_json["limits"]["scaled"] is True
    result = read_result(out / "run" / "seed42" / "result.json")
    assert result["rehearsal"] is True and result["nproc"] == 2
    assert result["limits"]["train_time_limit_s"] == 60.0 and result["limits"]["eval_time_limit_s"] == 60.0
    assert {v["verdict"] for v in result["verdicts"]} == {"pass"}
    # the score is the harness's own (eval protocol v2), every scoring audit ran and passed
    assert result["score_source"] == "witnessed"
    assert {"score_coverage", "score_order", "normalization", "causality"} <= {
        v["rule"] for v in result["verdicts"]
    }
    unigram = embedded(verify=False).unigram_bpb
    assert result["val_bpb"] < unigram - 0.1, (result["val_bpb"], unigram)
    assert result["val_bytes"] == embedded(verify=False).manifest["val"]["original_bytes"]
    records = list((out / "records" / "track_non_record_16mb").iterdir())
    assert len(records) == 1 and records[0].name.endswith("_Rehearsal")
    submission = json.loads((records[0] / "submission.json").read_text())
    assert submission["rehearsal"] is True and submission["track"] == "non_record_16mb"
    assert submission["score_source"] == "witnessed"
    assert (records[0] / "train_gpt.py").read_bytes() == (template_dir() / "train_gpt.py").read_bytes()
    assert (records[0] / "train_seed42.log").is_file()
    assert f"unigram baseline of the rehearsal data: {unigram:.4f}" in proc.stdout


def machine_paths_in(folder: Path, needles: list[str]) -> list[str]:
    """Files under ``folder`` that name one of this machine's paths."""
    found = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix != ".png":
            text = p.read_bytes().decode("utf-8", errors="replace")
            found += [f"{p.relative_to(folder)}: {n}" for n in needles if n in text]
    return found


@pytest.mark.slow
def test_the_packaged_reproduce_command_runs_as_written(tmp_path: Path) -> None:
    """Rehearse at a tiny scale, then run the README's reproduce block in a shell, unedited."""
    out = tmp_path / "reh"
    proc = pgolf(
        "rehearse", "--out", str(out), "--train-limit-s", "30", "--eval-limit-s", "120",
        "--env", "EXPORT_RESERVE_SECONDS=15", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # It ends with what to do next: the three commands of a real run.
    tail = proc.stdout.splitlines()[-4:]
    assert tail[0].startswith("pgolf rehearse: next, a real run on 8x H100")
    assert [line.split()[:2] for line in tail[1:]] == [
        ["pgolf", "doctor"],
        ["pgolf", "fetch"],
        ["pgolf", "run"],
    ]
    assert (
        "--nproc 8" in tail[3]
        and "/data/datasets/fineweb10B_sp8192_lossless_caps_caseops_v1_reserved" in tail[3]
    )
    (record,) = (out / "records" / "track_non_record_16mb").iterdir()
    readme = (record / "README.md").read_text("utf-8")
    block = readme.split("## Reproduce", 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0]
    submission = json.loads((record / "submission.json").read_text())
    assert block == submission["reproduce"]
    # No path of this machine in anything shipped (the code ships as it ran and names none).
    needles = [str(tmp_path), sys.prefix, str(REPO), str(Path.home())]
    assert machine_paths_in(record, needles) == []
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    again = read_result(out / "runs" / "reproduce" / "seed42" / "result.json")
    first = read_result(out / "run" / "seed42" / "result.json")
    assert again["status"] == "ok" and again["limits"] == first["limits"] and again["nproc"] == first["nproc"]
    assert again["code_files"]["train_gpt.py"] == first["code_files"]["train_gpt.py"]
    (repacked,) = (out / "reproduced" / "track_non_record_16mb").iterdir()
    assert json.loads((repacked / "submission.json").read_text())["limits"] == submission["limits"]
    assert machine_paths_in(repacked, needles) == []
