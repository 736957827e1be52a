"""GPU eval time of the reference trainer: eval protocol v2 (witnessed) vs v1 (RESULT_PATH).

Same artifact, same val set, same torchrun command; the only difference is where the tokens come
from (v1: DATA_PATH shards; v2: the harness's scoring channel, audits included). The eval time
is what `pgolf run` counts: the harness clock between the trainer's eval_start and eval_end
lines, stamped here on arrival. Runs alternate v1, v2, v1, v2, ... (REPS each); the table gives
each run and the ratio of medians (target: v2 within 2% of v1). The causality replay (a separate
process after eval_end, not in the eval time) is timed too.

    python3 benchmarks/trainer/scoring_gpu.py ARTIFACT_DIR VAL_DIR NPROC OUT_JSON
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from harness.protocol import parse_event  # noqa: E402
from harness.scoring.session import WitnessedEval  # noqa: E402
from harness.scoring.valset import load_valset  # noqa: E402

TRAINER = REPO / "submission_template" / "train_gpt.py"


def run_eval(env: dict[str, str], nproc: int, log: Path) -> dict[str, float]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--local-addr=127.0.0.1"]
    cmd += [f"--nproc_per_node={nproc}", str(TRAINER)]
    t0 = time.perf_counter()
    marks: dict[str, float] = {}
    with log.open("w") as f:
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert p.stdout is not None
        for line in p.stdout:
            f.write(line)
            ev = parse_event(line)
            if ev is not None and ev["event"] in ("eval_start", "eval_end"):
                marks[ev["event"]] = time.perf_counter()
        rc = p.wait()
    if rc != 0:
        raise SystemExit(f"eval exited {rc}; see {log}")
    return {"eval_s": marks["eval_end"] - marks["eval_start"], "phase_s": time.perf_counter() - t0}


def main() -> int:
    art, val, nproc, out = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    reps = int(os.environ.get("REPS", "3"))
    logs = out.parent / "scoring_gpu_logs"
    logs.mkdir(parents=True, exist_ok=True)
    vs = load_valset(val, None, None)
    print(
        f"val: {vs.n_targets:,d} targets, {vs.doc_starts.size:,d} docs; artifact {art}; {nproc} rank(s)",
        flush=True,
    )
    base = {
        k: v for k, v in os.environ.items() if k not in ("DATA_PATH", "RESULT_PATH", "PGOLF_SCORE_SOCKET")
    }
    base.update(PGOLF_PHASE="eval", ARTIFACT_DIR=str(art))
    runs: list[dict[str, object]] = []
    for i in range(reps):
        for proto in ("v1", "v2"):
            res_path = logs / f"{proto}_{i}.json"
            env = {**base, "RESULT_PATH": str(res_path)}
            row: dict[str, object] = {"protocol": proto, "rep": i}
            if proto == "v1":
                row.update(run_eval({**env, "DATA_PATH": str(val)}, nproc, logs / f"v1_{i}.log"))
                row["val_bpb"] = json.loads(res_path.read_text())["val_bpb"]
            else:
                witness = WitnessedEval(vs, nproc)
                with witness.main_pass() as channel:
                    row.update(run_eval({**env, **channel.env()}, nproc, logs / f"v2_{i}.log"))
                plans = witness.replay_plans()
                t0 = time.perf_counter()
                with witness.replay(plans) as channel:
                    run_eval(
                        {**env, **channel.env(), "RESULT_PATH": str(logs / "replay.json")},
                        len(plans),
                        logs / f"replay_{i}.log",
                    )
                row["replay_s"] = time.perf_counter() - t0
                report = witness.report(json.loads(res_path.read_text()))
                assert report.score is not None, report.verdicts
                row["val_bpb"] = report.score.val_bpb
                row["verdicts"] = {v["rule"]: v["verdict"] for v in report.verdicts}
                row["worst_normalization"] = next(
                    v["measured"] for v in report.verdicts if v["rule"] == "normalization"
                )
                row["worst_causality"] = next(
                    v["measured"] for v in report.verdicts if v["rule"] == "causality"
                )
            runs.append(row)
            print(json.dumps(row), flush=True)
    med = {p: statistics.median(float(r["eval_s"]) for r in runs if r["protocol"] == p) for p in ("v1", "v2")}  # type: ignore[arg-type]
    ratio = med["v2"] / med["v1"]
    print(f"\n{'protocol':<9}{'rep':>4}{'eval s':>10}{'phase s':>10}{'val_bpb':>14}")
    for r in runs:
        print(
            f"{r['protocol']:<9}{r['rep']:>4}{r['eval_s']:>10.2f}{r['phase_s']:>10.2f}{r['val_bpb']:>14.8f}"
        )
    print(f"median eval: v1 {med['v1']:.2f} s, v2 {med['v2']:.2f} s, v2/v1 = {ratio:.4f} (target <= 1.02)")
    out.write_text(
        json.dumps(
            {"runs": runs, "median_eval_s": med, "v2_over_v1": ratio, "targets": vs.n_targets}, indent=2
        )
        + "\n"
    )
    return 0 if ratio <= 1.02 else 1


if __name__ == "__main__":
    sys.exit(main())
