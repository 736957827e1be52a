#!/usr/bin/env bash
# Device probe: bubblewrap on this machine, with CUDA inside the sandbox.
mkdir -p /tmp/bw && dpkg -x .carry/deb/bubblewrap_*.deb /tmp/bw
B=/tmp/bw/usr/bin/bwrap
$B --version || { ldd $B; exit 0; }
cat /etc/os-release | head -2; uname -r
cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null; cat /proc/sys/user/max_user_namespaces
DEVS=(); for d in /dev/nvidia*; do [ -e "$d" ] && DEVS+=(--dev-bind "$d" "$d"); done
echo "devs: ${DEVS[*]}"
time $B --unshare-all --die-with-parent --new-session --ro-bind / / --proc /proc --dev /dev "${DEVS[@]}" \
  --tmpfs /tmp --tmpfs /dev/shm python3 -c 'import torch, os; print("in sandbox: cuda", torch.cuda.is_available(), torch.cuda.device_count(), "pid", os.getpid()); x=torch.ones(1024,1024,device="cuda"); print((x@x).sum().item())' 2>&1 | tail -5
