#!/bin/bash
# The layering rules the workspace depends on (README "Layout"):
#  1. the library crate (librte_power.so/.a) has libc and thiserror as its
#     only normal dependencies: no tool, CLI, JSON, libvirt or test crate;
#  2. the static library carries objects of no other workspace crate and of
#     no tool dependency (`ar t`), when it has been built (release);
#  3. libvirt never reaches the library (no vir* symbol in the .a).
# Exit status 1 names every rule broken.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
bad() { echo "check-layers: $*" >&2; fail=1; }

# 1. direct normal dependencies of the library, and anything forbidden in
#    its whole normal tree
allowed="libc thiserror"
direct=$(cargo tree --locked -e normal -p rte-power --depth 1 --prefix none \
  | awk 'NR > 1 { print $1 }' | sort -u)
for d in $direct; do
  case " $allowed " in
    *" $d "*) ;;
    *) bad "rte-power (the library) depends on '$d'; allowed: $allowed (tool code belongs in tools/ or monitor/)" ;;
  esac
done
forbidden='^(rustyline|serde|serde_json|clap|virt|virt-sys|testkit|rte-pm|guest-cli|vm-power-mgr|tempfile)$'
tree=$(cargo tree --locked -e normal -p rte-power --prefix none | awk '{ print $1 }' | sort -u)
if hits=$(grep -E "$forbidden" <<<"$tree"); then
  bad "the library's normal dependency tree contains: $(echo $hits)"
fi

# 2./3. the static library, when built
for a in target/release/librte_power.a target/debug/librte_power.a; do
  [ -f "$a" ] || continue
  # object names start with their crate's name: rte_power-<hash>.<cgu>.o
  crates=$(ar t "$a" | sed -n 's/^\([A-Za-z0-9_]*\)-[0-9a-f]*\..*\.o$/\1/p' | sort -u)
  if hits=$(grep -E '^(rte_pm|guest_cli|testkit|vm_power_monitor|serde|serde_json|rustyline|virt|clap|tempfile)$' <<<"$crates"); then
    bad "$a carries objects of: $(echo $hits)"
  fi
  # whole output first: under pipefail `nm | grep -q` can lose a match
  # (nm killed by SIGPIPE once grep has its line)
  undef=$(nm -u "$a" 2>/dev/null || true)
  if grep -q ' vir[A-Z]' <<<"$undef"; then
    bad "$a refers to libvirt symbols"
  fi
done

if [ $fail = 0 ]; then
  echo "check-layers: library depends on $(echo $direct) only; static library carries no tool crate"
fi
exit $fail
