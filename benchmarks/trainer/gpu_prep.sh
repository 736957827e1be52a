#!/usr/bin/env bash
# Prepare a bare device machine: brotli from the carried wheel, proxy data unpacked under /tmp/pg.
# Carried (git-excluded): .whl/brotli-*.whl, .carry/train/*.bin.xz (proxy_large sp8192_caseops),
# .carry/val/fineweb_val_*.bin (dev val split + byte sidecar), .carry/*.model (tokenizer).
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/brotli-*.whl
mkdir -p /tmp/pg/train /tmp/pg/all
for f in .carry/train/*.xz; do xz -dc "$f" > "/tmp/pg/train/$(basename "${f%.xz}")" & done; wait
ln -sf /tmp/pg/train/*.bin /tmp/pg/all/
cp .carry/val/fineweb_val_*.bin /tmp/pg/all/
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
