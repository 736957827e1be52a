"""A full-size artifact with random weights, for timing the eval scorers without training first
(runs/30): the work per token does not depend on the weights, their val_bpb means nothing.

usage: python benchmarks/trainer/random_artifact.py OUT_DIR   (model shape: the trainer's env)
Writes OUT_DIR/model.pgq with the `rtn` export on the CPU (~1 minute here).
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_ttt import load_trainer


def main() -> int:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    T = load_trainer()
    hp = T.Hyperparameters()
    rt = T.Runtime(hp)
    torch.manual_seed(0)
    model = T.build_model(hp.model_config(), hp, rt)
    with torch.no_grad():  # every matrix non-zero (the trainer zero-inits the output projections)
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.02)
    hp.EXPORT_MODE, hp.ARTIFACT_TARGET_BYTES = "rtn", 0
    T.export_model(model, hp, rt, "rtn", None, os.path.join(sys.argv[1], T.ARTIFACT_NAME))
    return 0


if __name__ == "__main__":
    sys.exit(main())
