"""Eval techniques on one exported artifact (issue 20): val_bpb, eval seconds and tokens/s of each.

Loads ARTIFACT_DIR/model.pgq and the val split in DATA_PATH once (one process, one GPU), then
scores the whole split with each variant: `flat (evaluate)` is the trainer's own eval phase (the
number quality.sh prints as `final val_bpb`), the others run the "Eval scorers" of train_gpt.py over
the local segment source, as the eval phase does with EVAL_MODE set. Variants run in the order
given; one that would not finish before EVAL_TTT_BUDGET_S (estimated from the tokens/s of the
last run of the same mode) is skipped and listed as such. The table is rewritten to OUT_MD (and
the rows to OUT_JSON) after every variant, so a timeout keeps what finished.

usage: python benchmarks/trainer/eval_ttt.py OUT_PREFIX [name:K=V,K=V ...]   (default: VARIANTS)
The last column extrapolates the eval to the full val set (47.85 M targets) on 8 GPUs from this
GPU's tokens/s (the dev split's documents are longer than FineWeb's: see RESULTS.md).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FULL_VAL_TARGETS = 47_851_520  # the full-size val set's targets (DESIGN: 47.85 M)
FULL_GPUS = 8

VARIANTS = [  # cheap first, then TTT: the defaults (carried, chunk 4096, lr 4e-3) first among them
    "flat (evaluate):",
    "sliding s64:EVAL_MODE=sliding,EVAL_STRIDE=64",
    "doc s64:EVAL_MODE=doc,EVAL_STRIDE=64",
    "ttt:EVAL_MODE=ttt",
    "ttt lr 2e-3:EVAL_MODE=ttt,TTT_LR=0.002",
    "ttt s128:EVAL_MODE=ttt,EVAL_STRIDE=128",
]


@dataclass
class Row:
    name: str
    settings: str
    val_bpb: float | None
    delta_vs_flat: float | None
    eval_s: float | None
    tokens_per_s: float | None
    full_val_8gpu_s: float | None
    note: str = ""


def load_trainer() -> Any:
    spec = importlib.util.spec_from_file_location("train_gpt", REPO / "submission_template" / "train_gpt.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["train_gpt"] = mod
    spec.loader.exec_module(mod)
    return mod


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """'name:K=V,K=V' -> (name, settings); a value may hold commas (TTT_TARGETS=q,k,v)."""
    name, _, rest = text.partition(":")
    settings: dict[str, str] = {}
    key = ""
    for part in [p for p in rest.split(",") if p]:
        if "=" in part:
            key, _, value = part.partition("=")
            settings[key] = value
        elif key:
            settings[key] += "," + part
        else:
            raise SystemExit(f"variant {text!r}: expected name:K=V,K=V")
    return name, settings


def variant_hparams(T: Any, name: str, settings: dict[str, str]) -> Any:
    """The trainer's Hyperparameters (from the environment) with a variant's settings on top."""
    hp = T.Hyperparameters()
    for k, v in settings.items():
        if not hasattr(hp, k):
            raise SystemExit(f"variant {name!r}: unknown hyperparameter {k}")
        setattr(hp, k, type(getattr(hp, k))(v))
    return hp


def table(rows: list[Row]) -> str:
    head = "| variant | settings | val_bpb | vs flat | eval s | tokens/s | full val, 8 GPUs (s) |\n"
    head += "| --- | --- | ---: | ---: | ---: | ---: | ---: |\n"

    def f(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    return head + "".join(
        f"| {r.name} | {r.settings or '(eval phase)'} | {f(r.val_bpb, '.5f')} | {f(r.delta_vs_flat, '+.5f')} "
        f"| {f(r.eval_s, '.1f')} | {f(r.tokens_per_s, ',.0f')} | {f(r.full_val_8gpu_s, '.0f')}"
        f"{' ' + r.note if r.note else ''} |\n"
        for r in rows
    )


def main() -> int:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    prefix = Path(sys.argv[1])
    prefix.parent.mkdir(parents=True, exist_ok=True)
    variants = [parse_variant(v) for v in (sys.argv[2:] or VARIANTS)]
    budget = float(os.environ.get("EVAL_TTT_BUDGET_S", "300"))
    t_start = time.perf_counter()
    T = load_trainer()
    hp = T.Hyperparameters()
    rt = T.Runtime(hp)
    model = T.load_model_from_artifact(os.path.join(hp.ARTIFACT_DIR, T.ARTIFACT_NAME), hp, rt)
    tokens, tok_bytes, source = T.load_validation(hp)
    n = len(tokens) - 1
    print(f"artifact {hp.ARTIFACT_DIR}, val {n:,d} targets ({source}), budget {budget:.0f}s", flush=True)
    rows: list[Row] = []
    rate: dict[str, float] = {}  # last tokens/s per mode: what the budget check estimates from
    flat_bpb = None
    for name, settings in variants:
        vhp = variant_hparams(T, name, settings)
        mode = "evaluate" if not settings else vhp.EVAL_MODE
        left = budget - (time.perf_counter() - t_start)
        text = ",".join(f"{k}={v}" for k, v in settings.items())
        if mode in rate and n / rate[mode] > left:
            rows.append(
                Row(
                    name,
                    text,
                    None,
                    None,
                    None,
                    None,
                    None,
                    f"skipped: ~{n / rate[mode]:.0f}s > {left:.0f}s left",
                )
            )
            print(f"{name}: skipped (budget)", flush=True)
            continue
        rt.sync()
        t0 = time.perf_counter()
        if mode == "evaluate":
            res = T.evaluate(model, tokens, tok_bytes, vhp, rt)
        else:
            res = T.evaluate(model, tokens, tok_bytes, vhp, rt, mode=vhp.EVAL_MODE)
        rt.sync()
        dt = time.perf_counter() - t0
        rate[mode] = n / dt
        bpb = float(res["val_bpb"])
        flat_bpb = bpb if flat_bpb is None else flat_bpb
        full_s = FULL_VAL_TARGETS / FULL_GPUS / rate[mode]
        rows.append(Row(name, text, bpb, bpb - flat_bpb, dt, rate[mode], full_s))
        print(
            f"{name}: val_bpb {bpb:.6f} ({bpb - flat_bpb:+.5f}) {dt:.1f}s {rate[mode]:,.0f} tok/s", flush=True
        )
        prefix.with_suffix(".md").write_text(table(rows))
        prefix.with_suffix(".json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
        if not math.isfinite(bpb):
            return 1
    print(table(rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
