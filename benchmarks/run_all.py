"""Run every ``benchmarks/*_bench.py`` in its own process; exit non-zero if any missed its target.

Each benchmark prints its table and writes its results under ``benchmarks/results/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("*_bench.py"))
    if argv:  # names to run, e.g. `fetch` for fetch_bench.py
        scripts = [s for s in scripts if s.stem.removesuffix("_bench") in argv]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
    )
    failed = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], env=env, check=False).returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"benchmarks that missed their target or failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"{len(scripts)} benchmark(s) ran")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
