"""Fixture stand-in for a leaderboard train_gpt.py. pgolf check never runs it."""

import os

SEED = int(os.environ.get("SEED", 7))
MAX_WALLCLOCK_SECONDS = float(os.environ.get("MAX_WALLCLOCK_SECONDS", 600.0))


def main() -> None:
    raise SystemExit("fixture only: this file is never executed")


if __name__ == "__main__":
    main()
