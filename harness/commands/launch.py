"""`pgolf launch`: seeds fanned out over GPU pods with SkyPilot (harness/pods.py)."""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from harness.commands.run import parse_seeds
from harness.errors import PgolfError
from harness.pods import DEFAULT_ACCELERATORS, make_plan, pod_commands, script, task_yaml
from harness.rules import RULES
from harness.variants import DEFAULT_VARIANT, VARIANTS

HELP = "run seeds on several GPU pods at once (writes a SkyPilot task, prints or runs `sky`)"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("launch", help=HELP, description=HELP)
    p.add_argument(
        "submission_dir", type=Path, metavar="SUBMISSION_DIR", help=f"folder holding {RULES.code_filename}"
    )
    p.add_argument(
        "--seeds",
        default=",".join(map(str, RULES.default_seeds)),
        help="comma-separated (default %(default)s)",
    )
    p.add_argument("--pods", type=int, default=None, help="how many pods (default: one per seed)")
    p.add_argument(
        "--image", required=True, help="the pushed pgolf image, e.g. ghcr.io/you/pgolf@sha256:<digest>"
    )
    p.add_argument("--name", default=None, help="run name for clusters and folders (default: the folder's)")
    p.add_argument("--accelerators", default=DEFAULT_ACCELERATORS, help="per pod (default %(default)s)")
    p.add_argument(
        "--nproc", type=int, default=RULES.record_gpu_count, help="processes per phase (default 8)"
    )
    p.add_argument("--variant", default=DEFAULT_VARIANT, help=f"data: one of {', '.join(VARIANTS)}")
    p.add_argument("--train-shards", type=int, default=None, metavar="N", help="fetch only N train shards")
    p.add_argument(
        "--data-revision", default="main", help="dataset commit/tag for every pod (default main; pin it)"
    )
    p.add_argument("--cloud", default=None, help="SkyPilot cloud, e.g. runpod (default: SkyPilot chooses)")
    p.add_argument("--disk-size", type=int, default=100, help="disk per pod in GB (default 100)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where the task and the pods' runs go (default runs/pods-<name>)",
    )
    p.add_argument(
        "--run",
        action="store_true",
        help="run the sky commands now (needs the sky CLI: pipx install 'skypilot[runpod]')",
    )


def main(args: argparse.Namespace) -> int:
    seeds = parse_seeds(args.seeds)
    plan = make_plan(
        args.submission_dir,
        seeds=seeds,
        pods=args.pods if args.pods is not None else len(seeds),
        image=args.image,
        run_name=args.name,
        accelerators=args.accelerators,
        nproc=args.nproc,
        variant=args.variant,
        train_shards=args.train_shards,
        data_revision=args.data_revision,
        cloud=args.cloud,
        disk_size_gb=args.disk_size,
    )
    out: Path = args.out or Path("runs") / f"pods-{plan.run_name}"
    out.mkdir(parents=True, exist_ok=True)
    task_path = out / "task.yaml"
    task_path.write_text(task_yaml(plan), "utf-8")
    cmds = pod_commands(plan, task_path, out)
    (out / "commands.sh").write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + script(cmds), "utf-8")
    groups = ", ".join("/".join(map(str, g)) for g in plan.seed_groups)
    print(f"pgolf launch: {plan.pods} pod(s) of {plan.accelerators}, seeds {groups}; task {task_path}")
    if not args.run:
        print(f"run these (also in {out / 'commands.sh'}):\n")
        print(script(cmds))
        return 0
    if shutil.which("sky") is None:
        raise PgolfError(
            "`sky` not found: install SkyPilot in an environment of its own (pipx install 'skypilot[runpod]'), then `sky check`"
        )
    procs = [subprocess.Popen(c) for c in cmds.launch]
    failed = [shlex.join(c) for c, p in zip(cmds.launch, procs, strict=True) if p.wait() != 0]
    for c in cmds.collect:
        if subprocess.run(c).returncode != 0:
            failed.append(shlex.join(c))
    if failed:
        print(
            f"pgolf launch: failed: {failed[0]} (and {len(failed) - 1} more); pods kept for a look",
            file=sys.stderr,
        )
        print(f"give them back with: {shlex.join(cmds.down)}", file=sys.stderr)
        return 1
    print(f"pgolf launch: every pod's run is under {out}; merge them with:\n  {shlex.join(cmds.gather)}")
    print(f"then give the pods back: {shlex.join(cmds.down)}")
    return 0
