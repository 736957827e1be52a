"""Which entropy coder for the artifact's level streams (issue 7)? Reads a real model.pgq and
compares, per tensor group, the stored brotli chunks with brotli over the whole group, lrzip
(ZPAQ, `-z`; when the binary exists), xz/LZMA2, and the information-theoretic floors: the
order-0 entropy of the group, of each tensor, conditioned on the column, and on the previous
level in the row (plug-in estimates; the column one is biased low).

usage: python benchmarks/trainer/coder_compare.py ARTIFACT [--no-lrzip]
Runs on CPU; the artifact of runs/10 was fetched from the device for RESULTS.md.
"""

from __future__ import annotations

import lzma
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "submission_template"))
import train_gpt as T

h0_bytes = T.entropy_bytes  # order-0 entropy of the values, in bytes


def floors(header: dict, group: str, q: np.ndarray) -> dict[str, float]:
    out = {"per_tensor": 0.0, "given_column": 0.0, "given_prev": 0.0}
    for e in header["tensors"]:
        if e.get("group") != group or e["kind"] != "q":
            continue
        rows, cols = e["shape"]
        t = q[e["offset"] : e["offset"] + rows * cols].reshape(rows, cols).astype(np.int64)
        out["per_tensor"] += h0_bytes(t)
        out["given_column"] += sum(h0_bytes(t[:, j]) for j in range(cols)) if rows >= 1024 else h0_bytes(t)
        a, b = t[:, 1:].ravel(), t[:, :-1].ravel()
        out["given_prev"] += h0_bytes(a * 256 + b) - h0_bytes(b) + h0_bytes(t[:, 0])
    return out


def main() -> int:
    path = sys.argv[1]
    use_lrzip = "--no-lrzip" not in sys.argv and shutil.which("lrzip") is not None
    header, raw = T.read_container(path)
    stored: dict[str, int] = {}
    for c in header["chunks"]:
        stored[c["group"]] = stored.get(c["group"], 0) + c["stored_bytes"]
    brotli = T._brotli()
    cols = [
        "raw",
        "brotli stored",
        "brotli whole",
        "xz -9e",
        "lrzip -z",
        "H0 group",
        "H0 tensor",
        "H|column",
        "H|prev",
    ]
    print("| group | " + " | ".join(cols) + " |")
    print("| --- |" + " ---: |" * len(cols))
    total: dict[str, float] = {}
    for g in ("attn", "mlp", "embed", "scales", "small"):
        d = raw.get(g, b"")
        row = {"raw": len(d), "brotli stored": stored.get(g, 0)}
        row["brotli whole"] = len(brotli.compress(d, quality=11, lgwin=24))
        row["xz -9e"] = len(lzma.compress(d, preset=9 | lzma.PRESET_EXTREME))
        if use_lrzip:
            with tempfile.TemporaryDirectory() as tmp:
                f = Path(tmp) / g
                f.write_bytes(d)
                t0 = time.perf_counter()
                subprocess.run(["lrzip", "-q", "-z", "-f", str(f)], check=True, capture_output=True)
                row["lrzip -z"] = (Path(tmp) / f"{g}.lrz").stat().st_size
                print(f"<!-- lrzip {g}: {time.perf_counter() - t0:.1f}s -->", file=sys.stderr)
        if g in ("attn", "mlp", "embed"):
            q = np.frombuffer(d, dtype=np.int8)
            row["H0 group"] = h0_bytes(q)
            f = floors(header, g, q)
            row["H0 tensor"], row["H|column"], row["H|prev"] = (
                f["per_tensor"],
                f["given_column"],
                f["given_prev"],
            )
        for k, v in row.items():
            total[k] = total.get(k, 0) + v
        print(f"| {g} | " + " | ".join(f"{row[c]:,.0f}" if c in row else "" for c in cols) + " |")
    print("| all | " + " | ".join(f"{total[c]:,.0f}" if c in total else "" for c in cols) + " |")
    repack(path, header, raw)
    return 0


def repack(path: str, header: dict, raw: dict[str, bytes]) -> None:
    """The same levels, scales and small tensors written by the trainer's current write_artifact
    (its default codecs); checks that it reads back to the same tensors."""
    tensors = T.unpack_tensors(header, raw)
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "repacked.pgq")
        info = T.write_artifact(out, header["config"], tensors, T.Hyperparameters(), print)
        _, before = T.read_artifact(path)
        _, after = T.read_artifact(out)
        same = before.keys() == after.keys() and all(bool((before[k] == after[k]).all()) for k in before)
    old = Path(path).stat().st_size
    print(
        f"\nrepacked with the current write_artifact: {info['bytes']:,d} B (was {old:,d} B, "
        f"{info['bytes'] - old:+,d} B) in {info['compress_s']:.1f}s; reads back identical: {same}"
    )


if __name__ == "__main__":
    sys.exit(main())
