#!/bin/bash
# Runs a command inside the sandbox a systemd unit describes, where systemd
# is not the init system (containers, CI machines): the same settings
# through unshare(1), mount(8), setpriv(1) and a seccomp filter
# (testkit's seccomp_exec).
#
#   scripts/unit-sandbox.sh [--bind SRC:DST]... UNIT -- CMD [ARGS...]
#
# Emulated from UNIT's [Service] section:
#   ProtectSystem=strict    every mount read-only except ReadWritePaths=
#   ProtectKernelTunables   /sys and /proc/sys read-only (ReadWritePaths= win)
#   ProtectControlGroups    /sys/fs/cgroup read-only (under /sys)
#   ProtectHome=yes         empty read-only /home, /root, /run/user
#   PrivateTmp=yes          fresh /tmp and /var/tmp
#   PrivateDevices=yes      a /dev with null, zero, full, random, urandom only
#   RuntimeDirectory=       created under /run with RuntimeDirectoryMode=
#   CapabilityBoundingSet=  setpriv --bounding-set (root keeps only these)
#   NoNewPrivileges=yes     no_new_privs (seccomp_exec sets it)
#   SystemCallFilter=, SystemCallErrorNumber=, SystemCallArchitectures=native,
#   RestrictAddressFamilies=  seccomp allow-list (seccomp_exec), groups
#                           expanded with `systemd-analyze syscall-filter`
#   UMask=                  umask
# Not emulated (need systemd or cgroups): MemoryMax= (callers measure the
# peak RSS instead), IPAddressDeny= (no AF_INET socket can be made anyway),
# ProtectClock/ProtectKernelModules/ProtectKernelLogs/RestrictNamespaces
# beyond what the bounding set and the syscall filter already refuse.
# --bind SRC:DST is applied first (a test tree over /sys/devices/system/cpu,
# a private /run). Needs root. SECCOMP_EXEC names the filter binary
# (default target/release/examples/seccomp_exec).
set -euo pipefail
binds=()
while [ "${1:-}" = --bind ]; do binds+=("$2"); shift 2; done
unit=${1:?usage: unit-sandbox.sh [--bind SRC:DST]... UNIT -- CMD...}
shift
[ "${1:-}" = -- ] && shift
[ $# -gt 0 ] || { echo "unit-sandbox: no command" >&2; exit 2; }
seccomp_exec=${SECCOMP_EXEC:-target/release/examples/seccomp_exec}
[ -x "$seccomp_exec" ] || { echo "unit-sandbox: $seccomp_exec missing (cargo build --release -p testkit --example seccomp_exec)" >&2; exit 2; }
seccomp_exec=$(realpath "$seccomp_exec")

# every value of KEY in [Service] (continuation lines joined), one per line
prop() {
  sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$unit" |
    awk -v k="$1" '/^\[/{s=($0=="[Service]")} s && index($0, k"=")==1 {print substr($0, length(k)+2)}'
}
last() { prop "$1" | tail -n1; }

# --- the syscall allow-list ---
arch=$(uname -m)
case $arch in
  x86_64) audit=0xc000003e; hdr=/usr/include/x86_64-linux-gnu/asm/unistd_64.h ;;
  *) echo "unit-sandbox: seccomp emulation supports x86_64 only (this is $arch)" >&2; exit 2 ;;
esac
[ -r "$hdr" ] || { echo "unit-sandbox: $hdr missing (linux-libc-dev)" >&2; exit 2; }
declare -A NR
while read -r _ name nr; do NR[${name#__NR_}]=$nr; done < <(grep -E '^#define __NR_[a-z0-9_]+ [0-9]+$' "$hdr")
declare -A seen_group
expand() { # a group name or a syscall name -> syscall names
  local item=$1
  if [[ $item == @* ]]; then
    [ -n "${seen_group[$item]:-}" ] && return
    seen_group[$item]=1
    local line
    while read -r line; do
      line=${line%%#*}; line=${line// /}
      [ -z "$line" ] || [[ $line == "$item" ]] && continue
      expand "$line"
    done < <(systemd-analyze syscall-filter "$item" | tail -n +2)
  else
    echo "$item"
  fi
}
declare -A allow
deny_lines=()
while read -r line; do
  [ -z "$line" ] && continue
  if [[ $line == ~* ]]; then deny_lines+=("${line#\~}"); continue; fi
  for item in $line; do
    seen_group=()
    while read -r s; do allow[$s]=1; done < <(expand "$item")
  done
done < <(prop SystemCallFilter)
for line in "${deny_lines[@]}"; do
  for item in $line; do
    seen_group=()
    while read -r s; do unset "allow[$s]"; done < <(expand "$item")
  done
done
nrs=()
for s in "${!allow[@]}"; do [ -n "${NR[$s]:-}" ] && nrs+=("${NR[$s]}"); done
allow_csv=$(IFS=,; echo "${nrs[*]}")
errno_name=$(last SystemCallErrorNumber); errno_name=${errno_name:-EPERM}
errno=$(awk -v n="$errno_name" '$1=="#define" && $2==n {print $3; exit}' /usr/include/asm-generic/errno-base.h /usr/include/asm-generic/errno.h)
fams=()
for f in $(prop RestrictAddressFamilies); do
  case $f in
    AF_UNIX) fams+=(1) ;; AF_INET) fams+=(2) ;; AF_INET6) fams+=(10) ;;
    AF_NETLINK) fams+=(16) ;; AF_PACKET) fams+=(17) ;;
    *) echo "unit-sandbox: unknown family $f" >&2; exit 2 ;;
  esac
done
fam_csv=$(IFS=,; echo "${fams[*]}")

# --- capabilities ---
caps="-all"
for c in $(prop CapabilityBoundingSet); do
  c=${c#CAP_}; caps+=",+${c,,}"
done

rw=()
for p in $(prop ReadWritePaths); do rw+=("${p#-}"); done
rundirs=$(prop RuntimeDirectory | tr '\n' ' ')
for d in $rundirs; do rw+=("/run/$d"); done   # systemd makes them writable
runmode=$(last RuntimeDirectoryMode); runmode=${runmode:-0755}
umask_v=$(last UMask); umask_v=${umask_v:-0022}

inner=$(cat <<'INNER'
set -euo pipefail
for b in $BINDS; do mount -n --bind "${b%%:*}" "${b#*:}"; done
for d in $RUNDIRS; do mkdir -p "/run/$d"; chmod "$RUNMODE" "/run/$d"; done
for p in $RW; do [ -e "$p" ] && mount -n --bind "$p" "$p"; done
is_rw() { local m=$1 p; for p in $RW; do case $m in "$p"|"$p"/*) return 0 ;; esac; done; return 1; }
# ProtectSystem=strict + ProtectKernelTunables + ProtectControlGroups:
# every mount -n point read-only but the writable paths, /dev and /proc's own
awk '{print $5}' /proc/self/mountinfo | sort -u | while read -r m; do
  m=$(printf '%b' "$m")
  is_rw "$m" && continue
  # a mount hidden by a --bind over one of its parents (/run/netns under a
  # bound /run) is out of reach: nothing to protect, nothing to remount
  mountpoint -q "$m" || continue
  case $m in /dev|/dev/*|/proc|/proc/*) [ "$m" != /proc/sys ] && continue ;; esac
  mount -n -o remount,bind,ro "$m" 2>/dev/null || mount -n -o remount,bind,ro,nosuid,nodev "$m" 2>/dev/null ||
    { echo "unit-sandbox: cannot make $m read-only" >&2; exit 1; }
done
if [ "$PROTECT_HOME" = yes ]; then
  for h in /home /root /run/user; do [ -d "$h" ] && mount -n -t tmpfs -o ro,mode=0755 tmpfs "$h"; done
fi
if [ "$PRIVATE_TMP" = yes ]; then
  mount -n -t tmpfs -o mode=1777 tmpfs /tmp
  [ -d /var/tmp ] && mount -n -t tmpfs -o mode=1777 tmpfs /var/tmp
fi
if [ "$PRIVATE_DEVICES" = yes ]; then
  dev=$(mktemp -d /tmp/.dev.XXXXXX)
  mount -n -t tmpfs -o mode=0755 tmpfs "$dev"
  for n in null zero full random urandom; do touch "$dev/$n"; mount -n --bind "/dev/$n" "$dev/$n"; done
  mkdir "$dev/shm"; mount -n -t tmpfs -o mode=1777 tmpfs "$dev/shm"
  mount -n --move "$dev" /dev
fi
umask "$UMASK"
exec setpriv --bounding-set "$CAPS" --inh-caps -all --no-new-privs \
  "$SECCOMP_EXEC" --arch "$AUDIT" --allow "$ALLOW" --families "$FAMS" --errno "$ERRNO" -- "$@"
INNER
)
BINDS="${binds[*]:-}" RUNDIRS="$rundirs" RUNMODE="$runmode" RW="${rw[*]:-}" \
PROTECT_HOME=$(last ProtectHome) PRIVATE_TMP=$(last PrivateTmp) PRIVATE_DEVICES=$(last PrivateDevices) \
UMASK="$umask_v" CAPS="$caps" SECCOMP_EXEC="$seccomp_exec" AUDIT="$audit" ALLOW="$allow_csv" \
FAMS="$fam_csv" ERRNO="$errno" \
  exec unshare --mount --propagation private bash -c "$inner" unit-sandbox "$@"
