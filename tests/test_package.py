"""`pgolf package`: record folders from a run directory, refusals, --pack-code, plots, `pgolf stats`.

Most tests package a RUN_DIR written by tests/fixtures_run.py (the layout and numbers
`pgolf run` writes); one packages a real `pgolf run` of the fake native trainer, and the
packed-code tests run the original and the packed program side by side.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import matplotlib.image
import matplotlib.pyplot as plt
import pytest
from fixtures_run import DEFAULT_CODE, DEFAULT_FINGERPRINT, make_run_dir

from harness import stats
from harness.cli import build_parser
from harness.cli import main as cli_main
from harness.errors import PgolfError
from harness.fingerprint import first_distribution
from harness.package import (
    PLOT_FILE,
    READABLE_CODE_FILE,
    SUBMISSION_FILE,
    load_scores,
    machine_paths,
    package_run,
    read_template,
    scrub_paths,
)
from harness.packcode import is_packed, minify_source, pack_source, unpack_source
from harness.plots import SeedCurves, curves_figure, curves_from_events, render_curves_png
from harness.results import RUN_FILE, load_schema
from harness.rules import RULES

REPO = Path(__file__).resolve().parents[1]
BASELINE_BPB = 1.0810  # the leaderboard best the published 1.0611 record compared against


def package(run: Path, out: Path, **kw: Any) -> Path:
    args: dict[str, Any] = {
        "name": "TinyRecord",
        "author": "Ada Lovelace",
        "github_id": "ada",
        "track": "10min_16mb",
        "out_root": out,
    }
    args.update(kw)
    return package_run(run, **args)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


# --------------------------------------------------------------------------- the good path


def test_package_good_run_makes_a_complete_schema_valid_record(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run")
    dest = package(run, tmp_path / "records", baseline_bpb=BASELINE_BPB)

    assert dest.parent.name == "track_10min_16mb" and dest.parent.parent == tmp_path / "records"
    assert RULES.parse_record_dir_name(dest.name) is not None and dest.name.endswith("_TinyRecord")
    for f in RULES.required_record_files:
        assert (dest / f).is_file(), f
    for seed in RULES.default_seeds:
        # logs and the harness's measurements travel byte for byte
        assert (dest / RULES.seed_log_name(seed)).read_bytes() == (
            run / RULES.seed_log_name(seed)
        ).read_bytes()
        assert (dest / f"seed{seed}/result.json").read_bytes() == (
            run / f"seed{seed}/result.json"
        ).read_bytes()
    assert (dest / "train_gpt.py").read_bytes() == (run / "code/train_gpt.py").read_bytes()
    assert not list(dest.parent.glob(".*partial*")), "no temporary folder left behind"

    sub = read_json(dest / SUBMISSION_FILE)
    jsonschema.validate(sub, load_schema("submission"))
    # the leaderboard's field names, all present
    for key in (
        "author",
        "github_id",
        "name",
        "blurb",
        "date",
        "track",
        "val_loss",
        "val_bpb",
        "val_loss_std",
        "val_bpb_std",
        "seeds",
        "seed_results",
        "comparison_baseline_bpb",
        "delta_vs_leaderboard_bpb",
        "delta_vs_leaderboard_nats",
        "p_value",
        "artifact_bytes_mean",
        "artifact_bytes_max",
        "bytes_total",
        "bytes_code",
        "hardware",
        "pytorch_version",
        "cuda_version",
        "flash_attn_version",
        "technique_summary",
    ):
        assert key in sub, key
    assert sub["date"] == dest.name[:10]
    assert sub["seeds"] == list(RULES.default_seeds)

    # every per-seed number is the result.json number
    results = {s: read_json(run / f"seed{s}/result.json") for s in RULES.default_seeds}
    for s, res in results.items():
        row = sub["seed_results"][str(s)]
        for key in (
            "val_loss",
            "val_bpb",
            "artifact_bytes",
            "steps",
            "step_avg_ms",
            "train_time_s",
            "eval_time_s",
        ):
            assert row[key] == res[key], (s, key)
    losses = [results[s]["val_loss"] for s in RULES.default_seeds]
    bpbs = [results[s]["val_bpb"] for s in RULES.default_seeds]
    assert sub["val_loss"] == pytest.approx(sum(losses) / 3, rel=1e-12)
    assert sub["val_bpb"] == pytest.approx(sum(bpbs) / 3, rel=1e-12)
    m = sum(losses) / 3
    assert sub["val_loss_std"] == pytest.approx(math.sqrt(sum((x - m) ** 2 for x in losses) / 2), rel=1e-9)
    assert sub["artifact_bytes_max"] == max(r["artifact_bytes"] for r in results.values())
    assert sub["bytes_total"] == sub["artifact_bytes_max"]
    assert sub["bytes_code"] == len(DEFAULT_CODE.encode())
    assert sub["comparison_baseline_bpb"] == BASELINE_BPB
    assert sub["delta_vs_leaderboard_bpb"] == pytest.approx(sub["val_bpb"] - BASELINE_BPB)
    # ~0.0437 nats better than the baseline, std ~0.0024: a record at p < 0.01
    assert -0.05 < sub["delta_vs_leaderboard_nats"] < -0.04
    assert sub["p_value"] < RULES.significance_p and sub["statistics"]["significant"] is True
    assert sub["record_claim"] is True and sub["rehearsal"] is False
    assert sub["hardware"] == "8xNVIDIA H100 80GB HBM3"
    assert sub["pytorch_version"] == "2.9.1+cu128"
    assert sub["compliance"]["verdict"] == "pass"
    assert {r["rule"] for r in sub["compliance"]["rules"]} >= {"train_time", "eval_time", "artifact_bytes"}
    assert sub["isolation"]["network"] == "netns"
    # the files manifest is what is on disk
    for name, entry in sub["files"].items():
        data = (dest / name).read_bytes()
        assert entry["bytes"] == len(data)
    assert set(sub["files"]) == {p for p in tree(dest) if (dest / p).is_file()} - {
        "submission.json",
        "README.md",
    }


def test_readme_has_tables_significance_compliance_and_plot(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run")
    dest = package(run, tmp_path / "records", baseline_bpb=BASELINE_BPB)
    readme = (dest / "README.md").read_text("utf-8")
    sub = read_json(dest / SUBMISSION_FILE)
    placeholders = set(re.findall(r"\$(\w+)", read_template()))
    assert placeholders and not any(f"${p}" in readme for p in placeholders), (
        "an unfilled template placeholder"
    )
    for s in RULES.default_seeds:
        r = sub["seed_results"][str(s)]
        row = next(line for line in readme.splitlines() if line.startswith(f"| {s} |"))
        assert f"{r['val_loss']:.5f}" in row and f"{r['val_bpb']:.5f}" in row
        assert f"{r['artifact_bytes']:,}" in row and f"{r['train_time_s']:.1f}" in row
    st = sub["statistics"]
    assert f"{st['val_bpb_mean']:.5f} ± {st['val_bpb_std']:.5f}" in readme
    assert f"p = {st['p_value']:.3g}" in readme and "**significant**" in readme
    for rule in sub["compliance"]["rules"]:
        assert f"| {rule['rule']} |" in readme
    assert "network `netns`" in readme
    assert f"![training loss and val_bpb of every seed]({PLOT_FILE})" in readme
    img = matplotlib.image.imread(dest / PLOT_FILE)
    assert img.shape[0] > 200 and img.shape[1] > 400
    assert "pgolf run records/track_10min_16mb/" in readme  # reproduce command
    assert "torch_version" in readme  # environment fingerprint


def test_reproduce_command_carries_the_limits_processes_and_environment(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run")
    run_json = read_json(run / "run.json")
    run_json["env"] = {"NUM_LAYERS": "11"}
    (run / "run.json").write_text(json.dumps(run_json))
    dest = package(run, tmp_path / "records", baseline_bpb=BASELINE_BPB)
    sub = read_json(dest / SUBMISSION_FILE)
    lines = sub["reproduce"].splitlines()
    first = read_json(dest / "seed42" / "result.json")
    lim = first["limits"]
    data_dir = Path(run_json["data"]["data_dir"]).name
    assert f"DATA_DIR=/data/datasets/{data_dir}" in lines
    run_line = next(line for line in lines if line.startswith("pgolf run "))
    assert shlex.split(run_line) == [
        "pgolf", "run", f"records/track_10min_16mb/{dest.name}", "--data-dir", "$DATA_DIR",
        "--seeds", "42,0,1234", "--nproc", str(first["nproc"]),
        "--train-limit-s", f"{lim['train_time_limit_s']:g}", "--eval-limit-s", f"{lim['eval_time_limit_s']:g}",
        "--artifact-cap-bytes", str(lim["artifact_cap_bytes"]), "--setup-allowance-s", f"{lim['setup_allowance_s']:g}",
        "--policy", first["policy"], "--protocol", first["protocol"], "--env", "NUM_LAYERS=11",
        "--out", "runs/reproduce",
    ]  # fmt: skip
    assert '--data-dir "$DATA_DIR"' in run_line  # quoted: a path with spaces still works
    assert lines[-1].startswith("pgolf package runs/reproduce --name TinyRecord")
    assert f"```sh\n{sub['reproduce']}\n```" in (dest / "README.md").read_text("utf-8")
    # The command parses with the real CLI (every flag exists, every value is accepted).
    args = build_parser().parse_args([a.replace("$DATA_DIR", "/d") for a in shlex.split(run_line)[1:]])
    assert (args.nproc, args.seeds, args.env) == (first["nproc"], "42,0,1234", ["NUM_LAYERS=11"])
    build_parser().parse_args(shlex.split(lines[-1])[1:])


def test_every_hash_is_labelled_with_what_it_covers(tmp_path: Path) -> None:
    dest = package(make_run_dir(tmp_path / "run"), tmp_path / "records", baseline_bpb=BASELINE_BPB)
    readme = (dest / "README.md").read_text("utf-8")
    sub = read_json(dest / SUBMISSION_FILE)
    assert set(sub["hashes_cover"]) == {
        "code.source_sha256", "fingerprint.code_sha256", "fingerprint.data_lock_sha256", "files.<name>.sha256",
    }  # fmt: skip
    for line in readme.splitlines():
        for digest in re.findall(r"\b[0-9a-f]{64}\b|\b[0-9a-f]{16}…", line):
            assert "sha256 of" in line or "sha256 over" in line, f"unlabelled hash {digest} in: {line}"


def test_numbers_follow_result_json_not_anything_typed(tmp_path: Path) -> None:
    losses = [2.5, 2.6, 2.7]
    run = make_run_dir(tmp_path / "run", val_losses=losses)
    sub = read_json(package(run, tmp_path / "records") / SUBMISSION_FILE)
    assert sub["val_loss"] == pytest.approx(2.6)
    assert sub["val_loss_std"] == pytest.approx(0.1)
    # no baseline: no test, no claim
    assert sub["p_value"] is None and sub["comparison_baseline_bpb"] is None
    assert sub["record_claim"] is False


# --------------------------------------------------------------------------- refusals


def refused(tmp_path: Path, run: Path, match: str, **kw: Any) -> None:
    out = tmp_path / "records"
    with pytest.raises(PgolfError, match=match) as info:
        package(run, out, **kw)
    assert "\n" not in str(info.value), "one-line message"
    assert tree(out) in ([], ["track_10min_16mb"], ["track_non_record_16mb"]), "nothing written"
    for t in out.glob("track_*"):
        assert not any(t.iterdir())


def test_refuses_a_seed_that_failed_a_limit(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", seed_fields={0: {"train_time_s": 612.5}})
    refused(tmp_path, run, r"seed 0 failed limit train_time: measured 612\.5, limit 600")


def test_refuses_an_oversize_artifact(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", seed_fields={1234: {"model_bytes": 16_000_000}})
    refused(tmp_path, run, "seed 1234 failed limit artifact_bytes")


def test_refuses_a_crashed_seed(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", crashed=(1234,))
    refused(tmp_path, run, "seed 1234 crashed: eval phase exited")


def test_refuses_a_requested_seed_without_result(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run")
    shutil.rmtree(run / "seed0")
    refused(tmp_path, run, "seed 0: no .*result.json")


def test_refuses_a_rehearsal_on_a_record_track(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", rehearsal=True)
    refused(tmp_path, run, "rehearsal run and cannot be packaged to record track")


def test_refuses_too_few_seeds_for_a_record(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", seeds=(42, 0))
    refused(tmp_path, run, f"needs at least {RULES.min_record_seeds}")


def test_force_is_refused_on_a_record_track(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", seed_fields={0: {"train_time_s": 612.5}})
    refused(tmp_path, run, "--force is only for non-record tracks", force=True)


def test_refuses_code_changed_after_the_run(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run")
    (run / "code/train_gpt.py").write_text(DEFAULT_CODE + "# edited\n", "utf-8")
    refused(tmp_path, run, "sha256 .* differs .* the code was changed after the run")


def test_refuses_a_missing_log(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run")
    (run / RULES.seed_log_name(42)).unlink()
    refused(tmp_path, run, "train_seed42.log: not found")


def test_refuses_a_corrupt_result(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run")
    (run / "seed42/result.json").write_text('{"seed": 42', "utf-8")
    refused(tmp_path, run, r"seed42/result.json: not valid JSON")


@pytest.mark.parametrize("name", ["bad name", "-x", "a/b", ""])
def test_refuses_a_bad_name(tmp_path: Path, name: str) -> None:
    run = make_run_dir(tmp_path / "run")
    refused(tmp_path, run, "--name", name=name)


def test_refuses_an_unknown_track_and_a_bad_baseline(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run")
    refused(tmp_path, run, "--track 'fast'", track="fast")
    refused(tmp_path, run, "--baseline-bpb", baseline_bpb=float("nan"))


def test_refuses_to_overwrite_an_existing_record(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run")
    dest = package(run, tmp_path / "records")
    before = (dest / SUBMISSION_FILE).read_bytes()
    with pytest.raises(PgolfError, match="already exists"):
        package(run, tmp_path / "records")
    assert (dest / SUBMISSION_FILE).read_bytes() == before


# --------------------------------------------------------------------------- non-record, rehearsal, --force


def test_rehearsal_packages_to_the_non_record_track(tmp_path: Path) -> None:
    run = make_run_dir(
        tmp_path / "run",
        rehearsal=True,
        limits={"train_time_limit_s": 60.0},
        seed_fields={s: {"train_time_s": 55.0} for s in RULES.default_seeds},
    )
    dest = package(run, tmp_path / "records", track="non_record_16mb")
    sub = read_json(dest / SUBMISSION_FILE)
    assert sub["rehearsal"] is True and sub["record_claim"] is False
    assert sub["limits"]["train_time_limit_s"] == 60.0
    readme = (dest / "README.md").read_text("utf-8")
    assert "(rehearsal)" in readme.splitlines()[0] and "**rehearsal**" in readme


def test_force_on_non_record_keeps_failed_and_leaves_out_crashed(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", seed_fields={0: {"eval_time_s": 640.0}}, crashed=(1234,))
    with pytest.raises(PgolfError, match="--force packages"):
        package(run, tmp_path / "records", track="non_record_16mb")
    dest = package(run, tmp_path / "records", track="non_record_16mb", force=True)
    sub = read_json(dest / SUBMISSION_FILE)
    assert sub["seeds"] == [42, 0]
    assert sub["seed_results"]["0"]["status"] == "failed"
    assert sub["forced"] is True and "1234" in sub["excluded_seeds"]
    assert sub["compliance"]["verdict"] == "fail"
    eval_rule = next(r for r in sub["compliance"]["rules"] if r["rule"] == "eval_time")
    assert (
        eval_rule["verdict"] == "fail"
        and eval_rule["measured"] == 640.0
        and eval_rule["seeds"]["0"] == "fail"
    )
    # --force also replaces the folder it made before
    again = package(run, tmp_path / "records", track="non_record_16mb", force=True)
    assert again == dest


def test_single_seed_non_record_has_no_spread(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", seeds=(7,))
    sub = read_json(
        package(run, tmp_path / "records", track="non_record_16mb", baseline_bpb=1.2244) / SUBMISSION_FILE
    )
    assert (
        sub["val_loss_std"] is None and sub["p_value"] is None and sub["statistics"]["seeds_needed"] is None
    )


def test_extra_code_files_and_requirements_are_shipped(tmp_path: Path) -> None:
    tok = b"\x00\x01sentencepiece-model-bytes"
    run = make_run_dir(
        tmp_path / "run",
        extra_code_files={
            "tokenizer/sp.model": tok,
            "requirements.txt": b"torch==2.9.1\nbrotli\n",
            "README.md.tmpl": b"# $title\n",
        },
    )
    dest = package(run, tmp_path / "records")
    assert (dest / "tokenizer/sp.model").read_bytes() == tok
    assert not (dest / "README.md.tmpl").exists()  # pgolf's template is never part of a record
    assert (dest / "requirements.txt").read_text() == "torch==2.9.1\nbrotli\n"


def test_generated_requirements_follow_imports_and_fingerprint(tmp_path: Path) -> None:
    code = "import os\nimport numpy as np\nimport torch\nfrom flash_attn_interface import f\nprint(1)\n"
    run = make_run_dir(tmp_path / "run", code=code)
    req = (package(run, tmp_path / "records") / "requirements.txt").read_text()
    lines = [line for line in req.splitlines() if not line.startswith("#")]
    # flash_attn_interface is flash-attn 3, whose pip name is flash_attn_3 (what the fingerprint found)
    assert lines == ["flash_attn_3==3.0.0b1", "numpy", "torch==2.9.1"]


def test_fingerprint_names_the_distribution_it_found() -> None:
    assert first_distribution("surely-not-installed-pgolf", "numpy") == (
        "numpy",
        importlib.metadata.version("numpy"),
    )
    assert first_distribution("surely-not-installed-pgolf") == (None, None)


def test_generated_requirements_pin_flash_attn_to_the_distribution_the_run_had(tmp_path: Path) -> None:
    code = (
        "import torch\n"
        "try:\n    from flash_attn_interface import flash_attn_func\nexcept ImportError:\n    pass\n"
        "try:\n    from flash_attn.cute import interface\nexcept ImportError:\n    pass\n"
    )
    fp = dict(DEFAULT_FINGERPRINT, flash_attn_version="4.0.0b36", flash_attn_distribution="flash-attn-4")
    run = make_run_dir(tmp_path / "run", code=code, fingerprint=fp)
    req = (package(run, tmp_path / "records") / "requirements.txt").read_text()
    lines = [line for line in req.splitlines() if not line.startswith("#")]
    assert lines == ["flash-attn-4==4.0.0b36", "flash_attn_3", "torch==2.9.1"]
    # an older fingerprint that does not say whose version it is, and both imported: pin neither
    fp.pop("flash_attn_distribution")
    run = make_run_dir(tmp_path / "run2", code=code, fingerprint=fp)
    req = (package(run, tmp_path / "records2") / "requirements.txt").read_text()
    assert [line for line in req.splitlines() if not line.startswith("#")] == [
        "flash-attn-4",
        "flash_attn_3",
        "torch==2.9.1",
    ]
    # an older fingerprint and a single flash-attn import: the version can only be that one's
    run = make_run_dir(tmp_path / "run3", code="from flash_attn.cute import interface\n", fingerprint=fp)
    req = (package(run, tmp_path / "records3") / "requirements.txt").read_text()
    assert [line for line in req.splitlines() if not line.startswith("#")] == ["flash-attn-4==4.0.0b36"]


# --------------------------------------------------------------------------- --pack-code


def run_python(
    script: Path, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_packed_fixture_trainer_runs_identically(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run")
    dest = package(run, tmp_path / "records", pack_code=True)
    packed = dest / "train_gpt.py"
    readable = dest / READABLE_CODE_FILE
    assert is_packed(packed.read_text()) and readable.read_text() == DEFAULT_CODE
    a = run_python(readable, tmp_path, "x", "--flag", env={"SEED": "7"})
    b = run_python(packed, tmp_path, "x", "--flag", env={"SEED": "7"})
    assert a.returncode == b.returncode == 0, b.stderr
    assert a.stdout == b.stdout and "fixture-trainer acc=" in a.stdout and "name=__main__" in a.stdout
    sub = read_json(dest / SUBMISSION_FILE)
    assert sub["code"]["packed"] is True and sub["code"]["source_file"] == READABLE_CODE_FILE
    assert sub["bytes_code"] == sub["code"]["counted_bytes"] == len(packed.read_bytes())
    # the artifact total counts the shipped (packed) code in place of the code that ran
    assert sub["bytes_total"] == sub["artifact_bytes_max"] - len(DEFAULT_CODE.encode()) + sub["bytes_code"]


def test_pack_source_keeps_semantics_tracebacks_and_getsource(tmp_path: Path) -> None:
    src = '''"""Module doc."""
from __future__ import annotations
import inspect
import sys
from dataclasses import dataclass

# comment that costs bytes
@dataclass
class Cfg:
    """Class doc."""
    n: int = 3

def f(x: int) -> int:
    """Function doc: dropped when packed."""
    return x * Cfg().n

def boom() -> None:
    raise ValueError("boom at a known line")

print(__name__, [f(i) for i in range(4)], sys.argv[1:], inspect.getsource(f).splitlines()[0])
if "--boom" in sys.argv:
    boom()
if "--caught" in sys.argv:
    import traceback
    try:
        boom()
    except ValueError:
        print(traceback.format_exc())
'''
    (tmp_path / "orig.py").write_text(src)
    (tmp_path / "packed.py").write_text(pack_source(src))
    a = run_python(tmp_path / "orig.py", tmp_path, "1")
    b = run_python(tmp_path / "packed.py", tmp_path, "1")
    assert a.returncode == b.returncode == 0, b.stderr
    assert a.stdout == b.stdout == "__main__ [0, 3, 6, 9] ['1'] def f(x: int) -> int:\n"
    a = run_python(tmp_path / "orig.py", tmp_path, "--boom")
    b = run_python(tmp_path / "packed.py", tmp_path, "--boom")
    assert a.returncode == b.returncode == 1
    assert (
        b.stderr.strip().splitlines()[-1]
        == a.stderr.strip().splitlines()[-1]
        == "ValueError: boom at a known line"
    )
    assert ", in boom" in b.stderr
    # tracebacks formatted by the traceback module (logging, torch elastic) show the source line
    b = run_python(tmp_path / "packed.py", tmp_path, "--caught")
    assert b.returncode == 0 and "raise ValueError('boom at a known line')" in b.stdout


def test_unpack_recovers_the_minified_program_without_running_it() -> None:
    src = 'import sys\n# c\nraise SystemExit("would exit if run")\n'
    packed = pack_source(src)
    assert unpack_source(packed) == minify_source(src)
    assert ast.dump(ast.parse(unpack_source(packed))) == ast.dump(ast.parse(src))
    with pytest.raises(PgolfError, match="not a pgolf packed file"):
        unpack_source(src)
    with pytest.raises(PgolfError, match="corrupt"):
        unpack_source(packed.replace(packed[80:90], "AAAAAAAAAA", 1))
    with pytest.raises(PgolfError, match="not valid Python"):
        pack_source("def (:\n")


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return tree


REFERENCE_TRAINER = REPO / "submission_template" / "train_gpt.py"
TINY_ENV = {
    "COMPILE": "0",
    "NUM_LAYERS": "2",
    "MODEL_DIM": "64",
    "NUM_HEADS": "4",
    "NUM_KV_HEADS": "2",
    "MLP_MULT": "2",
    "TRAIN_SEQ_LEN": "128",
    "TRAIN_BATCH_TOKENS": "1024",
    "MAX_MICRO_BATCH_TOKENS": "1024",
    "LR_WARMUP_STEPS": "1",
    "ITERATIONS": "3",
    "EXPORT_MODE": "simple",
    "VAL_TOKEN_LIMIT": "4096",
    "VAL_BATCH_TOKENS": "2048",
    "NUM_THREADS": "1",
    "SEED": "7",
    "EXPORT_RESERVE_SECONDS": "0",
    "GPTQ_CALIB_TOKENS": "1024",
}


def _events(stdout: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        if line.startswith(":::PGOLF "):
            ev = json.loads(line[len(":::PGOLF ") :])
            ev.pop("step_ms", None)  # wall-clock measurement: differs between any two runs
            out.append(ev)
    return out


@pytest.mark.slow
@pytest.mark.skipif(not REFERENCE_TRAINER.exists(), reason="reference trainer not written yet (issue 7)")
def test_packed_reference_trainer_is_the_same_program_and_trains_identically(
    tmp_path: Path, proxy_dir: Path, tokenizers_dir: Path
) -> None:
    src = REFERENCE_TRAINER.read_text("utf-8")
    packed = pack_source(src)
    assert len(packed.encode()) < len(src.encode()) / 2, "packing should at least halve a real trainer"
    # Same program: the AST of what the packed file runs equals the source's, docstrings aside.
    assert ast.dump(ast.parse(unpack_source(packed))) == ast.dump(_strip_docstrings(ast.parse(src)))
    # And it trains the same: three steps of a tiny model, standalone, both forms.
    tok = sorted(tokenizers_dir.glob("*caseops*.model"))
    if not tok:
        pytest.skip(f"no CaseOps tokenizer in {tokenizers_dir}")
    env = {**TINY_ENV, "DATA_PATH": str(proxy_dir / "sp8192_caseops"), "TOKENIZER_PATH": str(tok[0])}
    outs = []
    for label, text in (("orig", src), ("packed", packed)):
        d = tmp_path / label
        d.mkdir()
        (d / "train_gpt.py").write_text(text, "utf-8")
        r = run_python(d / "train_gpt.py", d, env=env)
        assert r.returncode == 0, f"{label}: {r.stderr[-2000:]}"
        outs.append(_events(r.stdout))
    assert outs[0] == outs[1]
    assert any(e["event"] == "eval_end" for e in outs[0])


# --------------------------------------------------------------------------- a real `pgolf run`


FAKE_TRAINER_DIR = REPO / "tests" / "fake_trainers" / "native"


@pytest.mark.slow
def test_package_a_real_pgolf_run_and_rerun_the_packed_folder(tmp_path: Path, proxy_dir: Path) -> None:
    data = proxy_dir / "sp8192_caseops"
    run = tmp_path / "run"
    rc = cli_main(
        [
            "run",
            str(FAKE_TRAINER_DIR),
            "--data-dir",
            str(data),
            "--seeds",
            "5",
            "--nproc",
            "1",
            "--out",
            str(run),
            "--quiet",
            "--eval-protocol",  # this fake reads val shards and writes RESULT_PATH
            "v1",
        ]
    )
    assert rc == 0
    dest = package(run, tmp_path / "records", track="non_record_16mb", pack_code=True, baseline_bpb=1.2244)
    sub = read_json(dest / SUBMISSION_FILE)
    jsonschema.validate(sub, load_schema("submission"))
    res = read_json(run / "seed5/result.json")
    assert sub["seed_results"]["5"]["val_bpb"] == res["val_bpb"]
    assert sub["hardware"] == "1 CPU process"
    # The packed record folder is itself a submission: running it gives the same score.
    rerun = tmp_path / "rerun"
    rc = cli_main(
        [
            "run",
            str(dest),
            "--data-dir",
            str(data),
            "--seeds",
            "5",
            "--nproc",
            "1",
            "--out",
            str(rerun),
            "--quiet",
            "--eval-protocol",  # this fake reads val shards and writes RESULT_PATH
            "v1",
        ]
    )
    assert rc == 0
    res2 = read_json(rerun / "seed5/result.json")
    assert res2["status"] == "ok"
    assert (res2["val_loss"], res2["val_bpb"], res2["steps"]) == (
        res["val_loss"],
        res["val_bpb"],
        res["steps"],
    )
    # Only the packed file counts as code when the folder runs (the readable copy is not *.py).
    assert res2["code_bytes"] == sub["bytes_code"] < res["code_bytes"]
    # Packaging the re-run does not carry the first record's generated files along.
    dest2 = package(rerun, tmp_path / "records2", track="non_record_16mb")
    files2 = read_json(dest2 / SUBMISSION_FILE)["files"]
    assert READABLE_CODE_FILE not in files2
    # The re-run's result.json ships unchanged but for this machine's paths.
    shipped = (rerun / "seed5/result.json").read_text()
    assert (dest2 / "seed5/result.json").read_text() == scrub_paths(
        shipped, machine_paths(rerun, read_json(rerun / RUN_FILE))
    )
    assert (dest2 / "train_gpt.py").read_bytes() == (dest / "train_gpt.py").read_bytes()


# --------------------------------------------------------------------------- stats and plots


def test_stats_cli_on_run_dir_and_record_folder_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run_dir(tmp_path / "run")
    dest = package(run, tmp_path / "records", baseline_bpb=BASELINE_BPB)
    assert cli_main(["stats", str(run), "--baseline-bpb", str(BASELINE_BPB), "--json"]) == 0
    from_run = json.loads(capsys.readouterr().out)
    assert cli_main(["stats", str(dest), "--json"]) == 0  # baseline read from submission.json
    from_record = json.loads(capsys.readouterr().out)
    for key in (
        "n",
        "val_loss_mean",
        "val_loss_std",
        "val_bpb_mean",
        "p_value",
        "seeds_needed",
        "baseline_loss",
    ):
        assert from_run[key] == pytest.approx(from_record[key], rel=1e-12), key
    expected = stats.record_test(from_run["val_loss"], from_run["baseline_loss"])
    assert from_run["p_value"] == pytest.approx(expected.p_value)
    assert cli_main(["stats", str(run)]) == 0
    text = capsys.readouterr().out
    assert "no baseline" in text and "2.322027" in text


def test_stats_notes_failed_and_crashed_seeds(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run", seed_fields={0: {"train_time_s": 700.0}}, crashed=(1234,))
    scores = load_scores(run)
    assert scores.seeds == [42, 0]
    assert any("seed 0 failed limit train_time" in n for n in scores.notes)
    assert any("seed 1234 crashed" in n for n in scores.notes)


def test_stats_cli_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["stats", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a directory" in err
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / SUBMISSION_FILE).write_text('{"name": "x", "val_bpb": 1.2}')
    assert cli_main(["stats", str(tmp_path / "rec")]) == 1
    assert "no seed_results" in capsys.readouterr().err


def test_package_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run_dir(tmp_path / "run")
    rc = cli_main(
        [
            "package",
            str(run),
            "--name",
            "Cli",
            "--author",
            "A",
            "--github-id",
            "a",
            "--out",
            str(tmp_path / "rec"),
            "--baseline-bpb",
            str(BASELINE_BPB),
        ]
    )
    assert rc == 0
    assert "record claim: yes" in capsys.readouterr().out
    rc = cli_main(
        [
            "package",
            str(run),
            "--name",
            "Cli2",
            "--author",
            "A",
            "--github-id",
            "a",
            "--out",
            str(tmp_path / "rec"),
            "--force",
        ]
    )
    assert rc == 1
    assert "--force is only for non-record tracks" in capsys.readouterr().err


def test_curves_from_events_skip_junk() -> None:
    events = [
        {"event": "step", "step": 1, "train_loss": 5.0},
        {"event": "step", "step": "2", "train_loss": 4.0},  # non-numeric step: skipped
        {"event": "step", "step": 3, "train_loss": None},
        {"event": "val", "step": 3, "val_bpb": 1.5},
        {"event": "train_end", "step": 3},
    ]
    c = curves_from_events(1, events)
    assert c.train == [(1, 5.0)] and c.val == [(3, 1.5)]
    png = render_curves_png([c])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert render_curves_png([]).startswith(b"\x89PNG")  # empty run: still a figure, saying "no data"


# --------------------------------------------------------------------------- schema


def test_schema_leaderboard_part_accepts_existing_submissions_and_full_schema_demands_ours() -> None:
    schema = load_schema("submission")
    lenient = {**schema["$defs"]["leaderboard"], "$defs": schema["$defs"]}
    # shapes of real leaderboard submission.json files: early (few fields, ISO date-time) and late
    early = {
        "author": "Baseline",
        "github_id": "openai",
        "name": "Naive Baseline",
        "blurb": "b",
        "date": "2026-03-18T00:05:35Z",
        "val_loss": 2.06035852,
        "val_bpb": 1.21687994,
        "bytes_total": 15863068,
        "bytes_code": 48140,
    }
    late = {
        "name": "x",
        "date": "2026-04-27",
        "track": "10min_16mb",
        "val_bpb": 1.06107587,
        "seeds": [42, 0, 1234],
        "seed_results": {
            "42": {
                "val_loss": 2.31944212,
                "val_bpb": 1.05989454,
                "artifact_bytes": 15897259,
                "steps": 4945,
                "step_avg_ms": 121.3,
                "eval_time_s": 508.8,
            }
        },
        "comparison_baseline_bpb": 1.0810,
        "delta_vs_leaderboard_nats": -0.04359,
        "hardware": "8xH100 80GB SXM",
    }
    for doc in (early, late):
        jsonschema.validate(doc, lenient)
        assert not jsonschema.Draft202012Validator(schema).is_valid(doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**early, "val_bpb": "1.2"}, lenient)


# --------------------------------------------------------------------------- what pgolf check says


@pytest.mark.parametrize("pack_code", [False, True])
def test_packaged_fixture_passes_every_check_rule(tmp_path: Path, pack_code: bool) -> None:
    from harness.check import check_record

    run = make_run_dir(tmp_path / "run")
    dest = package(run, tmp_path / "records", baseline_bpb=BASELINE_BPB, pack_code=pack_code)
    report = check_record(dest)
    assert report.ok, report.failed_rules()
    assert report.verdict == "pass", [f.to_dict() for f in report.findings if f.verdict != "pass"]


def test_stats_of_older_leaderboard_folders_read_logs_or_the_single_score(tmp_path: Path) -> None:
    rec = tmp_path / "2026-03-20_Old"
    rec.mkdir()
    (rec / SUBMISSION_FILE).write_text(json.dumps({"name": "Old", "val_loss": 2.0, "val_bpb": 1.2}))
    # no seed_results and no per-seed logs: the one score of submission.json
    one = load_scores(rec)
    assert one.seeds == [None] and one.val_losses == [2.0] and one.notes
    # per-seed logs with the trainers' final lines win over it
    (rec / "train_seed1.log").write_text(
        "step:10/10 val_loss:2.1 val_bpb:1.3 train_time:1ms step_avg:1ms\n"
        "final_int8_zlib_roundtrip_exact val_loss:2.05000000 val_bpb:1.21000000\n"
    )
    (rec / "train_seed2.log").write_text(
        "final_int8_zlib_roundtrip_exact val_loss:2.07000000 val_bpb:1.22000000\n"
    )
    (rec / "train_seed3.log").write_text("crashed before the end\n")
    scores = load_scores(rec)
    assert scores.seeds == [1, 2]
    assert scores.val_losses == [2.05, 2.07] and scores.val_bpbs == [1.21, 1.22]
    assert any("train_seed3.log" in n for n in scores.notes)


def test_legacy_run_without_a_harness_artifact_count_uses_the_trainers_claim(tmp_path: Path) -> None:
    legacy = {
        "protocol": "legacy",
        "artifact_bytes": None,
        "model_bytes": None,
        "claimed": {"artifact_bytes": 15_700_000},
    }
    run = make_run_dir(tmp_path / "run", seed_fields={s: legacy for s in RULES.default_seeds})
    sub = read_json(package(run, tmp_path / "records") / SUBMISSION_FILE)
    row = sub["seed_results"]["42"]
    assert row["artifact_bytes"] == 15_700_000 and row["artifact_bytes_source"] == "trainer_claim"
    assert sub["artifact_bytes_max"] == 15_700_000 and sub["protocol"] == "legacy"
    rule = next(r for r in sub["compliance"]["rules"] if r["rule"] == "artifact_bytes")
    assert rule["verdict"] == "not-verifiable" and sub["compliance"]["verdict"] == "not-verifiable"
    readme = (package(run, tmp_path / "records2") / "README.md").read_text()
    assert "15,700,000 (trainer claim)" in readme


def test_machine_paths_are_replaced_by_whole_components_only() -> None:
    paths = {"/tmp": "$TMPDIR", "/tmp/x/run": "$RUN_DIR", "/home/ada": "~"}
    text = "/tmp/x/run/.stage/a /tmpfoo /tmp/y /home/ada/.venv/bin/python /home/adam"
    assert scrub_paths(text, paths) == "$RUN_DIR/.stage/a /tmpfoo $TMPDIR/y ~/.venv/bin/python /home/adam"


def test_curves_show_each_seeds_final_score_on_the_whole_runs_step_axis() -> None:
    finals = {42: (4930, 1.0712), 0: (4911, 1.0731), 1234: (4925, 1.0698)}
    curves = [
        SeedCurves(
            seed=s, train=[(i, 6.0 / (1 + i / 100)) for i in range(0, step, 50)], final_bpb=b, final_step=step
        )
        for s, (step, b) in finals.items()
    ]
    fig = curves_figure(curves)
    try:
        ax_loss, ax_bpb = fig.axes
        assert ax_bpb.get_xlim() == ax_loss.get_xlim()  # one step axis for both panels
        left, right = ax_bpb.get_xlim()
        assert left == 0 and right >= 4930
        stars = [tuple(c.get_offsets()[0]) for c in ax_bpb.collections]
        assert sorted(stars) == sorted(finals.values())
        low, high = ax_bpb.get_ylim()
        assert low < 1.0698 and high > 1.0731 and high - low < 0.02  # the spread is visible, not a dot
        labels = {t.get_text() for t in ax_bpb.texts}
        assert {f"{b:.4f}" for _, b in finals.values()} <= labels
        legend = [t.get_text() for t in ax_bpb.get_legend().get_texts()]
        assert f"mean of finals {sum(b for _, b in finals.values()) / 3:.4f}" in legend
    finally:
        plt.close(fig)


def test_shipped_logs_and_records_carry_no_machine_path(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "run")
    run_json = read_json(run / "run.json")
    run_json["submission"]["source_dir"] = str(tmp_path / "my_sub")
    run_json["data"]["data_dir"] = str(tmp_path / "data" / "datasets" / "sp")
    run_json["command"] = ["pgolf", "run", str(tmp_path / "my_sub"), "--out", str(run)]
    (run / "run.json").write_text(json.dumps(run_json))
    log = run / "train_seed42.log"
    log.write_text(
        f"[pgolf] seed 42 phase train: {sys.executable} -m torch.distributed.run train_gpt.py\n"
        f"train_gpt.py: error: {run}/.stage/seed42/train_data/fineweb_train_000000.bin: truncated\n"
        + log.read_text()
    )
    dest = package(run, tmp_path / "records", baseline_bpb=BASELINE_BPB)
    for p in dest.rglob("*"):
        if p.is_file() and p.suffix != ".png":
            text = p.read_text("utf-8", errors="replace")
            for needle in (str(tmp_path), sys.prefix, str(Path.home())):
                assert needle not in text, f"{p.relative_to(dest)} names {needle}"
    shipped = (dest / "train_seed42.log").read_text("utf-8")
    assert "$RUN_DIR/.stage/seed42/train_data/fineweb_train_000000.bin" in shipped
    assert "$PYTHON_PREFIX/" in shipped
    assert read_json(dest / "run.json")["submission"]["source_dir"] == "$SUBMISSION_DIR"
    # The code is shipped byte for byte; the manifest lists what is on disk.
    assert (dest / "train_gpt.py").read_bytes() == (run / "code" / "train_gpt.py").read_bytes()
    sub = read_json(dest / SUBMISSION_FILE)
    assert sub["files"]["train_seed42.log"]["bytes"] == (dest / "train_seed42.log").stat().st_size
