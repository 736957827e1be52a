#!/usr/bin/env bash
# Issue 18 on a GPU: a short `pgolf run` of submission_template (the reference trainer, CUDA,
# NCCL when NPROC > 1) inside the bubblewrap sandbox and the same run with --no-sandbox, in one
# call; prints each run's isolation, step time and witnessed score (eval protocol v2: the eval
# phase, and the causality replay after it, get the val set only through the scoring socket bound
# into the sandbox; EVAL_MODE, default sliding stride 64 as measured), and the step time ratio.
# Run from the repo root after gpu_prep.sh (data in /tmp/pg/all, brotli in /tmp/site).
# Carried besides gpu_prep.sh's files: .carry/deb/bubblewrap_*.deb (as for bwrap_probe.sh; `apt-get download bubblewrap`),
# unpacked with dpkg -x into /tmp/bwrap (no network, no apt there); the harness finds it via PGOLF_BWRAP.
# Knobs: NPROC (default 1), TRAIN_S (training seconds, default 60), OUT (results folder, default /tmp/sandbox_gpu).
set -euo pipefail
R=$PWD
NPROC=${NPROC:-1}
TRAIN_S=${TRAIN_S:-60}
OUT=${OUT:-/tmp/sandbox_gpu}
mkdir -p /tmp/bwrap "$OUT"
dpkg -x "$(ls .carry/deb/bubblewrap_*.deb .carry/bubblewrap_*.deb 2>/dev/null | head -1)" /tmp/bwrap
export PGOLF_BWRAP=/tmp/bwrap/usr/bin/bwrap
export PYTHONPATH=/tmp/site:$R${PYTHONPATH:+:$PYTHONPATH}
# `pgolf run` itself needs jsonschema and rich: from carried wheels when the image lacks them
# (.whl/, e.g. `pip download --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64
#  jsonschema rich -d .whl` on a machine with PyPI).
if ! python3 -c 'import jsonschema, rich' 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
fi
"$PGOLF_BWRAP" --version
python3 -c 'from harness.sandbox import sandbox_level as s; l = s(); print("sandbox:", l.name, "-", l.reason)'
TOK=$(ls "$R"/.carry/*caseops*.model | head -1)
for mode in sandbox no-sandbox; do
  flag=(); [ "$mode" = no-sandbox ] && flag=(--no-sandbox)
  rm -rf "$OUT/$mode"
  start=$(date +%s)
  python3 -m harness run "$R/submission_template" "${flag[@]}" --data-dir /tmp/pg/all --tokenizer "$TOK" \
    --seeds 1 --nproc "$NPROC" --out "$OUT/$mode" --train-limit-s "$TRAIN_S" --eval-limit-s 600 --quiet \
    --env TRAIN_BATCH_TOKENS=262144 --env STEP_LOG_EVERY=25 --env EXPORT_RESERVE_SECONDS=0 \
    --env EVAL_MODE="${EVAL_MODE:-sliding}" || true
  echo "$mode: $(( $(date +%s) - start )) s wall for the whole run"
  tail -n 5 "$OUT/$mode/train_seed1.log"
done
python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = {}
for mode in ("sandbox", "no-sandbox"):
    r = json.loads((out / mode / "seed1" / "result.json").read_text())
    rows[mode] = r
    v = {x["rule"]: x["verdict"] for x in r["verdicts"]}
    print(f"{mode:>10}: status {r['status']} ({r['reason']}), sandbox {r['isolation'].get('sandbox')}, "
          f"steps {r['steps']}, step_avg_ms {r['step_avg_ms']}, train {r['train_time_s']} s, "
          f"export {r.get('export_time_s')} s, train phase {r['train_phase_wall_s']} s, "
          f"eval phase {r['eval_phase_wall_s']} s, val_bpb {r['val_bpb']}, "
          f"isolation {v.get('isolation_network')}/{v.get('isolation_files')}/{v.get('isolation_processes')}, "
          f"score {r.get('score_source')} (coverage/order/normalization/causality {v.get('score_coverage')}/"
          f"{v.get('score_order')}/{v.get('normalization')}/{v.get('causality')})")
a, b = rows["sandbox"]["step_avg_ms"], rows["no-sandbox"]["step_avg_ms"]
if a and b:
    print(f"step time sandboxed / unsandboxed = {a / b:.4f} ({a:.2f} ms vs {b:.2f} ms)")
PY
