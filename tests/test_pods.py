"""Seeds on several pods: `pgolf launch` writes a SkyPilot task that SkyPilot's own parser
accepts, and `pgolf gather` merges real `pgolf run` directories into one run that
`pgolf package` accepts, refusing pods that ran different code, data, image or limits.

The runs are real: the fake native trainer (tests/fake_trainers/native) launched through
torchrun by the real CLI, one `pgolf run` per "pod", the two pods at once.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fixtures_run import pgolf as run_pgolf
from fixtures_run import write_tiny_dataset

from harness.pods import make_plan, task_yaml

REPO = Path(__file__).resolve().parents[1]
FAKE = REPO / "tests" / "fake_trainers" / "native"
TEMPLATE = REPO / "submission_template"
IMAGE = "ghcr.io/example/pgolf@sha256:" + "ab" * 32


pgolf = functools.partial(run_pgolf, timeout=600)


# ---------------------------------------------------------------- pgolf launch


def test_launch_writes_a_task_and_one_sky_launch_per_pod(tmp_path: Path) -> None:
    out = tmp_path / "pods"
    proc = pgolf(
        "launch", str(TEMPLATE), "--seeds", "42,0,1234", "--pods", "3", "--image", IMAGE, "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    commands = (out / "commands.sh").read_text()
    assert proc.stdout.count("sky launch") == 3 and commands.count("sky launch") == 3
    for seed in (42, 0, 1234):
        assert f"--env SEEDS={seed} {out / 'task.yaml'} &" in commands
        assert (
            f"pgolf-submission-template-s{seed}:/runs/submission-template/ {out}/pgolf-submission-template-s{seed}/"
            in commands
        )
    assert f"pgolf gather {out}/pgolf-submission-template-s42 {out}/pgolf-submission-template-s0" in commands
    assert "sky down --yes pgolf-submission-template-s42 pgolf-submission-template-s0" in commands
    assert subprocess.run(["bash", "-n", str(out / "commands.sh")]).returncode == 0
    task = (out / "task.yaml").read_text()
    assert "accelerators: H100:8" in task and f"image_id: docker:{IMAGE}" in task


def test_fewer_pods_than_seeds_deals_seeds_round_robin(tmp_path: Path) -> None:
    plan = make_plan(TEMPLATE, seeds=[42, 0, 1234, 7], pods=2, image=IMAGE)
    assert plan.seed_groups == [(42, 1234), (0, 7)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pods", "4"], "--pods 4: expected 1 to 3"),
        (["--image", "pgolf"], "--image 'pgolf': expected a pushed image"),
        (["--seeds", "1,1"], "expected one or more distinct integers"),
        (["--variant", "sp9999"], "unknown variant 'sp9999'"),
    ],
)
def test_launch_refuses_bad_input_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    base = {"--seeds": "42,0,1234", "--image": IMAGE}
    for k in args[::2]:
        base.pop(k, None)
    flat = [x for kv in base.items() for x in kv]
    proc = pgolf("launch", str(TEMPLATE), *flat, *args, "--out", str(tmp_path / "o"))
    assert proc.returncode == 1
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_launch_without_a_trainer_is_refused(tmp_path: Path) -> None:
    proc = pgolf("launch", str(tmp_path), "--image", IMAGE)
    assert proc.returncode == 1 and "train_gpt.py: not found" in proc.stderr


# SkyPilot cannot share an environment with pgolf (it pins click < 8.2, huggingface_hub 2.x needs
# >= 8.4.2), so its parser runs in its own interpreter: PGOLF_SKY_PYTHON (the nox session makes one),
# else this one when it has SkyPilot.
SKY_PARSE = """
import json, sys
import sky
from sky.utils.yaml_utils import read_yaml
path, seeds = sys.argv[1], sys.argv[2]
# What `sky launch --env SEEDS=... task.yaml` does with the file.
task = sky.Task.from_yaml_config(read_yaml(path), env_overrides=[("SEEDS", seeds)])
(res,) = task.resources
print(json.dumps({
    "envs": dict(task.envs), "accelerators": res.accelerators, "image": res.extract_docker_image(),
    "cloud": str(res.cloud).lower(), "workdir": task.workdir, "setup": task.setup, "run": task.run,
}))
"""


def sky_python() -> str:
    if os.environ.get("PGOLF_SKY_PYTHON"):
        return os.environ["PGOLF_SKY_PYTHON"]
    if importlib.util.find_spec("sky") is None:
        pytest.skip("SkyPilot not installed (the nox session sets PGOLF_SKY_PYTHON to its own environment)")
    return sys.executable


def test_skypilot_parses_the_task_with_each_pods_seeds(tmp_path: Path) -> None:
    python = sky_python()
    plan = make_plan(TEMPLATE, seeds=[42, 0, 1234], pods=3, image=IMAGE, cloud="runpod", train_shards=80)
    path = tmp_path / "task.yaml"
    path.write_text(task_yaml(plan))
    for group in plan.seed_groups:
        seeds = ",".join(map(str, group))
        proc = subprocess.run(
            [python, "-c", SKY_PARSE, str(path), seeds], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        task = json.loads(proc.stdout.strip().splitlines()[-1])
        assert task["envs"]["SEEDS"] == seeds and task["envs"]["PGOLF_IMAGE"] == IMAGE
        assert task["accelerators"] == {"H100": 8}
        assert task["image"] == IMAGE
        assert task["cloud"] == "runpod"
        assert task["workdir"] == str(TEMPLATE)
        assert (
            "pgolf fetch --variant caseops --revision main --quiet --train-shards 80 --data-dir /data"
            in task["setup"]
        )
        assert (
            "pgolf run . --nproc 8 --data-dir /data/datasets/fineweb10B_sp8192_lossless_caps_caseops_v1_reserved"
            in task["run"]
        )
        assert '--out /runs/submission-template --resume --seeds "$SEEDS"' in task["run"]


# ---------------------------------------------------------------- pgolf gather


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("data")
    return write_tiny_dataset(d)


@pytest.fixture(scope="module")
def pod_runs(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> list[Path]:
    """Two pods' run directories (seeds 42,0 and 1234), made by `pgolf run` at the same time."""
    root = tmp_path_factory.mktemp("pods")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PGOLF_IMAGE": IMAGE}
    jobs = []
    for name, seeds in (("pod-a", "42,0"), ("pod-b", "1234")):
        cmd = [sys.executable, "-m", "harness", "run", str(FAKE), "--data-dir", str(data_dir)]
        cmd += ["--out", str(root / name), "--seeds", seeds, "--quiet", "--eval-protocol", "v1"]
        jobs.append(
            subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    for job in jobs:
        out, _ = job.communicate(timeout=600)
        assert job.returncode == 0, out[-3000:]
    return [root / "pod-a", root / "pod-b"]


@pytest.mark.slow
def test_gathered_pods_are_one_run_that_package_accepts(pod_runs: list[Path], tmp_path: Path) -> None:
    merged = tmp_path / "merged"
    proc = pgolf("gather", *map(str, pod_runs), "--out", str(merged))
    assert proc.returncode == 0, proc.stderr
    assert "3 seed(s), status complete" in proc.stdout
    run = json.loads((merged / "run.json").read_text())
    assert run["seeds"] == [42, 0, 1234]
    assert [g["seeds"] for g in run["gathered_from"]] == [[42, 0], [1234]]
    for seed in (42, 0, 1234):
        assert (merged / f"seed{seed}" / "result.json").is_file()
        assert (merged / f"train_seed{seed}.log").is_file()
    records = tmp_path / "records"
    proc = pgolf(
        "package", str(merged), "--name", "Pods", "--author", "A", "--github-id", "a", "--out", str(records)
    )
    assert proc.returncode == 0, proc.stderr
    (sub,) = records.rglob("submission.json")
    assert json.loads(sub.read_text())["seeds"] == [42, 0, 1234]


def _pod_copy(src: Path, dest: Path, change: Callable[[dict[str, Any], bool], None]) -> Path:
    """A pod that ran differently: `src` with `change(record, is_run_json)` applied to run.json
    and to each seed's result.json."""
    shutil.copytree(src, dest)
    for path in [dest / "run.json", *dest.glob("seed*/result.json")]:
        record = json.loads(path.read_text())
        change(record, path.name == "run.json")
        path.write_text(json.dumps(record))
    return dest


def _set_fp(key: str, value: Any) -> Callable[[dict[str, Any], bool], None]:
    def change(record: dict[str, Any], is_run: bool) -> None:
        record["fingerprint"][key] = value
        if is_run and key == "data_lock_sha256":
            record["data"]["lock_sha256"] = value

    return change


def _longer_training(record: dict[str, Any], is_run: bool) -> None:
    record["limits"]["train_time_limit_s"] = 900.0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set_fp("data_lock_sha256", "f" * 64), "data lock digest ffffffffffff… differs"),
        (_set_fp("image", "ghcr.io/example/pgolf:other"), 'image "ghcr.io/example/pgolf:other" differs'),
        (_longer_training, '"train_time_limit_s": 900.0'),
    ],
    ids=["data", "image", "limits"],
)
def test_gather_refuses_pods_that_ran_differently(
    pod_runs: list[Path], tmp_path: Path, change: Callable[[dict[str, Any], bool], None], message: str
) -> None:
    other = _pod_copy(pod_runs[1], tmp_path / "pod-c", change)
    out = tmp_path / "merged"
    proc = pgolf("gather", str(pod_runs[0]), str(other), "--out", str(out))
    assert proc.returncode == 1
    assert message in proc.stderr and str(other) in proc.stderr, proc.stderr
    assert not out.exists(), "a refused gather wrote something"


@pytest.mark.slow
def test_gather_refuses_other_code(pod_runs: list[Path], data_dir: Path, tmp_path: Path) -> None:
    """A pod that ran another trainer (one byte more): its run is real, its code sha256 differs."""
    sub = tmp_path / "sub"
    shutil.copytree(FAKE, sub)
    with (sub / "train_gpt.py").open("a") as fh:
        fh.write("\n")
    pod = tmp_path / "pod-c"
    proc = pgolf(
        "run",
        str(sub),
        "--data-dir",
        str(data_dir),
        "--out",
        str(pod),
        "--seeds",
        "7",
        "--quiet",
        "--eval-protocol",
        "v1",
        env={"PGOLF_IMAGE": IMAGE},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = pgolf("gather", str(pod_runs[0]), str(pod), "--out", str(tmp_path / "merged"))
    assert proc.returncode == 1 and "code sha256" in proc.stderr and "differs" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_gather_refuses_code_changed_after_the_run(pod_runs: list[Path], tmp_path: Path) -> None:
    pod = tmp_path / "pod-b"
    shutil.copytree(pod_runs[1], pod)
    with (pod / "code" / "train_gpt.py").open("a") as fh:
        fh.write("# edited afterwards\n")
    proc = pgolf("gather", str(pod_runs[0]), str(pod), "--out", str(tmp_path / "merged"))
    assert proc.returncode == 1 and "the code was changed after the run" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_gather_refuses_a_seed_on_two_pods(pod_runs: list[Path], tmp_path: Path) -> None:
    twin = tmp_path / "twin"
    shutil.copytree(pod_runs[1], twin)
    proc = pgolf("gather", str(pod_runs[1]), str(twin), "--out", str(tmp_path / "merged"))
    assert proc.returncode == 1 and "seed 1234 is in both" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_gather_never_writes_into_an_existing_run(pod_runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "merged"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = pgolf("gather", *map(str, pod_runs), "--out", str(out))
    assert proc.returncode == 1 and "already exists and is not empty" in proc.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def _stand_in_tools(bin_dir: Path, failing_seed: str | None = None) -> Path:
    """`sky` and `rsync` stand-ins on PATH (no cloud is reachable here): each records its
    arguments and the time; `sky launch` takes a second, and fails for ``failing_seed``."""
    bin_dir.mkdir()
    calls = bin_dir / "calls.log"
    fail = f'[[ "$*" == *"SEEDS={failing_seed} "* ]] && exit 1' if failing_seed else ""
    (bin_dir / "sky").write_text(
        f'#!/usr/bin/env bash\necho "start $(date +%s.%N) sky $*" >>{calls}\nsleep 1\n{fail}\n'
        f'echo "end $(date +%s.%N) sky $*" >>{calls}\n'
    )
    (bin_dir / "rsync").write_text(f'#!/usr/bin/env bash\necho "rsync $*" >>{calls}\nmkdir -p "${{@: -1}}"\n')
    for tool in ("sky", "rsync"):
        (bin_dir / tool).chmod(0o755)
    return calls


def test_launch_run_starts_every_pod_at_once_then_collects(tmp_path: Path) -> None:
    calls = _stand_in_tools(tmp_path / "bin")
    out = tmp_path / "pods"
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    proc = pgolf("launch", str(TEMPLATE), "--image", IMAGE, "--out", str(out), "--run", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = calls.read_text().splitlines()
    starts = [float(ln.split()[1]) for ln in lines if ln.startswith("start")]
    ends = [float(ln.split()[1]) for ln in lines if ln.startswith("end")]
    assert len(starts) == 3 and max(starts) < min(ends), "the pods were launched one after another"
    assert [ln.split()[-1] for ln in lines if ln.startswith("rsync")] == [
        f"{out}/pgolf-submission-template-s{seed}/" for seed in (42, 0, 1234)
    ]
    assert f"pgolf gather {out}/pgolf-submission-template-s42" in proc.stdout


def test_launch_run_reports_a_failed_pod_and_keeps_the_others(tmp_path: Path) -> None:
    _stand_in_tools(tmp_path / "bin", failing_seed="0")
    env = {"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    proc = pgolf("launch", str(TEMPLATE), "--image", IMAGE, "--out", str(tmp_path / "o"), "--run", env=env)
    assert proc.returncode == 1
    assert "failed: sky launch --yes --cluster pgolf-submission-template-s0" in proc.stderr
    assert "sky down --yes pgolf-submission-template-s42 pgolf-submission-template-s0" in proc.stderr
