#!/usr/bin/env bash
# CPU rehearsal preset: train phase (60 s budget) then eval phase on the full dev val split.
set -u
. /work/main/.venv/bin/activate
C=/work/shared/data/proxy/sp8192_caseops
W=/tmp/reh_$1_${DIM:-128}; rm -rf $W; mkdir -p $W/train $W/val
ln -s $C/fineweb_train_*.bin $W/train/; ln -s $C/fineweb_val_*.bin $W/val/
export COMPILE=0 NUM_LAYERS=2 MODEL_DIM=${DIM:-128} NUM_HEADS=${HEADS:-4} NUM_KV_HEADS=${KVH:-2} MLP_MULT=2 TRAIN_SEQ_LEN=256 \
  TRAIN_BATCH_TOKENS=$1 MAX_MICRO_BATCH_TOKENS=$1 LR_WARMUP_STEPS=5 EMBED_LR=0.02 MATRIX_LR=0.08 \
  SCALAR_LR=0.04 EXPORT_RESERVE_SECONDS=10 GPTQ_CALIB_TOKENS=8192 VAL_BATCH_TOKENS=16384 \
  MAX_WALLCLOCK_SECONDS=60 ARTIFACT_DIR=$W/art \
  TOKENIZER_PATH=/work/shared/tokenizers/fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model
s=$(date +%s)
PGOLF_PHASE=train DATA_PATH=$W/train python /work/main/submission_template/train_gpt.py > $W/train.log 2>&1
m=$(date +%s)
PGOLF_PHASE=eval DATA_PATH=$W/val RESULT_PATH=$W/result.json python /work/main/submission_template/train_gpt.py > $W/eval.log 2>&1
e=$(date +%s)
echo "batch $1 dim ${DIM:-128}: train phase $((m-s)) s, eval phase $((e-m)) s, $(grep -c '"step"' $W/train.log) step events, last: $(grep '"step"' $W/train.log | tail -1)"
cat $W/result.json
