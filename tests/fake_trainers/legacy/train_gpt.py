"""A fake trainer in the challenge's older style: one process trains and evaluates, and only
its log says what happened (no native protocol). For the harness's legacy-protocol tests."""

import os
import sys
import time

print(f"seed:{os.environ.get('SEED', '0')}")
for step in (1, 2, 3):
    time.sleep(0.05)
    print(f"step:{step}/3 train_loss:{4.0 / step:.4f} train_time:{step * 50}ms step_avg:50.00ms")
print("stopping_early: wallclock_cap train_time:150ms step:3/3")
print("Serialized model int8+zlib: 12000 bytes")
print("Total submission size int8+zlib: 15000 bytes")
print("final_int8_zlib_roundtrip val_loss:2.5000 val_bpb:1.4800 eval_time:120ms")
print("final_int8_zlib_roundtrip_exact val_loss:2.50001234 val_bpb:1.48004321")
sys.exit(0)
