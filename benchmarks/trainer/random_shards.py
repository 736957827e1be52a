"""Uniform random token shards for throughput-only device calls (the step's cost does not depend
on which tokens it sees), so a call can carry other things (e.g. the flash-attn 4 wheels) instead
of the 19 MB of proxy train shards.

usage: python benchmarks/trainer/random_shards.py OUT_DIR [N_SHARDS=3] [TOKENS_PER_SHARD=10000000]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from harness.shards import write_shard

VOCAB = 8192


def main() -> int:
    out = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    per = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000_000
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        write_shard(out / f"fineweb_train_{i:06d}.bin", rng.integers(0, VOCAB, per, dtype=np.uint16))
    print(f"{n} random shards of {per:,d} tokens in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
