"""Training curves of a run as a PNG (matplotlib, Agg: no display needed).

Left: training loss per step of every seed (``step`` events). Right: val_bpb of
every seed (``val`` events, when the trainer validated during training) and the
final, harness-measured val_bpb of each seed as a marker at its last step.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: records are packaged on headless pods

import matplotlib.pyplot as plt

from harness.protocol import EV_STEP, EV_VAL
from harness.results import EVENTS_FILE, read_events, seed_dir


@dataclass
class SeedCurves:
    seed: int
    train: list[tuple[int, float]] = field(default_factory=list)  # (step, train_loss)
    val: list[tuple[int, float]] = field(default_factory=list)  # (step, val_bpb)
    final_bpb: float | None = None
    final_step: int | None = None


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x)


def curves_from_events(seed: int, events: Sequence[Mapping[str, Any]]) -> SeedCurves:
    """Step and val points of one seed; events with missing or non-numeric fields are skipped."""
    c = SeedCurves(seed=seed)
    for ev in events:
        step = _num(ev.get("step"))
        if step is None:
            continue
        if ev.get("event") == EV_STEP:
            loss = _num(ev.get("train_loss"))
            if loss is not None:
                c.train.append((int(step), loss))
        elif ev.get("event") == EV_VAL:
            bpb = _num(ev.get("val_bpb"))
            if bpb is not None:
                c.val.append((int(step), bpb))
    return c


def load_curves(
    run_dir: Path, seeds: Sequence[int], results: Mapping[int, Mapping[str, Any]]
) -> list[SeedCurves]:
    """Curves of each seed from ``seed<SEED>/events.jsonl``, with the final val_bpb from result.json."""
    out = []
    for seed in seeds:
        c = curves_from_events(seed, read_events(seed_dir(run_dir, seed) / EVENTS_FILE))
        res = results.get(seed, {})
        c.final_bpb = _num(res.get("val_bpb"))
        steps = res.get("steps")
        if isinstance(steps, int):
            c.final_step = steps
        elif c.train:
            c.final_step = c.train[-1][0]
        out.append(c)
    return out


def render_curves_png(curves: Sequence[SeedCurves], title: str = "") -> bytes:
    """The two-panel figure as PNG bytes."""
    fig, (ax_loss, ax_bpb) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    try:
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, c in enumerate(curves):
            color = colors[i % len(colors)]
            label = f"seed {c.seed}"
            if c.train:
                xs, ys = zip(*c.train, strict=True)
                ax_loss.plot(xs, ys, color=color, lw=1.0, label=label)
            if c.val:
                xs, ys = zip(*c.val, strict=True)
                ax_bpb.plot(xs, ys, color=color, lw=1.0, marker=".", label=label)
            if c.final_bpb is not None:
                x = c.final_step if c.final_step is not None else (c.val[-1][0] if c.val else 0)
                ax_bpb.scatter(
                    [x],
                    [c.final_bpb],
                    color=color,
                    marker="*",
                    s=90,
                    zorder=3,
                    label=f"seed {c.seed} final {c.final_bpb:.4f}",
                )
        ax_loss.set_title("training loss")
        ax_loss.set_xlabel("step")
        ax_loss.set_ylabel("train loss (nats/token)")
        ax_bpb.set_title("validation bits per byte")
        ax_bpb.set_xlabel("step")
        ax_bpb.set_ylabel("val_bpb")
        for ax in (ax_loss, ax_bpb):
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        buf = io.BytesIO()
        # No timestamp metadata: the same run packages to the same bytes.
        fig.savefig(buf, format="png", metadata={"Software": None})
        return buf.getvalue()
    finally:
        plt.close(fig)
