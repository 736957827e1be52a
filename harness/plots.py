"""Training curves of a run as a PNG (matplotlib, Agg: no display needed).

Left: training loss per step of every seed (``step`` events). Right, on the same
step axis: val_bpb of every seed (``val`` events, when the trainer validated during
training) and the final, harness-measured val_bpb of each seed at its last step.
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
from matplotlib.figure import Figure

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


def curves_figure(curves: Sequence[SeedCurves], title: str = "") -> Figure:
    """Training loss (left) and val_bpb (right) of every seed, on one step axis: the whole run.

    The right panel shares the left's step axis, so a seed's final score sits at the step
    it trained to; each final (harness-measured) val_bpb is a star labelled with its value,
    joined to the trainer's own validation points where there are any, and several seeds
    get their mean as a dashed line.
    """
    fig, (ax_loss, ax_bpb) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100, sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    finals: list[float] = []
    for i, c in enumerate(curves):
        color = colors[i % len(colors)]
        if c.train:
            xs, ys = zip(*c.train, strict=True)
            ax_loss.plot(xs, ys, color=color, lw=1.0, label=f"seed {c.seed}")
        points = list(c.val)
        if points:
            xs, ys = zip(*points, strict=True)
            ax_bpb.plot(xs, ys, color=color, lw=1.0, marker=".", label=f"seed {c.seed} during training")
        if c.final_bpb is not None:
            x = c.final_step if c.final_step is not None else (points[-1][0] if points else 0)
            if points:
                ax_bpb.plot([points[-1][0], x], [points[-1][1], c.final_bpb], color=color, lw=0.8, ls=":")
            ax_bpb.scatter([x], [c.final_bpb], color=color, marker="*", s=120, zorder=3,
                           label=f"seed {c.seed} final {c.final_bpb:.4f}")  # fmt: skip
            ax_bpb.annotate(f"{c.final_bpb:.4f}", (x, c.final_bpb), textcoords="offset points",
                            xytext=(-6, 6 + 9 * (i % 3)), ha="right", fontsize=8, color=color)  # fmt: skip
            finals.append(c.final_bpb)
    if len(finals) >= 2:
        mean = sum(finals) / len(finals)
        ax_bpb.axhline(mean, color="0.4", lw=0.8, ls="--", label=f"mean of finals {mean:.4f}")
    shown = finals + [y for c in curves for _, y in c.val]
    if shown:
        lo, hi = min(shown), max(shown)
        pad = max(0.15 * (hi - lo), 0.002 * abs(hi), 1e-4)  # one point or close seeds: a readable range
        ax_bpb.set_ylim(lo - pad, hi + 3 * pad)
    ax_loss.set_xlim(left=0)
    ax_loss.set_title("training loss")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("train loss (nats/token)")
    ax_bpb.set_title("validation bits per byte (stars: measured by the harness)")
    ax_bpb.set_xlabel("step")
    ax_bpb.set_ylabel("val_bpb")
    ax_bpb.tick_params(labelbottom=True)
    for ax in (ax_loss, ax_bpb):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def render_curves_png(curves: Sequence[SeedCurves], title: str = "") -> bytes:
    """The figure as PNG bytes."""
    fig = curves_figure(curves, title)
    try:
        buf = io.BytesIO()
        # No timestamp metadata: the same run packages to the same bytes.
        fig.savefig(buf, format="png", metadata={"Software": None})
        return buf.getvalue()
    finally:
        plt.close(fig)
