#!/usr/bin/env bash
# The image's entrypoint.
#
#   (no arguments)          pod mode: start sshd when PUBLIC_KEY is set (RunPod's
#                           convention), print how to start, stay up until stopped
#   pgolf ARGS / any command  run it (`docker run IMAGE pgolf run ...`)
#   ARGS                    not a command on PATH: `pgolf ARGS` (`docker run IMAGE doctor`)
set -euo pipefail

if [[ $# -gt 0 ]]; then
    if [[ "$1" != -* ]] && command -v "$1" >/dev/null 2>&1; then
        exec "$@"
    fi
    exec pgolf "$@"
fi

log() { echo "pgolf-entrypoint: $*"; }

start_sshd() {
    mkdir -p /root/.ssh /run/sshd
    chmod 700 /root/.ssh
    printf '%s\n' "$PUBLIC_KEY" >>/root/.ssh/authorized_keys
    chmod 600 /root/.ssh/authorized_keys
    ssh-keygen -A >/dev/null # this container's own host keys (the image ships none)
    # ssh sessions do not inherit the container's environment: hand the parts that
    # matter to pam_env (never PUBLIC_KEY itself or anything else).
    env | grep -E '^(PATH|VIRTUAL_ENV|PYTHONUNBUFFERED|PGOLF_[A-Z_]*|HF_[A-Z_]*|CUDA_[A-Z_]*|NVIDIA_[A-Z_]*|NCCL_[A-Z_]*|RUNPOD_[A-Z_]*)=' \
        >/etc/environment || true
    /usr/sbin/sshd -E /var/log/sshd.log
    log "sshd started (port 22, key from PUBLIC_KEY)"
}

if [[ -n "${PUBLIC_KEY:-}" ]]; then
    start_sshd
else
    log "PUBLIC_KEY is not set: no sshd (use the provider's web terminal, or docker exec)"
fi

cat <<GUIDE

pgolf $(pgolf --version | cut -d' ' -f2) is ready. Open a shell here (ssh or web terminal), then:

  pgolf doctor                              # is a record run possible here? (exit 0 = yes)
  pgolf fetch --variant caseops             # data into \$PGOLF_DATA_DIR (${PGOLF_DATA_DIR:-data})
  pgolf run /opt/pgolf/submission_template --nproc 8 --seeds 42,0,1234 \\
      --data-dir \$PGOLF_DATA_DIR/datasets/fineweb10B_sp8192_lossless_caps_caseops_v1_reserved \\
      --out /workspace/runs/mine              # or your own submission folder
  pgolf package /workspace/runs/mine --name MyRun --author "Your Name" --github-id you

This container stays up until it is stopped.
GUIDE

# PID 1 ignores TERM unless it traps it: stop at once on `docker stop` / pod stop.
trap 'log "stopping"; exit 0' TERM INT
sleep infinity &
wait $!
