"""A fake trainer speaking the native protocol, for the harness's tests.

It trains nothing. FAKE_MODE picks a misbehaviour:
  ok             well-behaved (the default)
  sleep_train    sleeps FAKE_SLEEP_S between train_start and train_end (only for the
                 seeds in FAKE_SLEEP_SEEDS, comma-separated, when that is set)
  crash_rank1    rank 1 raises during training
  nan            reports a NaN train loss at step 3
  oversize       writes FAKE_MODEL_BYTES of model
  ignore_sigterm ignores SIGTERM and sleeps in training (writes its pid to FAKE_PID_DIR)
  no_artifact    writes nothing to ARTIFACT_DIR
FAKE_DIST=1 makes the ranks meet over gloo (a real process group).
Attacks on the isolation live in tests/fake_trainers/cheat/.
"""

import json
import math
import os
import signal
import sys
import time


def event(name, **fields):
    if int(os.environ.get("RANK", "0")) == 0:
        print(":::PGOLF " + json.dumps({"event": name, **fields}), flush=True)


def main():
    phase = os.environ["PGOLF_PHASE"]
    mode = os.environ.get("FAKE_MODE", "ok")
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if os.environ.get("FAKE_PID_DIR"):
        with open(os.path.join(os.environ["FAKE_PID_DIR"], f"{phase}_rank{rank}.pid"), "w") as f:
            f.write(str(os.getpid()))
    dist = None
    if os.environ.get("FAKE_DIST") == "1" and world > 1:
        import torch
        import torch.distributed as dist

        dist.init_process_group("gloo")
        t = torch.ones(1)
        dist.all_reduce(t)
        assert int(t.item()) == world
    art = os.environ["ARTIFACT_DIR"]
    if phase == "train":
        assert os.environ["DATA_PATH"] and not any("val" in n for n in os.listdir(os.environ["DATA_PATH"]))
        event("train_start")
        for step in range(1, 6):
            loss = float("nan") if (mode == "nan" and step == 3) else 5.0 / step
            # A trainer's own "t" (here a bogus one) must never reach events.jsonl.
            event("step", step=step, train_loss=loss, t=-1.0)
            time.sleep(0.05)
        if mode == "crash_rank1" and rank == 1:
            raise RuntimeError("fake failure on rank 1")
        sleep_seeds = os.environ.get("FAKE_SLEEP_SEEDS")
        if mode == "sleep_train" and (not sleep_seeds or os.environ["SEED"] in sleep_seeds.split(",")):
            time.sleep(float(os.environ.get("FAKE_SLEEP_S", "3")))
        if mode == "ignore_sigterm":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(3600)
        if rank == 0 and mode != "no_artifact":
            size = int(os.environ.get("FAKE_MODEL_BYTES", "1000"))
            with open(os.path.join(art, "model.bin"), "wb") as f:
                f.write(bytes(i % 251 for i in range(size)))
        if dist is not None:
            dist.barrier()
        event("train_end", step=5)
    else:
        assert os.environ["DATA_PATH"] and not any("train" in n for n in os.listdir(os.environ["DATA_PATH"]))
        event("eval_start")
        with open(os.path.join(art, "model.bin"), "rb") as f:
            model = f.read()
        n_tokens = 0
        for name in sorted(os.listdir(os.environ["DATA_PATH"])):
            if name.startswith("fineweb_val_") and "bytes" not in name:
                with open(os.path.join(os.environ["DATA_PATH"], name), "rb") as f:
                    header = f.read(1024)
                n_tokens += int.from_bytes(header[8:12], "little")
        val_loss = 2.0 + len(model) / 1e6
        result = {
            "val_loss": val_loss,
            "val_bpb": val_loss / math.log(2) / 3.0,
            "val_tokens": n_tokens,
            "val_bytes": 3 * n_tokens,
        }
        if dist is not None:
            dist.barrier()
        if rank == 0:
            with open(os.environ["RESULT_PATH"], "w") as f:
                json.dump(result, f)
        event("eval_end", **result)
    if dist is not None:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
