#!/usr/bin/env bash
# flash-attn 4 (CuTe DSL kernels; Hopper forward and backward) on the device image, which has no
# network. Carried, git-excluded, made on the dev machine with `pip download --no-deps` + unzip:
#   .fa4/site_rest.tar.xz   flash_attn_4 4.0.0b36, nvidia-cutlass-dsl 4.8.1 (+ libs-base, libs-core),
#                           quack-kernels 0.6.5, apache-tvm-ffi 0.1.15.post2, torch-c-dlpack-ext 0.1.5,
#                           einops 0.8.2, the libs-cu13 dist-info, unpacked and tarred (xz -9e)
#   .fa4/cutlass_cu13.tar.xz  nvidia-cutlass-dsl-libs-cu13 4.8.1's nvidia_cutlass_dsl/ tree; the wheel
#                           is 92 MB, over the 64 MiB a call carries: xz --x86 (BCJ) -9e gets 52 MB
# Unpacks into /tmp/site. The cutlass wheel's .pth puts dsl_packages on sys.path, which PYTHONPATH
# entries do not process, hence: export PYTHONPATH=/tmp/site:/tmp/site/nvidia_cutlass_dsl/dsl_packages
set -euo pipefail
mkdir -p /tmp/site
xz -dc .fa4/site_rest.tar.xz | tar xf - -C /tmp/site
xz -dc .fa4/cutlass_cu13.tar.xz | tar xf - -C /tmp/site
PYTHONPATH=/tmp/site:/tmp/site/nvidia_cutlass_dsl/dsl_packages python3 -c \
    'import flash_attn.cute, cutlass; print("flash-attn 4 (cute) imports; cutlass-dsl", cutlass.__version__ if hasattr(cutlass, "__version__") else "?")'
