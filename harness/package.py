"""Build a leaderboard record folder from a run directory (``pgolf package``).

Record folder ``records/track_<track>/<YYYY-MM-DD>_<Name>/``::

    README.md               from submission_template/README.md.tmpl
    submission.json         leaderboard fields + pgolf's (harness/schemas/submission.schema.json)
    train_gpt.py            byte-identical to what ran (sha256 checked), or packed (--pack-code)
    train_gpt_readable.py.txt  only with --pack-code: the source that ran, byte-identical
                            (not *.py: `pgolf run` counts every .py file of a submission as code)
    <other code files>      everything else the run's code/ held (e.g. a tokenizer)
    requirements.txt        code/requirements.txt when the submission had one, else generated
    train_seed<SEED>.log    per seed, copied from the run
    seed<SEED>/result.json  the harness's measurements, copied (pgolf check reads them)
    seed<SEED>/events.jsonl the trainer's events as the harness stamped them
    run.json                when the run had one
    curves.png              training loss and val_bpb of every seed

Every number in submission.json and README.md comes from the seeds' result.json
files (or is computed from them in harness/stats.py); nothing is typed in. Any
refusal happens before the first byte is written, and the folder appears whole
(built beside its destination, then renamed).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import string
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema

from harness import __version__, stats
from harness.errors import PgolfError
from harness.fingerprint import hardware_line, sha256_bytes
from harness.logparse import read_log
from harness.packcode import minify_source, pack_source, unpack_source
from harness.plots import load_curves, render_curves_png
from harness.results import (
    CODE_DIR,
    EVENTS_FILE,
    RESULT_FILE,
    RUN_FILE,
    ResultError,
    load_schema,
    read_result,
    seed_dir,
)
from harness.rules import RULES

SUBMISSION_FILE = "submission.json"
README_FILE = "README.md"
REQUIREMENTS_FILE = "requirements.txt"
PLOT_FILE = "curves.png"
READABLE_CODE_FILE = "train_gpt_readable.py.txt"
TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "submission_template"
README_TEMPLATE = "README.md.tmpl"

_SEED_DIR_RE = re.compile(r"^seed(-?\d+)$")
_LOG_NAME_RE = re.compile(r"^train_seed(-?\d+)\.log$")
_VERDICT_RANK = {"pass": 0, "not-verifiable": 1, "fail": 2}
_NETWORK_RANK = {"netns": 2, "guard": 1}  # guard: runs before the sandbox
_FILES_RANK = {"staged": 1, "sandbox": 2}

# Third-party imports a trainer commonly has -> the distribution to install.
_DISTRIBUTIONS = {
    "torch": "torch",
    "numpy": "numpy",
    "sentencepiece": "sentencepiece",
    "brotli": "brotli",
    "zstandard": "zstandard",
    "flash_attn": "flash-attn",  # flash-attn 2
    "flash_attn.cute": "flash-attn-4",  # the CuTe kernels ship as their own distribution
    "flash_attn_interface": "flash_attn_3",
    "triton": "triton",
    "tiktoken": "tiktoken",
    "huggingface_hub": "huggingface_hub",
    "datasets": "datasets",
    "einops": "einops",
    "scipy": "scipy",
}


_GENERATED_NAMES = {SUBMISSION_FILE, README_FILE, PLOT_FILE, RUN_FILE, READABLE_CODE_FILE}


def is_generated(rel: str) -> bool:
    """A file ``pgolf package`` writes itself, or a cache: never copied from the run's code/.

    A record folder that is run again (a reviewer reproducing it) carries its old
    submission.json, README, seed folders and logs into the new run's code/.
    """
    parts = rel.split("/")
    if parts[0] in _GENERATED_NAMES or _SEED_DIR_RE.match(parts[0]) or _LOG_NAME_RE.match(parts[0]):
        return True
    if rel.endswith((".pyc", ".tmpl")):  # bytecode; pgolf's own templates (submission_template/)
        return True
    return any(part == "__pycache__" or part.startswith(".") for part in parts)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------- reading a run


@dataclass
class LoadedRun:
    run_dir: Path
    seeds: list[int]  # requested (run.json) then any other seed dir found, in that order
    results: dict[int, dict[str, Any]]  # seeds that have a valid result.json
    missing: dict[int, str]  # seed -> why it has no usable result.json
    run_json: dict[str, Any] | None


def _read_run_json(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / RUN_FILE
    if not path.exists():
        return None
    try:
        obj = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PgolfError(f"{path}: not readable JSON ({exc}); expected pgolf run's run.json") from None
    if not isinstance(obj, dict):
        raise PgolfError(f"{path}: expected a JSON object")
    return obj


def load_run(run_dir: Path) -> LoadedRun:
    """Seeds and their result.json files; run.json only for the requested seed list and extras."""
    if not run_dir.is_dir():
        raise PgolfError(f"{run_dir}: not a directory (expected a RUN_DIR written by `pgolf run`)")
    run_json = _read_run_json(run_dir)
    seeds: list[int] = []
    if run_json is not None and isinstance(run_json.get("seeds"), list):
        seeds = [s for s in run_json["seeds"] if isinstance(s, int) and not isinstance(s, bool)]
    found = sorted(
        int(m.group(1))
        for p in run_dir.iterdir()
        if p.is_dir() and (m := _SEED_DIR_RE.match(p.name)) and (p / RESULT_FILE).exists()
    )
    seeds += [s for s in found if s not in seeds]
    if not seeds:
        raise PgolfError(
            f"{run_dir}: no seed<SEED>/{RESULT_FILE} found (expected a RUN_DIR from `pgolf run`)"
        )
    results: dict[int, dict[str, Any]] = {}
    missing: dict[int, str] = {}
    for seed in seeds:
        path = seed_dir(run_dir, seed) / RESULT_FILE
        if not path.exists():
            missing[seed] = f"seed {seed}: no {path} (the seed did not run or was cut short)"
            continue
        res = read_result(path)  # schema-checked; a corrupt file is an error, not a skipped seed
        if res["seed"] != seed:
            raise ResultError(f"{path}: field seed is {res['seed']}, expected {seed} (the folder's seed)")
        results[seed] = res
    return LoadedRun(run_dir=run_dir, seeds=seeds, results=results, missing=missing, run_json=run_json)


def seed_problem(seed: int, res: Mapping[str, Any], path: Path) -> tuple[str, bool] | None:
    """(why this seed cannot back a record, whether it still has scores) or None when it is fine."""
    status = res["status"]
    if status in ("crashed", "interrupted") or res["val_loss"] is None or res["val_bpb"] is None:
        why = res.get("reason") or "no val_loss/val_bpb"
        return f"seed {seed} {status if status != 'ok' else 'has no score'}: {why} ({path})", False
    failed = [v for v in res["verdicts"] if v["verdict"] == "fail"]
    if failed:
        v = failed[0]
        return (
            f"seed {seed} failed limit {v['rule']}: measured {v['measured']}, limit {v['limit']} ({path})",
            True,
        )
    if status != "ok":
        return f"seed {seed} status {status}: {res.get('reason') or 'no reason given'} ({path})", True
    return None


# --------------------------------------------------------------------------- summaries


def aggregate_compliance(results: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Per rule: worst verdict over seeds, the largest measured number, each seed's verdict."""
    rules: dict[str, dict[str, Any]] = {}
    for seed, res in results.items():
        for v in res["verdicts"]:
            entry = rules.setdefault(
                v["rule"],
                {
                    "rule": v["rule"],
                    "verdict": "pass",
                    "measured": None,
                    "limit": v["limit"],
                    "seeds": {},
                    "detail": v["detail"],
                },
            )
            entry["seeds"][str(seed)] = v["verdict"]
            if _VERDICT_RANK[v["verdict"]] > _VERDICT_RANK[entry["verdict"]]:
                entry["verdict"] = v["verdict"]
                entry["detail"] = f"seed {seed}: {v['detail']}"
            m = v["measured"]
            cur = entry["measured"]
            if isinstance(m, int | float) and not isinstance(m, bool):
                if not isinstance(cur, int | float) or m > cur:
                    entry["measured"] = m
            elif cur is None:
                entry["measured"] = m
    rule_list = list(rules.values())
    overall = "pass"
    for r in rule_list:
        if _VERDICT_RANK[r["verdict"]] > _VERDICT_RANK[overall]:
            overall = r["verdict"]
    return {"verdict": overall, "rules": rule_list}


def weakest_isolation(results: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    nets = [str(r["isolation"]["network"]) for r in results.values()]
    files = [str(r["isolation"]["files"]) for r in results.values()]
    violations: list[str] = []
    for seed, r in results.items():
        violations += [f"seed {seed}: {v}" for v in r["isolation"].get("violations", [])]
    return {
        "network": min(nets, key=lambda n: _NETWORK_RANK.get(n, 0)),
        "files": min(files, key=lambda f: _FILES_RANK.get(f, 0)),
        "violations": violations,
    }


def score_source(results: Mapping[int, Mapping[str, Any]]) -> str:
    """witnessed only when the harness computed every seed's score (eval protocol v2)."""
    witnessed = all(r.get("score_source") == "witnessed" for r in results.values())
    return "witnessed" if witnessed and results else "self-reported"


SCORE_SOURCE_TEXT = {
    "witnessed": "Scores witnessed: the harness served the val tokens and computed val_bpb itself "
    "(eval protocol v2; coverage, order, normalization and causality audited).",
    "self-reported": "Scores self-reported: computed by the trainer and copied by the harness "
    "(eval protocol v1 or legacy).",
}


def artifact_size(res: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """(bytes, source): the harness's count, else (legacy protocol) the trainer's claim."""
    if isinstance(res.get("artifact_bytes"), int):
        return res["artifact_bytes"], "harness"
    claimed = (res.get("claimed") or {}).get("artifact_bytes")
    if isinstance(claimed, int) and not isinstance(claimed, bool):
        return claimed, "trainer_claim"
    return None, None


def _fp_get(fp: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        val = fp.get(key)
        if val not in (None, "", [], {}):
            return str(val)
    return None


def environment_fields(fp: Mapping[str, Any]) -> dict[str, str | None]:
    """The leaderboard's hardware/version fields from a fingerprint (key names vary by writer)."""
    hardware = _fp_get(fp, "hardware")
    if hardware is None:
        gpu = _fp_get(fp, "gpu_name", "gpu_model", "gpu")
        count = _fp_get(fp, "gpu_count", "n_gpus")
        if gpu:
            form = _fp_get(fp, "gpu_form_factor")
            hardware = f"{count + 'x' if count else ''}{gpu}{' ' + form if form and form not in gpu else ''}"
        elif count == "0" or _fp_get(fp, "device") == "cpu":
            hardware = "CPU"
    return {
        "hardware": hardware,
        "pytorch_version": _fp_get(fp, "torch_version", "pytorch_version", "torch"),
        "cuda_version": _fp_get(fp, "cuda_version", "torch_cuda_version", "cuda"),
        "flash_attn_version": _fp_get(fp, "flash_attn_version", "flash_attn"),
    }


def _distribution_of(module: str) -> str | None:
    """The pip distribution of an imported module: the longest dotted prefix that is known."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in _DISTRIBUTIONS:
            return _DISTRIBUTIONS[".".join(parts[:n])]
    return None


_FLASH_DISTRIBUTIONS = {d for m, d in _DISTRIBUTIONS.items() if m.split(".")[0].startswith("flash_attn")}


def normalize_distribution(name: str) -> str:
    """A pip distribution name in PEP 503 form, so "flash_attn_3" and "Flash-Attn-3" compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _flash_attn_pins(fp: Mapping[str, Any], version: str | None, dists: list[str]) -> dict[str, str]:
    """Which imported flash-attn distribution the fingerprint's version belongs to: the one it names,
    or (older fingerprints name none) the only flash-attn distribution the code imports."""
    if not version:
        return {}
    named = fp.get("flash_attn_distribution")
    imported = [d for d in dists if d in _FLASH_DISTRIBUTIONS]
    if named:
        owner = [d for d in imported if normalize_distribution(d) == normalize_distribution(str(named))]
    else:
        owner = imported if len(imported) == 1 else []
    return {d: version.split("+")[0] for d in owner}


def requirements_for(source: str, fp: Mapping[str, Any]) -> str:
    """requirements.txt from the code's third-party imports, pinned where the fingerprint knows the version."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    mods: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods.add(node.module)
    dists = sorted({d for d in map(_distribution_of, mods) if d})
    packages = fp.get("packages") if isinstance(fp.get("packages"), dict) else {}
    env = environment_fields(fp)
    flash_version = _flash_attn_pins(fp, env["flash_attn_version"], dists)
    lines = [
        "# Generated by pgolf package from the imports of train_gpt.py;",
        "# versions pinned where the run's environment fingerprint recorded them.",
    ]
    for dist in dists:
        version = packages.get(dist) if isinstance(packages, dict) else None
        if version is None and dist == "torch" and env["pytorch_version"]:
            version = env["pytorch_version"].split("+")[0]
        if version is None:
            version = flash_version.get(dist)
        lines.append(f"{dist}=={version}" if version and re.fullmatch(r"[\w.\-]+", str(version)) else dist)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- README


def _md(text: Any) -> str:
    """A value safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _fmt(x: Any, spec: str) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int | float):
        return format(x, spec)
    return _md(x)


def _mean_of(rows: Iterable[Mapping[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if isinstance(r.get(key), int | float)]
    return stats.mean(vals) if vals else None


def significance_text(st: Mapping[str, Any], track: str, rehearsal: bool) -> str:
    if rehearsal:
        prefix = (
            "This is a **rehearsal** (scaled limits, tiny model): it is not a record and claims nothing. "
        )
    elif not RULES.is_record_track(track):
        prefix = f"Non-record track `{track}`: no record is claimed. "
    else:
        prefix = ""
    if st["baseline_loss"] is None:
        return prefix + (
            "No baseline was given (`--baseline-bpb` / `--baseline-loss`), so the record test "
            f"(beat the best by >= {RULES.record_margin_nats} nats at p < {RULES.significance_p}) was not run."
        )
    delta = st["val_loss_mean"] - st["baseline_loss"]
    src = (
        " (derived from the baseline bpb with this run's nats-per-bpb ratio)"
        if (st["baseline_loss_source"] == "derived_from_bpb")
        else ""
    )
    text = (
        f"Baseline: val_bpb {_fmt(st['baseline_bpb'], '.5f')}, val_loss {st['baseline_loss']:.5f} nats{src}. "
        f"Mean val_loss is {delta:+.5f} nats against it. "
        f'Test: {st["test"]} of H0 "mean val_loss >= baseline - {st["margin_nats"]}" over n = {st["n"]} seeds'
    )
    if st["p_value"] is None:
        text += ": needs at least two seeds, not run."
    else:
        t = "" if st["t_statistic"] is None else f"t = {st['t_statistic']:.3f}, "
        verdict = "**significant**" if st["significant"] else "**not significant**"
        text += f": {t}df = {st['df']}, p = {st['p_value']:.3g} ({verdict} at p < {st['alpha']})."
    if st["seeds_needed"] is not None:
        text += f" Seeds a claim of this size and spread needs at p < {st['alpha']}: {st['seeds_needed']}."
    elif st["n"] >= 2:
        text += f" No number of seeds makes this mean a record: it does not beat the baseline by {st['margin_nats']} nats."
    return prefix + text


def _export_note(export_s: Any) -> str:
    """The export after the last train_end: measured by the harness, not counted as training."""
    return f" (+{export_s:.1f} export)" if isinstance(export_s, (int, float)) else ""


def data_audit_text(summary: Mapping[str, Any] | None) -> str:
    """The README's data provenance paragraph (harness/audit.py)."""
    if summary is None:
        return "Not audited: the run recorded no data audit (no train or no validation shards, or an older pgolf)."
    from harness.audit import describe

    text = f"**{_md(describe(dict(summary)))}**."
    first = summary.get("first_found") or []
    if first:
        text += (
            "\n\n| val doc | n-grams | coverage | train shard | offset |\n| ---: | ---: | ---: | --- | ---: |\n"
            + "\n".join(
                f"| {h['doc']} | {h['ngrams']:,} | {h['coverage']:.1%} | {_md(h['train_shard'])} | {h['train_offset']:,} |"
                for h in first
            )
        )
    return text


def render_readme(sub: Mapping[str, Any], template: str) -> str:
    rows = [sub["seed_results"][str(s)] for s in sub["seeds"]]
    seed_rows = "\n".join(
        f"| {s}{' (failed a limit)' if r['status'] != 'ok' else ''} | {_fmt(r['val_loss'], '.5f')} | "
        f"{_fmt(r['val_bpb'], '.5f')} | {_fmt(r['steps'], 'd')} | {_fmt(r['step_avg_ms'], '.1f')} | "
        f"{_fmt(r['train_time_s'], '.1f')}{_export_note(r.get('export_time_s'))} | {_fmt(r['eval_time_s'], '.1f')} | "
        f"{_fmt(r['artifact_bytes'], ',d')}"
        f"{' (trainer claim)' if r.get('artifact_bytes_source') == 'trainer_claim' else ''} |"
        for s, r in zip(sub["seeds"], rows, strict=True)
    )
    st = sub["statistics"]

    def pm(mean: float, std: float | None) -> str:
        return f"{mean:.5f} ± {std:.5f}" if std is not None else f"{mean:.5f} (one seed)"

    comp_rows = (
        "\n".join(
            f"| {_md(r['rule'])} | {_fmt(r['limit'], ',')} | {_fmt(r['measured'], ',')} | {r['verdict']} | "
            + ", ".join(f"{k}: {v}" for k, v in r["seeds"].items())
            + " |"
            for r in sub["compliance"]["rules"]
        )
        or "| (no verdicts recorded) | | | | |"
    )
    covers = sub.get("hashes_cover", {})

    def fp_key(k: str) -> str:
        cover = covers.get(f"fingerprint.{k}")
        return f"{_md(k)} ({_md(cover)})" if cover else _md(k)

    fp_rows = (
        "\n".join(
            f"| {fp_key(k)} | {_md(json.dumps(v) if isinstance(v, dict | list) else v)} |"
            for k, v in sub["fingerprint"].items()
        )
        or "| (no fingerprint recorded) | |"
    )
    code = sub["code"]
    if code["packed"]:
        code_section = (
            f"`train_gpt.py` ({code['counted_bytes']:,} bytes, counted) is the self-extracting, lzma-compressed "
            f"form of `{code['source_file']}`, the exact source that ran (sha256 of that source: `{code['source_sha256']}`, "
            f"{code['ran_code_bytes']:,} bytes). The packed file runs the same program."
        )
    else:
        code_section = (
            f"`train_gpt.py` ({code['counted_bytes']:,} bytes, counted) is byte-identical to the code that ran "
            f"(sha256 of {code['counted_file']} as it ran: `{code['source_sha256']}`)."
        )
    code_section += (
        f" Counted code: {sub['bytes_code']:,} bytes; total artifact (code + compressed model, largest seed): "
        f"{_fmt(sub['bytes_total'], ',d')} bytes, cap {sub['limits']['artifact_cap_bytes']:,}."
    )
    iso = sub["isolation"]
    violations = f"; violations: {_md('; '.join(iso['violations']))}" if iso.get("violations") else ""
    summary = sub["blurb"]
    if sub.get("score_source") in SCORE_SOURCE_TEXT:
        summary += " " + SCORE_SOURCE_TEXT[sub["score_source"]]
    if sub.get("technique_summary"):
        summary += f"\n\nTechniques: {sub['technique_summary']}"
    if sub.get("excluded_seeds"):
        summary += "\n\nLeft out (packaged with --force): " + "; ".join(sub["excluded_seeds"].values())
    values = {
        "title": _md(sub["name"]) + (" (rehearsal)" if sub["rehearsal"] else ""),
        "summary": summary,
        "track": sub["track"],
        "author": _md(sub["author"]),
        "github_id": _md(sub["github_id"]),
        "date": sub["date"],
        "harness_version": sub["harness_version"],
        "packaged_at": sub["packaged_at"],
        "record_claim": "yes" if sub["record_claim"] else "no",
        "seed_rows": seed_rows,
        "val_loss_mean_std": pm(st["val_loss_mean"], st["val_loss_std"]),
        "val_bpb_mean_std": pm(st["val_bpb_mean"], st["val_bpb_std"]),
        "val_loss_se": _fmt(st["val_loss_se"], ".5f"),
        "val_bpb_se": _fmt(st["val_bpb_se"], ".5f"),
        "n": st["n"],
        "steps_mean": _fmt(_mean_of(rows, "steps"), ".0f"),
        "step_avg_mean": _fmt(_mean_of(rows, "step_avg_ms"), ".1f"),
        "train_mean": _fmt(_mean_of(rows, "train_time_s"), ".1f"),
        "eval_mean": _fmt(_mean_of(rows, "eval_time_s"), ".1f"),
        "artifact_mean": _fmt(sub["artifact_bytes_mean"], ",.0f"),
        "significance": significance_text(st, sub["track"], sub["rehearsal"]),
        "policy": sub["policy"],
        "protocol": sub["protocol"],
        "nproc": _fmt(sub.get("nproc"), "d"),
        "isolation_network": _md(iso["network"]),
        "isolation_files": _md(iso["files"]),
        "isolation_violations": violations,
        "compliance_rows": comp_rows,
        "compliance_verdict": sub["compliance"]["verdict"],
        "data_audit": data_audit_text(sub.get("data_audit")),
        "plot_file": PLOT_FILE,
        "fingerprint_rows": fp_rows,
        "code_section": code_section,
        "reproduce": sub["reproduce"],
        "files_list": "\n".join(
            f"- `{n}` ({f['bytes']:,} bytes, sha256 of the file as shipped `{f['sha256'][:16]}…`)"
            for n, f in sub["files"].items()
        ),
    }
    return string.Template(template).substitute(values)


def read_template() -> str:
    path = TEMPLATE_DIR / README_TEMPLATE
    try:
        return path.read_text("utf-8")
    except OSError as exc:
        raise PgolfError(f"{path}: README template not readable ({exc.strerror})") from None


# --------------------------------------------------------------------------- validation


def validate_submission(sub: Mapping[str, Any], where: str = SUBMISSION_FILE) -> None:
    try:
        jsonschema.validate(sub, load_schema("submission"))
    except jsonschema.ValidationError as exc:
        path = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise PgolfError(f"{where}: field {path}: {exc.message}") from None


REPRODUCE_OUT = "runs/reproduce"
REPRODUCED_RECORDS = "reproduced"
# What each hash in submission.json covers (README.md says the same beside each value).
HASHES_COVER = {
    "code.source_sha256": f"sha256 of the {RULES.code_filename} that ran (before any --pack-code)",
    "fingerprint.code_sha256": "sha256 over every code file that ran: each file's path and sha256, one line "
    "each, as harness.runner.code_digest writes them",
    "fingerprint.data_lock_sha256": "sha256 of the lock file `pgolf fetch` wrote for the data; none without one",
    "files.<name>.sha256": "sha256 of that file as shipped in this folder",
}


def _reproduce_command(
    rel_folder: str,
    seeds: Sequence[int],
    first: Mapping[str, Any],
    run_json: Mapping[str, Any] | None,
    rehearsal: bool,
    hardware: str | None,
    package_args: Sequence[str],
) -> str:
    """Shell lines that re-run this folder as it ran (limits, processes, environment) and package it."""
    limits = first["limits"]
    nproc = first.get("nproc")
    run_cmd = [
        "pgolf", "run", rel_folder, "--data-dir", "DATA_DIR_PLACEHOLDER", "--seeds", ",".join(map(str, seeds)),
    ]  # fmt: skip
    if isinstance(nproc, int):
        run_cmd += ["--nproc", str(nproc)]
    run_cmd += [
        "--train-limit-s", f"{limits['train_time_limit_s']:g}",
        "--eval-limit-s", f"{limits['eval_time_limit_s']:g}",
        "--artifact-cap-bytes", str(limits["artifact_cap_bytes"]),
        "--setup-allowance-s", f"{limits['setup_allowance_s']:g}",
        "--policy", str(first["policy"]),
        "--protocol", str(first["protocol"]),
    ]  # fmt: skip
    env = (run_json or {}).get("env")
    if isinstance(env, dict):
        for k, v in env.items():
            run_cmd += ["--env", f"{k}={v}"]
    run_cmd += ["--out", REPRODUCE_OUT]
    pkg = ["pgolf", "package", REPRODUCE_OUT, *package_args, "--out", REPRODUCED_RECORDS]
    data = (run_json or {}).get("data") or {}
    dataset = Path(str(data.get("data_dir") or "<dataset>")).name
    ran_on = f"{nproc} process(es) per phase" + (f" ({hardware})" if hardware else "")
    if rehearsal:
        data_line = [
            "# the rehearsal's data ships with pgolf:",
            'DATA_DIR="$(python -m harness.rehearsal_data path)"',
        ]
    else:
        data_line = [
            f"# the shards it ran on ({dataset}); `pgolf fetch --data-dir /data` puts them in /data/datasets/<dataset>",
            f"DATA_DIR=/data/datasets/{dataset}",
        ]
    lines = [
        f"# ran on {ran_on}; the record track's hardware is {RULES.record_gpu_count}x {RULES.record_gpu_model} "
        f"{RULES.record_gpu_form_factor}. From the folder that holds {RULES.records_root}/:",
        *data_line,
        shlex.join(run_cmd).replace("DATA_DIR_PLACEHOLDER", '"$DATA_DIR"'),
        shlex.join(pkg),
    ]
    return "\n".join(lines)


def machine_paths(run_dir: Path, run_json: Mapping[str, Any] | None) -> dict[str, str]:
    """Absolute paths of the machine that ran (or packages) the run -> what a shipped file says instead."""
    import sys
    import tempfile

    sub = (run_json or {}).get("submission") or {}
    data = (run_json or {}).get("data") or {}
    named: list[tuple[Any, str]] = [
        (run_dir.resolve(), "$RUN_DIR"),
        (data.get("data_dir"), "$DATA_DIR"),
        (Path(str(data["tokenizer_path"])).parent if data.get("tokenizer_path") else None, "$TOKENIZER_DIR"),
        (Path(str(data["lock_file"])).parent if data.get("lock_file") else None, "$DATA_ROOT"),
        (sub.get("source_dir"), "$SUBMISSION_DIR"),
        (Path(__file__).resolve().parent, "$PGOLF"),
        (sys.prefix, "$PYTHON_PREFIX"),
        (sys.base_prefix, "$PYTHON_PREFIX"),
        (Path(sys.executable).resolve().parent.parent, "$PYTHON_PREFIX"),
        (Path.home(), "~"),
        (tempfile.gettempdir(), "$TMPDIR"),
    ]
    out: dict[str, str] = {}
    for path, name in named:
        text = str(path) if path else ""
        if len(text) > 1 and text.startswith("/") and text not in out:
            out[text] = name
    return out


def scrub_paths(text: str, paths: Mapping[str, str]) -> str:
    """``text`` with each machine path (longest first, whole path components only) replaced."""
    for path in sorted(paths, key=len, reverse=True):
        # A function, not a replacement string: "$RUN_DIR" and backslashes stay literal.
        text = re.sub(re.escape(path) + r"(?![\w.\-])", _literal(paths[path]), text)
    return text


def _literal(replacement: str) -> Callable[[re.Match[str]], str]:
    return lambda _m: replacement


# --------------------------------------------------------------------------- package


def package_args(
    name: str,
    author: str,
    github_id: str,
    track: str,
    baseline_bpb: float | None,
    baseline_loss: float | None,
    pack_code: bool,
) -> list[str]:
    args = ["--name", name, "--author", author, "--github-id", github_id, "--track", track]
    if baseline_bpb is not None:
        args += ["--baseline-bpb", repr(baseline_bpb)]
    if baseline_loss is not None:
        args += ["--baseline-loss", repr(baseline_loss)]
    return [*args, "--pack-code"] if pack_code else args


@dataclass
class _Files:
    """What the folder will hold, in memory, before anything is written."""

    data: dict[str, bytes] = field(default_factory=dict)

    def add(self, name: str, content: bytes) -> None:
        self.data[name] = content

    def manifest(self) -> dict[str, dict[str, Any]]:
        return {n: {"bytes": len(b), "sha256": sha256_bytes(b)} for n, b in sorted(self.data.items())}


def package_run(
    run_dir: Path,
    *,
    name: str,
    author: str,
    github_id: str,
    track: str,
    out_root: Path,
    baseline_bpb: float | None = None,
    baseline_loss: float | None = None,
    pack_code: bool = False,
    force: bool = False,
) -> Path:
    """Build the record folder of ``run_dir`` under ``out_root`` and return its path.

    Refuses (PgolfError, nothing written) when a seed crashed or failed a limit, when a
    rehearsal goes to a record track, when a record track has fewer than
    RULES.min_record_seeds seeds, or when the folder exists. ``force`` (non-record
    tracks only) keeps failed seeds, leaves crashed ones out and replaces an existing folder.
    """
    run_dir = Path(run_dir)
    out_root = Path(out_root)
    if track not in RULES.tracks:
        raise PgolfError(f"--track {track!r}: expected one of {', '.join(RULES.tracks)}")
    record_track = RULES.is_record_track(track)
    if force and record_track:
        raise PgolfError(f"--force is only for non-record tracks; track {track!r} is a record track")
    for label, value in (("--author", author), ("--github-id", github_id)):
        if not value.strip():
            raise PgolfError(f"{label}: expected a non-empty value")
    date = _utc_now().date().isoformat()
    folder_name = f"{date}_{name}"
    if RULES.parse_record_dir_name(folder_name) is None:
        raise PgolfError(
            f"--name {name!r}: expected letters, digits and . _ + - only, starting with a letter or digit "
            f"(folder {folder_name!r} must match {RULES.record_dir_pattern})"
        )
    for flag, baseline in (("--baseline-bpb", baseline_bpb), ("--baseline-loss", baseline_loss)):
        if baseline is not None and not (0 < baseline < float("inf")):
            raise PgolfError(f"{flag} {baseline!r}: expected a positive finite number")

    run = load_run(run_dir)
    rehearsal = any(r["rehearsal"] for r in run.results.values()) or bool(
        (run.run_json or {}).get("rehearsal") is True
    )
    if rehearsal and record_track:
        raise PgolfError(
            f"{run_dir}: is a rehearsal run and cannot be packaged to record track {track!r}; "
            f"use --track {next(t for t in RULES.tracks if not RULES.is_record_track(t))}"
        )

    # Which seeds back the folder.
    problems: list[str] = list(run.missing.values())
    excluded: dict[str, str] = {str(s): why for s, why in run.missing.items()}
    included: dict[int, dict[str, Any]] = {}
    for seed in run.seeds:
        res = run.results.get(seed)
        if res is None:
            continue
        problem = seed_problem(seed, res, seed_dir(run_dir, seed) / RESULT_FILE)
        if problem is None:
            included[seed] = res
            continue
        problems.append(problem[0])
        if problem[1]:
            included[seed] = res
        else:
            excluded[str(seed)] = problem[0]
    if problems and not force:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        hint = "" if record_track else "; --force packages the seeds that have scores anyway"
        raise PgolfError(problems[0] + more + hint)
    if not included:
        raise PgolfError(f"{run_dir}: no seed has a score to package")
    if record_track and len(included) < RULES.min_record_seeds:
        raise PgolfError(
            f"{run_dir}: {len(included)} seed(s) ({', '.join(map(str, included))}); a record on track "
            f"{track!r} needs at least {RULES.min_record_seeds}"
        )
    seeds = list(included)
    first = included[seeds[0]]

    # The code that ran: on disk in RUN_DIR/code, and as the harness hashed it.
    code_dir = run_dir / CODE_DIR
    entry = code_dir / RULES.code_filename
    if not entry.is_file():
        raise PgolfError(f"{entry}: not found (expected the {RULES.code_filename} that ran)")
    entry_bytes = entry.read_bytes()
    entry_sha = sha256_bytes(entry_bytes)
    for seed, res in included.items():
        recorded = res.get("code_files", {}).get(RULES.code_filename, {}).get("sha256")
        if recorded is not None and recorded != entry_sha:
            raise PgolfError(
                f"{entry}: sha256 {entry_sha[:12]}… differs from the {recorded[:12]}… that seed {seed} ran "
                f"({seed_dir(run_dir, seed) / RESULT_FILE}); the code was changed after the run"
            )
    try:
        source = entry_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise PgolfError(f"{entry}: not UTF-8 text (expected Python source)") from None

    files = _Files()
    if pack_code:
        packed = pack_source(source)
        # The packed file must hold exactly the program that ran (after minification).
        if unpack_source(packed) != minify_source(source):
            raise PgolfError(f"{entry}: packing did not round-trip; refusing to ship a packed file")
        compile(packed, RULES.code_filename, "exec")
        files.add(RULES.code_filename, packed.encode("utf-8"))
        files.add(READABLE_CODE_FILE, entry_bytes)
    else:
        files.add(RULES.code_filename, entry_bytes)
    for p in sorted(code_dir.rglob("*")):
        rel = p.relative_to(code_dir).as_posix()
        if p.is_file() and rel != RULES.code_filename and not is_generated(rel) and rel not in files.data:
            files.add(rel, p.read_bytes())
    if REQUIREMENTS_FILE not in files.data:
        files.add(REQUIREMENTS_FILE, requirements_for(source, first["fingerprint"]).encode("utf-8"))
    # Logs and records the harness wrote, with this machine's paths rewritten (code ships as it ran).
    paths = machine_paths(run_dir, run.run_json)

    def add_scrubbed(name: str, source: Path) -> None:
        text = source.read_bytes().decode("utf-8", errors="replace")
        files.add(name, scrub_paths(text, paths).encode("utf-8"))

    for seed in seeds:
        log = run_dir / RULES.seed_log_name(seed)
        if not log.is_file():
            raise PgolfError(f"{log}: not found (every packaged seed needs its train log)")
        add_scrubbed(RULES.seed_log_name(seed), log)
        add_scrubbed(f"seed{seed}/{RESULT_FILE}", seed_dir(run_dir, seed) / RESULT_FILE)
        events = seed_dir(run_dir, seed) / EVENTS_FILE
        if events.is_file():
            add_scrubbed(f"seed{seed}/{EVENTS_FILE}", events)
    if (run_dir / RUN_FILE).is_file():
        add_scrubbed(RUN_FILE, run_dir / RUN_FILE)

    # Numbers: all from result.json.
    losses = [float(included[s]["val_loss"]) for s in seeds]
    bpbs = [float(included[s]["val_bpb"]) for s in seeds]
    st = stats.full_statistics(losses, bpbs, baseline_bpb=baseline_bpb, baseline_loss=baseline_loss)
    sizes = {s: artifact_size(included[s]) for s in seeds}
    artifacts = [a for a, _ in sizes.values() if a is not None]
    ran_code_bytes = first["code_bytes"] if isinstance(first["code_bytes"], int) else len(entry_bytes)
    shipped_code_bytes = ran_code_bytes - len(entry_bytes) + len(files.data[RULES.code_filename])
    compliance = aggregate_compliance(included)
    env = environment_fields(first["fingerprint"])
    device = (run.run_json or {}).get("device")
    if isinstance(device, str) and isinstance(first.get("nproc"), int):
        env["hardware"] = hardware_line(first["fingerprint"], first["nproc"], device)
    title = f"{name}: " + ("rehearsal, " if rehearsal else "") + f"{len(seeds)} seed(s)"
    png = render_curves_png(load_curves(run_dir, seeds, included), title=title)
    files.add(PLOT_FILE, png)

    seed_results: dict[str, dict[str, Any]] = {}
    for s in seeds:
        r = included[s]
        seed_results[str(s)] = {
            "val_loss": r["val_loss"],
            "val_bpb": r["val_bpb"],
            "artifact_bytes": sizes[s][0],
            "artifact_bytes_source": sizes[s][1],
            "steps": r["steps"],
            "step_avg_ms": r["step_avg_ms"],
            "train_time_s": r["train_time_s"],
            "eval_time_s": r["eval_time_s"],
            "code_bytes": r["code_bytes"],
            "model_bytes": r["model_bytes"],
            "val_tokens": r.get("val_tokens"),
            "val_bytes": r.get("val_bytes"),
            "train_phase_wall_s": r.get("train_phase_wall_s"),
            "eval_phase_wall_s": r.get("eval_phase_wall_s"),
            "export_time_s": r.get("export_time_s"),
            "status": r["status"] if r["status"] == "ok" else "failed",
            "score_source": r.get("score_source", "self-reported"),
            "log_file": RULES.seed_log_name(s),
            "verdicts": r["verdicts"],
            "isolation": r["isolation"],
        }
    mean_bpb = st["val_bpb_mean"]
    record_claim = bool(
        record_track
        and not rehearsal
        and len(seeds) >= RULES.min_record_seeds
        and compliance["verdict"] != "fail"
        and st["significant"]
    )
    std_txt = f" ± {st['val_bpb_std']:.5f}" if st["val_bpb_std"] is not None else ""
    blurb = (
        f"{name}: mean val_bpb {mean_bpb:.5f}{std_txt} over {len(seeds)} seed(s) "
        f"({', '.join(map(str, seeds))}), measured by pgolf {__version__}"
        + (" in a rehearsal (scaled limits; not a record)." if rehearsal else ".")
    )
    technique = (run.run_json or {}).get("technique_summary")
    rel_folder = f"{RULES.records_root}/{RULES.track_dir(track)}/{folder_name}"
    sub: dict[str, Any] = {
        "author": author,
        "github_id": github_id,
        "name": name,
        "blurb": blurb,
        "date": date,
        "track": track,
        "val_loss": st["val_loss_mean"],
        "val_bpb": mean_bpb,
        "val_loss_std": st["val_loss_std"],
        "val_bpb_std": st["val_bpb_std"],
        "seeds": seeds,
        "seed_results": seed_results,
        "comparison_baseline_bpb": st["baseline_bpb"],
        "delta_vs_leaderboard_bpb": None if st["baseline_bpb"] is None else mean_bpb - st["baseline_bpb"],
        "delta_vs_leaderboard_nats": None
        if st["baseline_loss"] is None
        else st["val_loss_mean"] - st["baseline_loss"],
        "p_value": st["p_value"],
        "artifact_bytes_mean": stats.mean(artifacts) if artifacts else None,
        "artifact_bytes_max": max(artifacts) if artifacts else None,
        "bytes_total": max(artifacts) - ran_code_bytes + shipped_code_bytes if artifacts else None,
        "bytes_code": shipped_code_bytes,
        **env,
        "technique_summary": technique if isinstance(technique, str) else None,
        "schema_version": 1,
        "harness_version": __version__,
        "rehearsal": rehearsal,
        "record_claim": record_claim,
        "packaged_at": _utc_now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "run_id": (run.run_json or {}).get("run_id")
        if isinstance((run.run_json or {}).get("run_id"), str)
        else None,
        "protocol": first["protocol"],
        "score_source": score_source(included),
        "policy": first["policy"],
        "nproc": first.get("nproc"),
        "limits": first["limits"],
        "statistics": st,
        "compliance": compliance,
        "isolation": weakest_isolation(included),
        "data_audit": first.get("data_audit"),
        "fingerprint": first["fingerprint"],
        "code": {
            "packed": pack_code,
            "counted_file": RULES.code_filename,
            "counted_bytes": len(files.data[RULES.code_filename]),
            "source_sha256": entry_sha,
            "source_file": READABLE_CODE_FILE if pack_code else None,
            "ran_code_bytes": ran_code_bytes,
        },
        "files": files.manifest(),
        "reproduce": _reproduce_command(
            rel_folder,
            seeds,
            first,
            run.run_json,
            rehearsal,
            env.get("hardware"),
            package_args(name, author, github_id, track, baseline_bpb, baseline_loss, pack_code),
        ),
        "hashes_cover": HASHES_COVER,
        "forced": bool(force and problems),
        "excluded_seeds": excluded if force else {},
    }
    validate_submission(sub)
    readme = render_readme(sub, read_template())
    files.add(SUBMISSION_FILE, (json.dumps(sub, indent=2) + "\n").encode("utf-8"))
    files.add(README_FILE, readme.encode("utf-8"))

    # Write beside the destination, check, then rename into place.
    track_dir = out_root / RULES.track_dir(track)
    dest = track_dir / folder_name
    if dest.exists() and not force:
        raise PgolfError(f"{dest}: already exists; remove it or choose another --name")
    track_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder_name}.partial-", dir=track_dir))
    try:
        for rel, data in files.data.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        shipped = (tmp / (READABLE_CODE_FILE if pack_code else RULES.code_filename)).read_bytes()
        if sha256_bytes(shipped) != entry_sha:
            raise PgolfError(f"{tmp}: written code does not match the sha256 of the code that ran")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


# --------------------------------------------------------------------------- stats input


@dataclass
class SeedScores:
    source: str  # what the numbers were read from
    seeds: list[int | None]  # None: a single score whose seed is not known
    val_losses: list[float]
    val_bpbs: list[float]
    baseline_bpb: float | None = None
    baseline_loss: float | None = None
    notes: list[str] = field(default_factory=list)


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def scores_from_logs(folder: Path) -> SeedScores | None:
    """Final val_loss/val_bpb of each ``train_seed<SEED>.log`` (harness/logparse.py); None without logs."""
    logs = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _LOG_NAME_RE.match(p.name)))
    if not logs:
        return None
    out = SeedScores(source=f"{folder}/train_seed*.log", seeds=[], val_losses=[], val_bpbs=[])
    for seed, log in logs:
        final = read_log(log).final
        if final is None or final.val_loss is None:
            out.notes.append(f"{log.name}: no final val_loss/val_bpb line; left out")
            continue
        out.seeds.append(seed)
        out.val_losses.append(final.val_loss)
        out.val_bpbs.append(final.val_bpb)
    return out


def _scores_from_submission(sub_path: Path) -> SeedScores:
    try:
        sub = json.loads(sub_path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PgolfError(f"{sub_path}: not valid JSON ({exc})") from None
    if not isinstance(sub, dict):
        raise PgolfError(f"{sub_path}: expected a JSON object")
    results = sub.get("seed_results")
    if isinstance(results, dict) and results:
        out = SeedScores(source=str(sub_path), seeds=[], val_losses=[], val_bpbs=[])
        for key, r in results.items():
            loss = _num(r.get("val_loss")) if isinstance(r, dict) else None
            bpb = _num(r.get("val_bpb")) if isinstance(r, dict) else None
            if loss is None or bpb is None:
                out.notes.append(f"seed {key}: no numeric val_loss and val_bpb; left out")
                continue
            try:
                out.seeds.append(int(key))
            except ValueError:
                out.notes.append(f"seed key {key!r} is not an integer; left out")
                continue
            out.val_losses.append(loss)
            out.val_bpbs.append(bpb)
    else:
        # Older leaderboard folders: no per-seed numbers in submission.json, only the logs.
        from_logs = scores_from_logs(sub_path.parent)
        loss, bpb = _num(sub.get("val_loss")), _num(sub.get("val_bpb"))
        if from_logs is not None:
            out = from_logs
        elif loss is not None and bpb is not None:
            # The earliest folders: one run, its score only in submission.json.
            out = SeedScores(source=str(sub_path), seeds=[None], val_losses=[loss], val_bpbs=[bpb])
            out.notes.append("no per-seed scores: the single val_loss/val_bpb of submission.json")
        else:
            raise PgolfError(
                f"{sub_path}: no seed_results, no train_seed<SEED>.log and no val_loss/val_bpb; nothing to compute"
            )
    st: dict[str, Any] = sub["statistics"] if isinstance(sub.get("statistics"), dict) else {}
    out.baseline_bpb = _num(sub.get("comparison_baseline_bpb"))
    if st.get("baseline_loss_source") == "given":
        out.baseline_loss = _num(st.get("baseline_loss"))
    if not out.seeds:
        raise PgolfError(f"{sub_path}: no seed has both val_loss and val_bpb")
    return out


def load_scores(path: Path) -> SeedScores:
    """Per-seed val_loss/val_bpb of a RUN_DIR (result.json files) or a record folder.

    A record folder's numbers come from submission.json's seed_results, or, for older
    leaderboard folders without them, from the final metric line of each seed's log.
    """
    path = Path(path)
    sub_path = path / SUBMISSION_FILE
    if sub_path.is_file():
        return _scores_from_submission(sub_path)
    run = load_run(path)
    out = SeedScores(source=str(path), seeds=[], val_losses=[], val_bpbs=[])
    out.notes += list(run.missing.values())
    for seed in run.seeds:
        res = run.results.get(seed)
        if res is None:
            continue
        problem = seed_problem(seed, res, seed_dir(path, seed) / RESULT_FILE)
        if problem is not None:
            out.notes.append(problem[0])
            if not problem[1]:
                continue
        out.seeds.append(seed)
        out.val_losses.append(float(res["val_loss"]))
        out.val_bpbs.append(float(res["val_bpb"]))
    if not out.seeds:
        raise PgolfError(f"{path}: no seed has a score")
    return out
