"""A cheating trainer: the native protocol, plus one attack on the harness's walls (CHEAT=...).

Each attack is one function below, named for its class (issue 18). Whatever an attack
manages to get is printed as ``cheat: <what> <result>`` and, where it would help the
score, written into the artifact, so a test can see both the attempt and what it won.

  read_other_split  train reads the val files (eval: the train files) by their real
                    paths through open(), os.open(dir_fd=...), os.link and a `cat` child
  write_data        train overwrites the source val shard (by its real path) and a file
                    of its own DATA_PATH
  outlive           train starts a double-forked, setsid, empty-environment child that
                    keeps "training" and writes weights to /tmp for eval
  leave_files       train leaves weights in /tmp, /dev/shm and $HOME/.cache for eval
  symlink_artifact  train puts a symlink to a folder and a FIFO in ARTIFACT_DIR
  early_mark        rank 0 marks train_end at once; training (rank 1) goes on CHEAT_SLEEP_S
  libc_connect      eval connects to 127.0.0.1:CHEAT_PORT through libc (ctypes), not Python
CHEAT_VAL_FILE / CHEAT_TRAIN_FILE: the real source paths (what a cheat could learn).
CHEAT_MARK: a word put in the command line of any process the cheat leaves behind.
"""

import ctypes
import ctypes.util
import json
import math
import os
import socket
import struct
import subprocess
import sys
import time

HIDDEN = ("/tmp/pgolf_hidden.bin", "/dev/shm/pgolf_hidden.bin", "~/.cache/pgolf_hidden.bin")


def event(name, **fields):
    if int(os.environ.get("RANK", "0")) == 0:
        print(":::PGOLF " + json.dumps({"event": name, **fields}), flush=True)


def say(what, result):
    print(f"cheat: {what} {result}", flush=True)


def read(path, n=64):
    with open(path, "rb") as f:
        return f.read(n)


def write(path, data, mode="wb"):
    with open(path, mode) as f:
        return f.write(data)


def attempt(what, fn):
    try:
        got = fn()
        say(what, f"WON {got!r}"[:120])
        return got
    except OSError as exc:
        say(what, f"refused ({type(exc).__name__}: {exc.strerror or exc})")
        return None


def read_other_split(target):
    folder, name = os.path.split(target)
    got = [
        attempt("open", lambda: read(target)),
        attempt(
            "dir_fd", lambda: os.read(os.open(name, os.O_RDONLY, dir_fd=os.open(folder, os.O_RDONLY)), 64)
        ),
    ]
    link = (
        os.path.join(os.environ["ARTIFACT_DIR"], "linked.bin")
        if os.environ["PGOLF_PHASE"] == "train"
        else None
    )
    if link:
        got.append(attempt("link", lambda: (os.link(target, link), read(link))[1]))
    cat = subprocess.run(["cat", target], capture_output=True)
    say("cat", f"WON {len(cat.stdout)} bytes" if cat.returncode == 0 else "refused")
    return b"".join(g for g in got if isinstance(g, bytes)) + (
        cat.stdout[:64] if cat.returncode == 0 else b""
    )


def write_data():
    val = os.environ["CHEAT_VAL_FILE"]
    attempt("overwrite source val", lambda: write(val, b"\0" * 64, "r+b"))
    own = os.path.join(os.environ["DATA_PATH"], sorted(os.listdir(os.environ["DATA_PATH"]))[0])
    attempt("overwrite own shard", lambda: write(own, b"\0" * 64, "r+b"))


def outlive():
    # Double fork + setsid + an empty environment: no token, no parent, no session.
    child = (
        "import os,time\n"
        "end=time.time()+30\n"
        "while time.time()<end:\n"
        " open('/tmp/pgolf_hidden.bin','wb').write(os.urandom(2_000_000)); time.sleep(0.2)\n"
    )
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execve(sys.executable, [sys.executable, "-c", child, os.environ.get("CHEAT_MARK", "")], {})
        os._exit(0)
    os.wait()
    time.sleep(0.5)
    say("outlive", "child started")


def leave_files():
    for p in HIDDEN:
        p = os.path.expanduser(p)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        attempt(f"leave {p}", lambda p=p: write(p, os.urandom(3_000_000)))


def look_for_hidden():
    found = 0
    for p in HIDDEN:
        p = os.path.expanduser(p)
        if os.path.exists(p):
            found += os.path.getsize(p)
            say(f"found {p}", f"WON {os.path.getsize(p)} bytes")
    say("hidden bytes in eval", str(found))
    return found


def symlink_artifact():
    art = os.environ["ARTIFACT_DIR"]
    big = os.path.join(os.environ.get("TMPDIR", "/tmp"), "big")
    os.makedirs(big, exist_ok=True)
    with open(os.path.join(big, "weights.bin"), "wb") as f:
        f.write(os.urandom(30_000))
    os.symlink(big, os.path.join(art, "more"))
    os.mkfifo(os.path.join(art, "pipe"))


def libc_connect():
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    addr = struct.pack(
        "!HH4s8x", socket.AF_INET, int(os.environ["CHEAT_PORT"]), socket.inet_aton("127.0.0.1")
    )
    # sockaddr_in's family is host byte order: pack it again natively.
    addr = struct.pack("=H", socket.AF_INET) + addr[2:]
    rc = libc.connect(fd, addr, len(addr))
    say("libc connect", "WON connected" if rc == 0 else f"refused (errno {ctypes.get_errno()})")


def main():
    phase, cheat = os.environ["PGOLF_PHASE"], os.environ.get("CHEAT", "")
    rank = int(os.environ.get("RANK", "0"))
    art = os.environ["ARTIFACT_DIR"]
    if phase == "train":
        event("train_start")
        won = b""
        if cheat == "read_other_split":
            won = read_other_split(os.environ["CHEAT_VAL_FILE"])
        elif cheat == "write_data":
            write_data()
        elif cheat == "outlive":
            outlive()
        elif cheat == "leave_files":
            leave_files()
        elif cheat == "libc_connect":
            libc_connect()
        if cheat == "early_mark":
            event("train_end", step=1)  # rank 0 only: "done", while training goes on
            time.sleep(float(os.environ.get("CHEAT_SLEEP_S", "4")))
        else:
            event("step", step=1, train_loss=3.0)
            event("train_end", step=1)
        if rank == 0:
            with open(os.path.join(art, "model.bin"), "wb") as f:
                f.write(b"model" * 200 + won)
            if cheat == "symlink_artifact":
                symlink_artifact()
    else:
        event("eval_start")
        with open(os.path.join(art, "model.bin"), "rb") as f:
            model = f.read()
        if cheat == "read_other_split":
            read_other_split(os.environ["CHEAT_TRAIN_FILE"])
        if cheat == "libc_connect":
            libc_connect()
        hidden = look_for_hidden()
        n_tokens = 0
        for name in sorted(os.listdir(os.environ["DATA_PATH"])):
            if name.startswith("fineweb_val_") and "bytes" not in name:
                with open(os.path.join(os.environ["DATA_PATH"], name), "rb") as f:
                    n_tokens += int.from_bytes(f.read(1024)[8:12], "little")
        # Whatever reached eval outside the artifact lowers the loss: the cheat's payoff.
        val_loss = 3.0 - len(model) / 1e6 - hidden / 1e7
        result = {
            "val_loss": val_loss,
            "val_bpb": val_loss / math.log(2) / 3.0,
            "val_tokens": n_tokens,
            "val_bytes": 3 * n_tokens,
        }
        if rank == 0:
            with open(os.environ["RESULT_PATH"], "w") as f:
                json.dump(result, f)
        event("eval_end", **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
