#!/usr/bin/env bash
# Quality figure (issues 6 + 7): full 11x512 model, one H100, 150 s training loop, global batch
# 262,144 tokens, proxy_large train shards, dev val split with its byte sidecar. Standalone mode:
# float (EMA) val, GPTQ export (shipped) and the simple int6/int8 export compared in the same run.
# Run from the repo root after gpu_prep.sh; writes $OUT/quality.log (or $OUT/$QUALITY_LOG);
# EXPORT_COMPARE=0 skips the simple-export comparison. EVAL_MODE defaults to flat here (the trainer's
# own default is sliding) so that `final val_bpb` stays comparable with the earlier runs.
set -euo pipefail
R=$PWD
cd /tmp/pg
DATA_PATH=/tmp/pg/all \
TOKENIZER_PATH=$R/.carry/fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model \
ARTIFACT_DIR=/tmp/pg/quality MAX_WALLCLOCK_SECONDS=150 EXPORT_RESERVE_SECONDS=0 \
TRAIN_BATCH_TOKENS=262144 EXPORT_COMPARE=${EXPORT_COMPARE:-1} STEP_LOG_EVERY=25 \
EMA_DECAY=0.99 MUON_MOMENTUM_WARMUP_STEPS=100 EVAL_MODE=${EVAL_MODE:-flat} \
python3 "$R/submission_template/train_gpt.py" 2>&1 | tee "$OUT/${QUALITY_LOG:-quality.log}" | grep -v '^  blocks'
