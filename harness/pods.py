"""Seeds fanned out over GPU pods with SkyPilot (``pgolf launch``).

One SkyPilot task (YAML) serves every pod: our image, ``accelerators: H100:8``, the
submission folder as SkyPilot's ``workdir`` (synced to each pod), ``pgolf fetch`` as
``setup`` and ``pgolf run --seeds $SEEDS`` as ``run``. Each pod is one cluster launched
with its own ``--env SEEDS=...``; its run directory comes back with rsync (SkyPilot
writes an ssh alias per cluster), and ``pgolf gather`` merges them into one run.

Pure: the plan, the YAML and the shell commands are computed here; the command module
writes and runs them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from harness.errors import PgolfError
from harness.rules import RULES
from harness.variants import get_variant

DEFAULT_ACCELERATORS = f"H100:{RULES.record_gpu_count}"
REMOTE_DATA_DIR = "/data"  # the image's PGOLF_DATA_DIR volume
REMOTE_RUNS_DIR = "/runs"  # the image's run-directory volume
SEEDS_ENV = "SEEDS"


@dataclass(frozen=True)
class PodPlan:
    """What `pgolf launch` fans out: which seeds go to which pod, on what image."""

    submission_dir: Path
    run_name: str
    seeds: tuple[int, ...]
    pods: int
    image: str
    accelerators: str = DEFAULT_ACCELERATORS
    nproc: int = RULES.record_gpu_count
    variant: str = "caseops"
    train_shards: int | None = None
    data_revision: str = "main"
    cloud: str | None = None
    disk_size_gb: int = 100

    @property
    def seed_groups(self) -> list[tuple[int, ...]]:
        """Seeds dealt round-robin over the pods: 3 seeds on 3 pods is one seed each."""
        return [self.seeds[k :: self.pods] for k in range(self.pods)]

    def cluster(self, group: tuple[int, ...]) -> str:
        """A cluster name per pod (SkyPilot: lowercase letters, digits, dashes)."""
        return f"pgolf-{self.run_name}-s{'-'.join(str(s).replace('-', 'm') for s in group)}"

    def remote_run_dir(self) -> str:
        return f"{REMOTE_RUNS_DIR}/{self.run_name}"


def make_plan(
    submission_dir: Path,
    *,
    seeds: list[int],
    pods: int,
    image: str,
    run_name: str | None = None,
    accelerators: str = DEFAULT_ACCELERATORS,
    nproc: int = RULES.record_gpu_count,
    variant: str = "caseops",
    train_shards: int | None = None,
    data_revision: str = "main",
    cloud: str | None = None,
    disk_size_gb: int = 100,
) -> PodPlan:
    """A checked plan; bad input is a one-line PgolfError naming the value."""
    entry = submission_dir / RULES.code_filename
    if not entry.is_file():
        raise PgolfError(f"{entry}: not found, expected the submission's {RULES.code_filename}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise PgolfError(f"--seeds {seeds}: expected one or more distinct integers")
    if pods < 1 or pods > len(seeds):
        raise PgolfError(f"--pods {pods}: expected 1 to {len(seeds)} (one seed per pod at most)")
    if not re.fullmatch(r"[^\s@:]+(:[\w.-]+)?(@sha256:[0-9a-f]{64})?", image) or "/" not in image:
        raise PgolfError(
            f"--image {image!r}: expected a pushed image, e.g. ghcr.io/you/pgolf:0.1.0 or ...@sha256:<digest>"
        )
    get_variant(variant)  # an unknown variant fails here, not on the pod
    name = run_name or submission_dir.resolve().name
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:30].strip("-")
    if not slug:
        raise PgolfError(f"--name {name!r}: expected some letters or digits (cluster names are made from it)")
    return PodPlan(
        submission_dir=submission_dir.resolve(),
        run_name=slug,
        seeds=tuple(seeds),
        pods=pods,
        image=image,
        accelerators=accelerators,
        nproc=nproc,
        variant=variant,
        train_shards=train_shards,
        data_revision=data_revision,
        cloud=cloud,
        disk_size_gb=disk_size_gb,
    )


def task_dict(plan: PodPlan) -> dict[str, object]:
    """The SkyPilot task every pod runs; ``SEEDS`` is set per pod at launch."""
    variant = get_variant(plan.variant)
    data_dir = f"{REMOTE_DATA_DIR}/datasets/{variant.dataset}"  # fetch's local layout
    fetch = ["pgolf", "fetch", "--variant", plan.variant, "--revision", plan.data_revision, "--quiet"]
    if plan.train_shards is not None:
        fetch += ["--train-shards", str(plan.train_shards)]
    fetch += ["--data-dir", REMOTE_DATA_DIR]
    run = [
        "pgolf",
        "run",
        ".",  # SkyPilot runs `run` inside the synced workdir: the submission folder
        "--nproc",
        str(plan.nproc),
        "--data-dir",
        data_dir,
        "--out",
        plan.remote_run_dir(),
        "--resume",  # a re-run on the same pod (`sky exec`) keeps finished seeds
    ]
    resources: dict[str, object] = {
        "accelerators": plan.accelerators,
        "image_id": f"docker:{plan.image}",
        "disk_size": plan.disk_size_gb,
    }
    if plan.cloud:
        resources["cloud"] = plan.cloud
    return {
        "name": f"pgolf-{plan.run_name}",
        "resources": resources,
        "workdir": str(plan.submission_dir),
        "envs": {
            SEEDS_ENV: ",".join(map(str, plan.seeds)),  # overridden per pod: --env SEEDS=...
            "PGOLF_IMAGE": plan.image,  # recorded in every result.json: gather compares it
        },
        # doctor for the pod's log only: the run itself enforces and records every limit.
        "setup": "set -euo pipefail\npgolf doctor || true\n" + shlex.join(fetch) + "\n",
        "run": "set -euo pipefail\n" + shlex.join(run) + f' --seeds "${SEEDS_ENV}"\n',
    }


def task_yaml(plan: PodPlan) -> str:
    try:
        import yaml
    except ImportError:
        raise PgolfError("pgolf launch needs PyYAML: pip install 'pgolf[launch]'") from None
    header = (
        f"# SkyPilot task written by `pgolf launch` for {plan.submission_dir.name}: one pod per\n"
        f"# `sky launch --env {SEEDS_ENV}=...` (the commands `pgolf launch` prints).\n"
    )
    return header + yaml.safe_dump(task_dict(plan), sort_keys=False, width=1000)


@dataclass(frozen=True)
class PodCommands:
    launch: list[list[str]]  # one `sky launch` per pod (run them in parallel)
    collect: list[list[str]]  # rsync each pod's run directory back
    gather: list[str]  # merge them into one run
    down: list[str]  # give the pods back


def pod_commands(plan: PodPlan, task_path: Path, local_root: Path) -> PodCommands:
    launch, collect, pod_dirs = [], [], []
    for group in plan.seed_groups:
        cluster = plan.cluster(group)
        launch.append(
            [
                "sky",
                "launch",
                "--yes",
                "--cluster",
                cluster,
                "--env",
                f"{SEEDS_ENV}={','.join(map(str, group))}",
                str(task_path),
            ]
        )
        local = local_root / cluster
        pod_dirs.append(str(local))
        collect.append(["rsync", "-a", f"{cluster}:{plan.remote_run_dir()}/", f"{local}/"])
    gather = ["pgolf", "gather", *pod_dirs, "--out", str(local_root / "gathered")]
    down = ["sky", "down", "--yes", *(plan.cluster(g) for g in plan.seed_groups)]
    return PodCommands(launch=launch, collect=collect, gather=gather, down=down)


def script(cmds: PodCommands) -> str:
    """The commands as a shell script: pods launched in parallel, then collected and merged."""
    lines = ["# launch every pod at once (each provisions, fetches the data, then runs its seeds)"]
    lines += [shlex.join(c) + " &" for c in cmds.launch]
    lines += ["wait", "", "# bring each pod's run directory back, merge them, give the pods back"]
    lines += [shlex.join(c) for c in cmds.collect]
    lines += [shlex.join(cmds.gather), shlex.join(cmds.down)]
    return "\n".join(lines) + "\n"
