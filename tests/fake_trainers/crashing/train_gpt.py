"""A fake native-protocol trainer that dies the ways a competitor's first runs die.

FAKE_MODE (unset: a well-behaved run of two steps):
  setup_error  prints the reference trainer's one-line error and exits 2 before train_start
               (the same on every seed: the environment's fault)
  seed_error   the same, but only for the seeds in FAKE_BAD_SEEDS (comma-separated)
  oom          after train_start, holds FAKE_ALLOC_MB MiB for a moment, then is SIGKILLed
               the way the kernel's memory killer does it
"""

import json
import os
import signal
import sys
import time


def event(name, **fields):
    print(":::PGOLF " + json.dumps({"event": name, **fields}), flush=True)


def main():
    mode = os.environ.get("FAKE_MODE", "")
    seed = os.environ["SEED"]
    print("c10d warning: hostname could not be resolved (noise the terminal should not show)", flush=True)
    if mode == "setup_error" or (mode == "seed_error" and seed in os.environ["FAKE_BAD_SEEDS"].split(",")):
        print("Traceback noise line that is not the error", flush=True)
        print("train_gpt.py: error: environment NUM_LAYERS='x': expected a int", file=sys.stderr, flush=True)
        return 2
    if os.environ["PGOLF_PHASE"] == "eval":
        result = {"val_loss": 2.0, "val_bpb": 1.0, "val_tokens": 10, "val_bytes": 29}
        with open(os.environ["RESULT_PATH"], "w") as f:
            json.dump(result, f)
        return 0
    event("train_start")
    event("step", step=1, train_loss=5.0, lr_scale=0.5, tokens=2048)
    time.sleep(0.1)
    event("step", step=2, train_loss=4.0, lr_scale=1.0, tokens=4096)
    if mode == "oom":
        blob = b"x" * (int(os.environ.get("FAKE_ALLOC_MB", "400")) << 20)  # written: resident
        time.sleep(1.5)  # long enough for the harness to sample it
        os.kill(os.getpid(), signal.SIGKILL)
        print(len(blob))
    with open(os.path.join(os.environ["ARTIFACT_DIR"], "model.bin"), "wb") as f:
        f.write(b"m" * 100)
    event("train_end", step=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
