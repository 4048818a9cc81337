#!/bin/bash
# scripts/build-image.sh [--tag=NAME] [--base=debootstrap|registry]
#
# The monitor's container image from deploy/container/Containerfile,
# unchanged, with podman (buildah's chroot isolation: no container runtime,
# cgroups or registry login needed), as root on Debian 12. Needs the
# packages of target/deb as they are (`make deb` first; built here only
# when missing) and podman
# and debootstrap (scripts/deps.d/image.txt).
#
# The Containerfile starts FROM debian:bookworm-slim. Where a registry
# serves it (--base=registry) podman pulls it; by default
# (--base=debootstrap) the base is made here from Debian's own archive with
# `debootstrap --variant=minbase bookworm` and imported as
# localhost/debian:bookworm-slim, which podman's short-name lookup prefers:
# the build then needs only deb.debian.org, as every other step does.
# Prints the image's name on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=localhost/rte-power/vm-power-mgr:$(sed -n 's/^version = "\(.*\)"/\1/p' monitor/Cargo.toml | head -1)
BASE=debootstrap
for arg in "$@"; do
  case $arg in
    --tag=*) TAG=${arg#*=} ;;
    --base=debootstrap | --base=registry) BASE=${arg#*=} ;;
    *) echo "usage: $0 [--tag=NAME] [--base=debootstrap|registry]" >&2; exit 2 ;;
  esac
done
die() { echo "build-image: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, podman's storage)"
for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || die "no $tool: run scripts/install-deps.sh (scripts/deps.d/image.txt)"
done
ls target/deb/vm-power-mgr_*.deb target/deb/rte-power-tools_*.deb >/dev/null 2>&1 || bash scripts/build-deb.sh >&2

if [ "$BASE" = debootstrap ] && ! podman image exists localhost/debian:bookworm-slim; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "build-image: debootstrap --variant=minbase bookworm (Debian's archive) as localhost/debian:bookworm-slim" >&2
  debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/log" 2>&1 ||
    { tail -20 "$work/log" >&2; die "debootstrap failed"; }
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" -c . | podman import --quiet - localhost/debian:bookworm-slim >/dev/null
fi
pull=never
[ "$BASE" = registry ] && pull=missing
podman build --quiet --pull=$pull --isolation=chroot -f deploy/container/Containerfile -t "$TAG" . >/dev/null
echo "$TAG"
