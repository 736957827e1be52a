#!/usr/bin/env bash
# Eval techniques on one artifact per seed (issue 20). Run from the repo root after gpu_prep.sh:
#   benchmarks/trainer/eval_ttt.sh SEED [name:K=V,K=V ...]
# 1. quality.sh's training, unchanged (full 11x512, 150 s, 262,144 tokens/step, dev val with its
#    sidecar; EXPORT_COMPARE=0 only skips the comparison export after the shipped one), so the
#    `final val_bpb` it prints (after export, flat) is quality.sh's number for this seed;
#    log: $OUT/train_seed$SEED.log. SKIP_TRAIN=1 reuses the artifact already in /tmp/pg/quality;
#    KEEP_ARTIFACT=1 copies it to $OUT (to carry it into a later call: the machine is not kept).
#    ARTIFACT_TARGET_BYTES defaults to 15,810,071, the automatic target of runs/25 (H100) and
#    runs/26 (H200), whose trainer was 79,929 bytes: the scorers made the file longer, which would
#    otherwise shrink the weights' budget and blur the comparison with those runs.
# 2. eval_ttt.py scores that artifact with each eval technique (flat, sliding, doc, TTT variants)
#    in one process; table: $OUT/eval_ttt_seed$SEED.md (+ .json, + .log).
# Time: step 1 takes 200-250 s (compile 16-52 s, 150 s training, ~15 s export, three evals); the
# variants then get what is left of EVAL_TTT_TOTAL_S (default 540 s, leaving room for gpu_prep.sh in
# the same 10-minute call), start-up and artifact load included; a variant whose mode already ran
# too slowly to fit is skipped. Rows are written to $OUT as they finish: a kill at the limit keeps them.
# 3. EVAL_RANKS=8: eval_ranks.py then scores it as 8 ranks would (TTT alone and with phase syncs),
#    all on this GPU; table: $OUT/eval_ranks_seed$SEED.md.
set -euo pipefail
SEED=${1:?usage: eval_ttt.sh SEED [variants]}
shift
R=$PWD
T0=$(date +%s)
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}  # gpu_prep.sh installs brotli there
if [ "${SKIP_TRAIN:-0}" != 1 ]; then
  SEED=$SEED EXPORT_COMPARE=0 ARTIFACT_TARGET_BYTES=${ARTIFACT_TARGET_BYTES:-15810071} QUALITY_LOG=train_seed$SEED.log bash "$R/benchmarks/trainer/quality.sh" > /dev/null
  grep -E '^(trained|float|export\[|final)' "$OUT/train_seed$SEED.log"
  if [ "${KEEP_ARTIFACT:-0}" = 1 ]; then cp /tmp/pg/quality/model.pgq "$OUT/model_seed$SEED.pgq"; fi
fi
cd /tmp/pg
export EVAL_TTT_BUDGET_S=${EVAL_TTT_BUDGET_S:-$(( ${EVAL_TTT_TOTAL_S:-540} - $(date +%s) + T0 ))}
export DATA_PATH=/tmp/pg/all ARTIFACT_DIR=/tmp/pg/quality \
  TOKENIZER_PATH=$R/.carry/fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model
python3 "$R/benchmarks/trainer/eval_ttt.py" "$OUT/eval_ttt_seed$SEED" "$@" 2>&1 | tee "$OUT/eval_ttt_seed$SEED.log"
if [ -n "${EVAL_RANKS:-}" ]; then  # 3. the same artifact as EVAL_RANKS ranks score it (eval_ranks.py)
  python3 -m torch.distributed.run --standalone --nproc_per_node="$EVAL_RANKS" \
    "$R/benchmarks/trainer/eval_ranks.py" "$OUT/eval_ranks_seed$SEED" 2>&1 | grep -v '^W' | tail -n 20
fi
