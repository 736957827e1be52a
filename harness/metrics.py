"""Live metrics for TensorBoard (``pgolf run --tensorboard DIR``), one event folder per seed.

Written through tensorboardX (a maintained writer that needs neither TensorFlow nor the
TensorBoard server): ``pip install 'pgolf[tensorboard]'``. Scalars, by step:

    train/loss          the trainer's ``step`` events
    train/lr_scale      its learning-rate multiplier (``lr_scale``, or ``lr`` where a trainer reports that)
    train/tokens_per_s  tokens between two ``step`` events over the harness clock between them
    val/val_bpb, val/val_loss   the trainer's ``val`` events, then the harness-measured final score

Times are the harness's: a trainer's own ``t`` never reaches these files either.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import PgolfError
from harness.protocol import EV_STEP, EV_TRAIN_START, EV_VAL

INSTALL_HINT = "pip install 'pgolf[tensorboard]' (tensorboardX)"


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x)


class TensorBoardSink:
    """Scalars of one seed, written as the harness stamps the trainer's events."""

    @staticmethod
    def available() -> None:
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            raise PgolfError(
                f"--tensorboard: the tensorboardX package is not installed; {INSTALL_HINT}"
            ) from None

    def __init__(self, logdir: Path) -> None:
        from tensorboardX import SummaryWriter

        logdir.mkdir(parents=True, exist_ok=True)
        self.logdir = logdir
        self.writer = SummaryWriter(logdir=str(logdir), flush_secs=5)
        self.step: int = 0
        self._last: tuple[float, float] | None = None  # (harness t, tokens) of the previous step event

    def _scalar(self, tag: str, value: float | None, step: int) -> None:
        if value is not None:
            self.writer.add_scalar(tag, value, global_step=step, walltime=time.time())

    def event(self, t: float, ev: Mapping[str, Any]) -> None:
        name = ev.get("event")
        step = ev.get("step")
        if isinstance(step, int) and not isinstance(step, bool):
            self.step = step
        if name == EV_TRAIN_START:
            self._last = (t, 0.0)
        elif name == EV_STEP:
            self._scalar("train/loss", _number(ev.get("train_loss")), self.step)
            lr = ev.get("lr_scale", ev.get("lr"))
            self._scalar("train/lr_scale", _number(lr), self.step)
            tokens = _number(ev.get("tokens"))
            if tokens is not None:
                if self._last is not None and t > self._last[0] and tokens > self._last[1]:
                    self._scalar(
                        "train/tokens_per_s", (tokens - self._last[1]) / (t - self._last[0]), self.step
                    )
                self._last = (t, tokens)
        elif name == EV_VAL:
            self._scalar("val/val_bpb", _number(ev.get("val_bpb")), self.step)
            self._scalar("val/val_loss", _number(ev.get("val_loss")), self.step)

    def result(self, result: Mapping[str, Any]) -> None:
        """The final, harness-measured score at the seed's last step."""
        steps = result.get("steps")
        step = steps if isinstance(steps, int) else self.step
        self._scalar("val/val_bpb", _number(result.get("val_bpb")), step)
        self._scalar("val/val_loss", _number(result.get("val_loss")), step)

    def close(self) -> None:
        self.writer.close()
