#!/usr/bin/env bash
# Step-capped (60 steps, load-independent) comparison of learning rates for the tiny CPU preset.
. /work/main/.venv/bin/activate
C=/work/shared/data/proxy/sp8192_caseops
for cfg in "0.02 0.08 0.04" "0.01 0.08 0.04" "0.01 0.04 0.04"; do
set -- $cfg
W=/tmp/lr_$1_$2; rm -rf $W
r=$(COMPILE=0 NUM_LAYERS=2 MODEL_DIM=64 NUM_HEADS=2 NUM_KV_HEADS=1 MLP_MULT=2 TRAIN_SEQ_LEN=256 TRAIN_BATCH_TOKENS=2048 MAX_MICRO_BATCH_TOKENS=2048 LR_WARMUP_STEPS=5 EMBED_LR=$1 MATRIX_LR=$2 SCALAR_LR=$3 GPTQ_CALIB_TOKENS=8192 VAL_BATCH_TOKENS=16384 ITERATIONS=60 VAL_TOKEN_LIMIT=65536 DATA_PATH=$C ARTIFACT_DIR=$W python /work/main/submission_template/train_gpt.py 2>&1 | grep -E "final val|float \(EMA")
echo "embed $1 matrix $2 scalar $3: $r"
done
