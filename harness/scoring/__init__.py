"""Eval protocol v2: the harness owns the validation set and the metric.

- ``frames``: the wire format (length-prefixed JSON header + raw little-endian arrays).
- ``valset``: the val stream, its targets and byte counts, read by the harness itself.
- ``plan``: which targets each rank scores and how a rank's range is cut into segments.
- ``metric``: pure float64 accounting (val_loss, val_bpb) and the claimed-vs-witnessed check.
- ``audits``: the normalization and causality checks, pure.
- ``server``: the scoring channel (main pass and causality replay) on a Unix socket.
- ``session``: what `pgolf run` uses around its eval phase.
"""
