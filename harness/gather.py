"""Merge run directories made on several pods into one run (``pgolf gather``).

Each pod ran ``pgolf run`` on some of the seeds; a record needs them as one run. Seeds
may only be merged when they ran the same thing under the same rules: the same code
(sha256), the same data (lock digest), the same image and the same limits, protocol and
policy. Anything else is refused, naming the field and the two run directories, before
a byte is written. The merged run has every seed's folder and log as the pod wrote
them, one code/ (checked against its recorded sha256), and a run.json whose
``gathered_from`` lists each pod's directory, seeds and fingerprint.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import PgolfError
from harness.package import load_run
from harness.results import CODE_DIR, RESULT_FILE, RUN_FILE, seed_dir, write_json_atomic
from harness.rules import RULES
from harness.runner import code_digest, code_files, now_iso, validate_run


class GatherError(PgolfError):
    """Run directories that cannot be merged, or an output that is already there."""


@dataclass(frozen=True)
class PodRun:
    run_dir: Path
    run_json: dict[str, Any]
    results: dict[int, dict[str, Any]]

    def identity(self) -> dict[str, Any]:
        """What must be equal between pods for their seeds to form one run."""
        limits = {k: v for k, v in self.run_json["limits"].items() if k != "scaled"}
        return {
            "code sha256": self.run_json["submission"]["code_sha256"],
            "data lock digest": self.run_json["data"]["lock_sha256"],
            "image": self.run_json["fingerprint"].get("image"),
            "limits": limits,
            "protocol": self.run_json["protocol"],
            "policy": self.run_json["policy"],
            "rehearsal": self.run_json["rehearsal"],
        }


def read_pod_run(run_dir: Path) -> PodRun:
    loaded = load_run(run_dir)
    if loaded.run_json is None:
        raise GatherError(f"{run_dir / RUN_FILE}: not found (gather needs the run.json `pgolf run` writes)")
    validate_run(loaded.run_json, str(run_dir / RUN_FILE))
    if loaded.missing:
        raise GatherError(next(iter(loaded.missing.values())) + "; finish it first (pgolf run --resume)")
    pod = PodRun(run_dir=run_dir, run_json=loaded.run_json, results=loaded.results)
    # Each seed's own record must agree with its run.json (a result copied in from elsewhere would not).
    ident = pod.identity()
    for seed, res in pod.results.items():
        fp = res["fingerprint"]
        where = seed_dir(run_dir, seed) / RESULT_FILE
        for field, value in (
            ("code sha256", fp.get("code_sha256")),
            ("data lock digest", fp.get("data_lock_sha256")),
            ("image", fp.get("image")),
        ):
            if value != ident[field]:
                raise GatherError(
                    f"{where}: {field} {value!r} differs from {run_dir / RUN_FILE} ({ident[field]!r})"
                )
    code = run_dir / CODE_DIR
    if not (code / RULES.code_filename).is_file():
        raise GatherError(f"{code / RULES.code_filename}: not found (expected the code that ran)")
    on_disk = code_digest(code_files(code))
    if on_disk != ident["code sha256"]:
        raise GatherError(
            f"{code}: sha256 {on_disk[:12]}… differs from the {ident['code sha256'][:12]}… recorded in "
            f"{run_dir / RUN_FILE}; the code was changed after the run"
        )
    return pod


def check_compatible(pods: list[PodRun]) -> None:
    first = pods[0]
    want = first.identity()
    owner: dict[int, Path] = {}
    for pod in pods:
        got = pod.identity()
        for field, value in want.items():
            if got[field] != value:
                raise GatherError(
                    f"{pod.run_dir}: {field} {_short(got[field])} differs from {first.run_dir}'s "
                    f"{_short(value)}; seeds run differently cannot form one run"
                )
        for seed in pod.results:
            if seed in owner:
                raise GatherError(f"seed {seed} is in both {owner[seed]} and {pod.run_dir}; keep one of them")
            owner[seed] = pod.run_dir


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64:
        return value[:12] + "…"
    return json.dumps(value, sort_keys=True)


def merged_run_json(pods: list[PodRun], out: Path) -> dict[str, Any]:
    base = pods[0].run_json
    seeds = [s for pod in pods for s in pod.run_json["seeds"] if s in pod.results]
    results: dict[str, Any] = {}
    for pod in pods:
        results.update({str(s): pod.run_json["results"][str(s)] for s in pod.results})
    statuses = [results[str(s)]["status"] for s in seeds]
    merged = {
        **base,
        "status": "complete" if all(s == "ok" for s in statuses) else "incomplete",
        "seeds": seeds,
        "results": results,
        "started_at": min(p.run_json["started_at"] for p in pods),
        "updated_at": now_iso(),
        "gathered_from": [
            {
                "run_dir": str(p.run_dir.resolve()),
                "seeds": [s for s in p.run_json["seeds"] if s in p.results],
                "status": p.run_json["status"],
                "fingerprint": p.run_json["fingerprint"],
            }
            for p in pods
        ],
    }
    validate_run(merged, str(out / RUN_FILE))
    return merged


def gather(run_dirs: list[Path], out: Path) -> dict[str, Any]:
    """Merge ``run_dirs`` into ``out`` (which must not hold anything yet); returns its run.json."""
    if len(run_dirs) < 1:
        raise GatherError("expected at least one RUN_DIR")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GatherError(f"--out {out}: already exists and is not empty; choose another")
    resolved = [d.resolve() for d in run_dirs]
    if len(set(resolved)) != len(resolved):
        raise GatherError("the same RUN_DIR is given twice")
    pods = [read_pod_run(d) for d in run_dirs]
    check_compatible(pods)
    merged = merged_run_json(pods, out)

    # Built beside the destination, then renamed: the merged run appears whole or not at all.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.gathering")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        shutil.copytree(pods[0].run_dir / CODE_DIR, tmp / CODE_DIR)
        for pod in pods:
            for seed in pod.results:
                shutil.copytree(seed_dir(pod.run_dir, seed), seed_dir(tmp, seed))
                log = pod.run_dir / RULES.seed_log_name(seed)
                if log.is_file():
                    shutil.copy2(log, tmp / log.name)
        write_json_atomic(tmp / RUN_FILE, merged)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return merged
