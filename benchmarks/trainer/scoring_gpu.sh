#!/usr/bin/env bash
# Eval protocol v2 vs v1 on the GPU (issue 19): the reference trainer's eval time on the same
# artifact and val set, tokens from DATA_PATH (v1) or from the harness's scoring channel (v2).
# Run from the repo root after gpu_prep.sh, with PYTHONPATH=/tmp/site (brotli). Steps:
#  1. a real artifact: the default 11x512 model, train phase of TRAIN_S (default 60) seconds;
#  2. a val set of VAL_REPEAT (default 48) copies of the dev val split and its byte sidecar
#     (~19.9 M targets: seconds of eval, enough to time);
#  3. scoring_gpu.py: v1, v2 alternating, REPS (default 3) each, on NPROC (default: all GPUs),
#     with EVAL_MODE (default flat: the fastest scorer, so the channel's share is the largest;
#     the trainer's own default, sliding stride 64, is ~40x slower per target).
# Writes $OUT/scoring_gpu.json (OUT default /tmp/scoring_gpu), the logs under $OUT/scoring_gpu_logs/, and prints a table.
set -euo pipefail
R=$PWD
export EVAL_MODE=${EVAL_MODE:-flat}
OUT=${OUT:-/tmp/scoring_gpu}
NPROC=${NPROC:-$(nvidia-smi -L | wc -l)}
mkdir -p /tmp/pg/train_only /tmp/pg/val_big
ln -sf /tmp/pg/train/*.bin /tmp/pg/train_only/
if [ ! -f /tmp/pg/scoring_art/model.pgq ]; then
  PGOLF_PHASE=train DATA_PATH=/tmp/pg/train_only ARTIFACT_DIR=/tmp/pg/scoring_art \
  TOKENIZER_PATH=$R/.carry/fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model \
  MAX_WALLCLOCK_SECONDS=${TRAIN_S:-60} STEP_LOG_EVERY=50 \
  python3 -m torch.distributed.run --standalone --local-addr=127.0.0.1 --nproc_per_node="$NPROC" \
    "$R/submission_template/train_gpt.py" 2>&1 | grep -v '^  blocks' | tail -5
fi
python3 - "${VAL_REPEAT:-48}" <<'PY'
import sys
import numpy as np
sys.path.insert(0, ".")
from harness.shards import read_shard, write_shard
n = int(sys.argv[1])
for name in ("fineweb_val_000000.bin", "fineweb_val_bytes_000000.bin"):
    write_shard(f"/tmp/pg/val_big/{name}", np.tile(np.asarray(read_shard(f"/tmp/pg/all/{name}")), n))
PY
python3 "$R/benchmarks/trainer/scoring_gpu.py" /tmp/pg/scoring_art /tmp/pg/val_big "$NPROC" "$OUT/scoring_gpu.json"
