"""Start a command as a terminal starts a foreground job, for the tests that send SIGINT as Ctrl-C.

A shell without job control (a CI script, ``nohup ci &``, ``bash -c 'pytest & wait'``) starts
a background command with SIGINT ignored; its children inherit that, and a Python started with
SIGINT ignored keeps ignoring it (no KeyboardInterrupt), as every Unix program should. A test
that stands for Ctrl-C with ``send_signal(SIGINT)`` must therefore start its child with SIGINT
at the default, as a terminal's foreground job has it, whatever the test runner inherited.
Otherwise the signal is dropped and the test times the child finishing on its own.

Not ``Popen(preexec_fn=...)``: it is unsafe while other threads run (the hub server's do).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

# Reset SIGINT to the default, then exec the command: same pid, and the new Python installs its
# own Ctrl-C handler (it only does so when SIGINT is not ignored at startup).
_EXEC_WITH_SIGINT_DEFAULT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


def as_foreground(cmd: Sequence[str]) -> list[str]:
    """``cmd`` started with SIGINT at its default disposition (the pid is the command's own)."""
    return [sys.executable, "-c", _EXEC_WITH_SIGINT_DEFAULT, *cmd]
