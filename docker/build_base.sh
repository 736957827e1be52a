#!/usr/bin/env bash
# Build a local stand-in for the CUDA base image without any image registry:
# debootstrap a minimal Debian into a folder, tar it, `docker import` the tar.
#
#   docker/build_base.sh [TAG]        (default TAG: pgolf-base:<suite>)
#
# Prints the image tag as its last line of stdout. Needs root, debootstrap and a
# running Docker engine; reaches only the Debian mirror.
#
# Why Debian bookworm and not Ubuntu 24.04 (the real base's OS, Python 3.12):
# Ubuntu's archive is not reachable from the machines this project is tested on,
# and the only CPU torch wheel kept on them is for CPython 3.11, which is what
# bookworm's python3 is. The Dockerfile installs python3 from the base's own apt
# archive, so the same Dockerfile yields 3.12 on Ubuntu 24.04 and 3.11 here, and
# checks the version it got against the EXPECTED_PYTHON build-arg.
#
# The rootfs tarball is cached (PGOLF_CACHE_DIR, default ~/.cache/pgolf) under a
# key of everything that shapes it, so a rerun only re-imports it (seconds), and
# does nothing at all when the engine already holds an image with that key.
set -euo pipefail

SUITE="${PGOLF_BASE_SUITE:-bookworm}"
MIRROR="${PGOLF_BASE_MIRROR:-http://deb.debian.org/debian}"
VARIANT=minbase
# The real base (nvidia/cuda) ships certificates; apt in the Dockerfile needs nothing else.
INCLUDE=ca-certificates
TAG="${1:-pgolf-base:${SUITE}}"
CACHE_DIR="${PGOLF_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pgolf}/docker"

log() { echo "build_base: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
    log "error: debootstrap needs root (running as uid $(id -u))"
    exit 1
fi
for tool in debootstrap docker sha256sum tar gzip; do
    if ! command -v "$tool" >/dev/null; then
        log "error: '$tool' not found (apt-get install -y debootstrap docker.io)"
        exit 1
    fi
done
if ! docker info >/dev/null 2>&1; then
    log "error: no Docker engine answers (start dockerd first)"
    exit 1
fi

# Bump FORMAT when the way the rootfs is made changes.
FORMAT=1
KEY=$(printf '%s\n' "$FORMAT" "$SUITE" "$MIRROR" "$VARIANT" "$INCLUDE" | sha256sum | cut -c1-16)
TARBALL="$CACHE_DIR/base-${SUITE}-${KEY}.tar.gz"

have_key=$(docker image inspect -f '{{index .Config.Labels "pgolf.base.key"}}' "$TAG" 2>/dev/null || true)
if [[ "$have_key" == "$KEY" ]]; then
    log "$TAG already holds base $KEY"
    echo "$TAG"
    exit 0
fi

mkdir -p "$CACHE_DIR"
if [[ ! -s "$TARBALL" ]]; then
    ROOTFS=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
    trap 'rm -rf "$ROOTFS"' EXIT
    log "debootstrap $SUITE ($VARIANT) from $MIRROR into $ROOTFS (a few minutes)"
    debootstrap --variant="$VARIANT" --include="$INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR" >&2
    # Caches and package lists are dead weight in an image (the Dockerfile runs apt-get update).
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/tmp/*
    log "packing $TARBALL"
    # Write under a temporary name: an interrupted run must not leave a truncated cache entry.
    tar --numeric-owner --xattrs -C "$ROOTFS" -c . | gzip -1 >"$TARBALL.part"
    mv "$TARBALL.part" "$TARBALL"
    rm -rf "$ROOTFS"
    trap - EXIT
else
    log "using cached $TARBALL"
fi

log "docker import -> $TAG"
docker import \
    --change "LABEL pgolf.base.key=$KEY pgolf.base.suite=$SUITE" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    "$TARBALL" "$TAG" >&2
echo "$TAG"
