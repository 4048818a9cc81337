#!/bin/bash
# The container image of deploy/container/Containerfile, built for real
# (scripts/build-image.sh: podman, chroot isolation, a debootstrapped
# Debian 12 base) and then checked from its own root filesystem, mounted
# and entered with chroot in private mount and PID namespaces (this needs
# no container runtime, which a CI machine or a nested VM may lack): the
# packages it holds, the entrypoint the DaemonSet relies on, and the
# image's own monitor running the simulated host end to end (guests'
# requests, show_vm, the CPUs restored at quit) and `rte-pm restore
# --dry-run` (the DaemonSet's init container). Root (podman's storage).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "58-image: needs root" >&2; exit 1; }
pass=0 fail=0
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then echo "PASS $what"; pass=$((pass + 1)); else echo "FAIL $what"; fail=$((fail + 1)); fi
}
# the packages of this tree (not whatever an earlier run left in target/deb)
make -s build CARGOFLAGS="--locked -q" > /dev/null
bash scripts/build-deb.sh > /dev/null
t0=$(date +%s)
IMAGE=$(bash scripts/build-image.sh | tail -1)
echo "built $IMAGE in $(($(date +%s) - t0)) s, $(podman image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=iec) bytes"
CID=$(podman create --entrypoint /bin/true "$IMAGE")
ROOT=$(podman mount "$CID")
cleanup() { podman umount "$CID" >/dev/null 2>&1 || true; podman rm -f "$CID" >/dev/null 2>&1 || true; }
trap cleanup EXIT
# in_image CMD...: run CMD from the image's root filesystem
in_image() { unshare --mount --pid --fork --mount-proc="$ROOT/proc" chroot "$ROOT" "$@"; }

entrypoint=$(podman image inspect --format '{{json .Config.Entrypoint}}' "$IMAGE")
check "entrypoint is the monitor in daemon mode on the host paths the DaemonSet mounts: $entrypoint" \
  bash -c "grep -q '\"/usr/bin/vm_power_mgr\",\"--daemon\"' <<<'$entrypoint' &&
    grep -q '/run/powermonitor' <<<'$entrypoint' && grep -q '/run/vm_power_mgr/ctl.sock' <<<'$entrypoint'"
packages() {
  local listed
  listed=$(in_image dpkg-query -W -f='${Package} ${Status}\n' vm-power-mgr rte-power-tools 2>&1)
  echo "$listed" | sed 's/^/  /'
  [ "$(grep -c 'install ok installed' <<<"$listed")" = 2 ]
}
check "the image holds this project's vm-power-mgr and rte-power-tools packages, installed by dpkg" packages
demo() {
  local out
  out=$(timeout 120 unshare --mount --pid --fork --mount-proc="$ROOT/proc" chroot "$ROOT" \
    /usr/bin/vm_power_mgr --simulate --demo 2>&1) || { echo "$out" | tail -20; return 1; }
  grep -q '^Requests: [1-9][0-9]* accepted' <<<"$out" && grep -q '^after quit: cpu0 governor' <<<"$out" ||
    { echo "$out" | tail -20; return 1; }
  grep '^after quit' <<<"$out" | sed 's/^/  /'
}
check "the image's monitor serves simulated guests end to end and restores the CPUs at quit (--simulate --demo)" demo
check "the image's rte-pm restore --dry-run (the DaemonSet's init container) runs" \
  in_image /usr/bin/rte-pm restore --dry-run
echo "image: $pass passed, $fail failed"
[ $fail = 0 ]
