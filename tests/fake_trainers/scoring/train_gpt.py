"""A fake trainer speaking eval protocol v2 (the scoring channel), for tests/test_scoring.py.

Its "model" is a fixed random bigram table over VOCAB ids (causal, normalized). FAKE_SCORE picks
what it does with it:
  honest        scores every target once, in order; writes its own figures to RESULT_PATH
  skip          returns one NLL too few for its second segment
  twice         sends the NLLs of its first segment again after the commit
  reversed      returns each segment's NLLs in reverse order
  unnormalized  scores with probabilities scaled by 1.5 (they sum to 1.5)
  lookahead     scores target t with a model that also sees token t+1
  oversize      asks for huge segments and fits a bigram on each before scoring it
  claim         scores honestly, then writes a 10% better val_bpb into RESULT_PATH
Self-contained: numpy and the standard library only.
"""

import json
import math
import os
import socket
import struct
import sys

import numpy as np

VOCAB = 128


def event(name, **fields):
    if int(os.environ.get("RANK", "0")) == 0:
        print(":::PGOLF " + json.dumps({"event": name, **fields}), flush=True)


def send(sock, header, *arrays):
    arrays = [np.ascontiguousarray(a) for a in arrays]
    raw = json.dumps({**header, "arrays": [[a.dtype.str, list(a.shape)] for a in arrays]}).encode()
    sock.sendall(struct.pack("<I", len(raw)) + raw + b"".join(a.tobytes() for a in arrays))


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise SystemExit("fake: the harness closed the channel")
        buf += chunk
    return buf


def recv(sock):
    header = json.loads(recv_exact(sock, struct.unpack("<I", recv_exact(sock, 4))[0]))
    arrays = []
    for dtype, shape in header.pop("arrays", []):
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        arrays.append(np.frombuffer(recv_exact(sock, n), dtype=dtype).reshape(shape))
    if header["op"] == "error":
        raise SystemExit(f"fake: harness refused: {header['message']}")
    return header, arrays


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


BIGRAM = log_softmax(np.random.default_rng(0).normal(size=(VOCAB, VOCAB)))  # [prev, next]
AHEAD = np.random.default_rng(1).normal(size=(VOCAB, VOCAB)) * 3  # [following, current]


def distributions(mode, tokens, n):
    """(rows, nll): rows(idx) gives the log-probs (len(idx), VOCAB) of those targets of a segment
    whose last n positions are targets; nll the NLL of every target."""
    c = len(tokens) - n
    prev = tokens[c - 1 : -1].astype(np.int64) % VOCAB
    tgt = tokens[c:].astype(np.int64) % VOCAB
    table = BIGRAM
    if mode == "oversize":  # "test-time training" on the whole segment before scoring it
        counts = np.full((VOCAB, VOCAB), 0.01)
        np.add.at(counts, (prev, tgt), 1.0)
        table = np.log(counts / counts.sum(axis=1, keepdims=True))
    if mode == "unnormalized":
        table = table + math.log(1.5)
    lp = table[prev] if mode == "lookahead" else None
    if mode == "lookahead":
        nxt = np.append(tgt[1:], -1)
        has = nxt >= 0
        lp[has] = log_softmax(lp[has] + AHEAD[nxt[has]])

    def rows(idx):
        return lp[idx] if lp is not None else table[prev[idx]]

    nll = -lp[np.arange(n), tgt] if lp is not None else -table[prev, tgt]
    return rows, nll


def main():
    phase, mode = os.environ["PGOLF_PHASE"], os.environ.get("FAKE_SCORE", "honest")
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if phase == "train":
        event("train_start")
        event("step", step=1, train_loss=4.0)
        if rank == 0:
            with open(os.path.join(os.environ["ARTIFACT_DIR"], "model.bin"), "wb") as f:
                f.write(BIGRAM.astype(np.float32).tobytes())
        event("train_end", step=1)
        return 0
    assert not os.environ.get("DATA_PATH"), "v2: the eval phase gets no val files"
    if os.environ.get("FAKE_VAL_FILE"):  # nor the real ones, by path (sandboxed)
        try:
            open(os.environ["FAKE_VAL_FILE"], "rb").close()
            event("note", val_file="readable")
        except OSError:
            event("note", val_file="refused")
    event("eval_start")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.environ["PGOLF_SCORE_SOCKET"])
    send(sock, {"op": "hello", "rank": rank, "world": world})
    recv(sock)
    nll_sum, n_targets, n_bytes = 0.0, 0, 0
    ask = 10**9 if mode == "oversize" else 5000
    while True:
        send(sock, {"op": "next", "max_targets": ask, "context": 1})
        h, arrs = recv(sock)
        if h["op"] == "done":
            break
        tokens, tbytes, n, i = arrs[0], arrs[1], h["n_targets"], h["index"]
        rows, nll = distributions(mode, tokens, n)
        sent = nll[::-1] if mode == "reversed" else nll
        if mode == "skip" and i == 1:
            sent = sent[:-1]
        send(sock, {"op": "nll", "index": i}, sent.astype("<f4"))
        h, _ = recv(sock)
        if h["op"] == "audit":
            send(sock, {"op": "logprobs", "index": i}, rows(np.array(h["targets"])).astype("<f4"))
            h, _ = recv(sock)
        assert h == {"op": "committed", "index": i}, h
        if mode == "twice" and i == 0:
            send(sock, {"op": "nll", "index": i}, sent.astype("<f4"))
            recv(sock)
        nll_sum += float(nll.astype(np.float32).astype(np.float64).sum())
        n_targets += n
        n_bytes += int(tbytes.sum())
    send(sock, {"op": "bye"})
    sock.close()
    # Each rank writes its part; rank 0 adds them up (no process group in this fake).
    out = os.environ.get("RESULT_PATH", "")
    if out:  # written whole, then renamed: rank 0 must never read a half-written part
        with open(f"{out}.rank{rank}.tmp", "w") as f:
            json.dump([nll_sum, n_targets, n_bytes], f)
        os.replace(f"{out}.rank{rank}.tmp", f"{out}.rank{rank}")
    if rank == 0 and out:
        import time

        parts = []
        for r in range(world):
            for _ in range(200):
                if os.path.exists(f"{out}.rank{r}"):
                    break
                time.sleep(0.05)
            with open(f"{out}.rank{r}") as f:
                parts.append(json.load(f))
        s, n, b = math.fsum(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts)
        res = {"val_loss": s / n, "val_bpb": s / math.log(2) / b, "val_tokens": n, "val_bytes": b}
        if mode == "claim":
            res["val_bpb"] *= 0.9
        with open(out, "w") as f:
            json.dump(res, f)
        event("eval_end", **res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
