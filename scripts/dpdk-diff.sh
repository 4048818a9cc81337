#!/bin/bash
# scripts/dpdk-diff.sh [--update] [--no-build] [--list] [VARIANT...]
#
# Differential check against DPDK's own librte_power (Debian's 22.11, driven
# by ../shared/dpdk-ref): for every variant below, the reference trace and
# our trace (the same trace.c built against target/release/librte_power.so
# with our headers) run on fresh identical fake sysfs trees (served through
# sysfsemu), and the lines in which they differ are compared with the
# committed list tests/dpdk-ref/expected/<variant>.diff.
#
# Fails (exit 1) on any difference that is not in the list, and on any listed
# difference that no longer occurs: the list stays exact. Lines of an
# expected file that start with "#" name the deviation(s) it shows (see
# docs/deviations.md) and are ignored by the comparison.
#
#   --update    rewrite the expected files from this run (comment lines of an
#               existing file are kept; a new file gets a placeholder header)
#   --no-build  use the binaries already in target/ (default: cargo build
#               --release, then build DPDK-ref's trace and our trace-rs)
#   --list      print the variants and exit
#   VARIANT     run only these variants (default: all)
#
# Needs root (mount namespaces) and /dev/fuse (sysfsemu); a variant takes
# 2-4 s (kvm ~8 s: DPDK sleeps 1 s per lcore).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REF=$(cd "$ROOT/../shared/dpdk-ref" && pwd)
EXPECTED=$ROOT/tests/dpdk-ref/expected
export DPDKREF_BUILD=$ROOT/target/dpdk-ref

# name | environment for mkfakesys.sh | run.sh ENV [FLAVOUR] | flags
# flags: refcrash = DPDK's trace is expected to end with a crash (non-zero exit)
VARIANTS=(
  "acpi||acpi|"
  "pstate||pstate|"
  "cppc||cppc|"
  "kvm||kvm|"
  "auto||auto|"
  "auto-pstate||auto intel_pstate|"
  "auto-cppc||auto cppc_cpufreq|"
  "acpi-gov-userspace|GOVERNOR=userspace|acpi|"
  "acpi-gov-performance|GOVERNOR=performance|acpi|"
  "acpi-cur-2050000|CUR_FREQ=2050000|acpi|refcrash"
  "acpi-cur-1200000|CUR_FREQ=1200000|acpi|"
  "acpi-nfreqs-8|NFREQS=8|acpi|refcrash"
  "acpi-nfreqs-8-cur-1500000|NFREQS=8 CUR_FREQ=1500000|acpi|"
  "acpi-nfreqs-63|NFREQS=63|acpi|"
  "acpi-noturbo|TURBO=0|acpi|"
  "pstate-prio|PRIO_CPUS=1|pstate|"
  "pstate-cur-2300000|CUR_FREQ=2300000|pstate|"
  "cppc-gov-userspace|GOVERNOR=userspace|cppc|"
  "cppc-cur-2050000|CUR_FREQ=2050000|cppc|"
  "pstate-on-acpi||pstate acpi-cpufreq|"
  "acpi-on-pstate||acpi intel_pstate|"
  "amd||amd|"
  "auto-amd||auto amd-pstate|"
)

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2; }

UPDATE=0; BUILD=1; LIST=0; WANT=()
while [ $# -gt 0 ]; do
  case "$1" in
    --update) UPDATE=1 ;;
    --no-build) BUILD=0 ;;
    --list) LIST=1 ;;
    -h|--help) usage ;;
    -*) echo "dpdk-diff: unknown option $1" >&2; usage ;;
    *) WANT+=("$1") ;;
  esac
  shift
done

if [ "$LIST" = 1 ]; then
  for v in "${VARIANTS[@]}"; do
    IFS='|' read -r name envs args flags <<<"$v"
    printf '%-26s %-20s run.sh %s%s\n' "$name" "${envs:--}" "$args" "${flags:+  ($flags)}"
  done
  exit 0
fi

for w in "${WANT[@]}"; do
  printf '%s\n' "${VARIANTS[@]}" | cut -d'|' -f1 | grep -qx -- "$w" ||
    { echo "dpdk-diff: unknown variant $w (see --list)" >&2; exit 2; }
done

[ "$(id -u)" = 0 ] || { echo "dpdk-diff: needs root (run.sh uses unshare -m and mount)" >&2; exit 1; }
# Without FUSE run.sh silently falls back to plain files, whose in-place
# writes leave residue that differs between DPDK and us: refuse instead.
[ -c /dev/fuse ] || { echo "dpdk-diff: /dev/fuse missing: sysfsemu cannot run (modprobe fuse, or a container with /dev/fuse)" >&2; exit 1; }

cd "$ROOT"
if [ "$BUILD" = 1 ]; then
  cargo build --locked --release --quiet
  bash "$REF/build.sh" >/dev/null
  bash "$REF/build.sh" --lib target/release/librte_power.so --include include --name rs >/dev/null
fi
for f in trace trace-rs sysfsemu; do
  [ -x "$DPDKREF_BUILD/$f" ] || { echo "dpdk-diff: $DPDKREF_BUILD/$f missing (run without --no-build)" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dpdk-diff.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$EXPECTED"

# the differing lines of a unified diff: every -/+ line but the two headers
diff_lines() { awk 'NR <= 2 && /^(---|\+\+\+) (ref|alt):/ { next } /^[-+]/ { print }' "$1"; }
# an expected file without its comment lines
expected_lines() { [ -f "$1" ] && grep -v '^#' "$1" || true; }

failed=(); summary=()
for v in "${VARIANTS[@]}"; do
  IFS='|' read -r name envs args flags <<<"$v"
  if [ ${#WANT[@]} -gt 0 ]; then
    sel=0; for w in "${WANT[@]}"; do [ "$w" = "$name" ] && sel=1; done
    [ "$sel" = 1 ] || continue
  fi
  out=$WORK/$name.out; err=$WORK/$name.err; got=$WORK/$name.got; exp=$EXPECTED/$name.diff
  # shellcheck disable=SC2086  # $args is "ENV [FLAVOUR]", $envs "VAR=value" or empty
  env $envs bash "$REF/run.sh" $args --alt "$DPDKREF_BUILD/trace-rs" >"$out" 2>"$err" || true
  problem=""
  if grep -q "^run.sh: .*trace-rs exited with" "$err"; then
    problem="our trace exited abnormally: $(grep -m1 'trace-rs exited with' "$err")"
  elif grep -q "^run.sh: .*/trace exited with" "$err" && [[ "$flags" != *refcrash* ]]; then
    problem="DPDK's trace exited abnormally: $(grep -m1 '/trace exited with' "$err")"
  elif ! grep -q -e '^--- ref:' -e '^run.sh: traces identical' "$out"; then
    problem="run.sh produced no comparison"
  fi
  if [ -n "$problem" ]; then
    echo "FAIL $name: $problem"
    sed 's/^/  | /' "$err" | tail -20
    failed+=("$name"); summary+=("$(printf '%-26s harness failure' "$name")")
    continue
  fi
  diff_lines "$out" >"$got"
  n=$(wc -l <"$got")
  if [ "$UPDATE" = 1 ]; then
    hdr=$WORK/$name.hdr
    if [ -f "$exp" ] && grep -q '^#' "$exp"; then
      grep '^#' "$exp" >"$hdr"
    else
      printf '# %s: TODO name the deviation(s) shown here (docs/deviations.md)\n' "$name" >"$hdr"
    fi
    cat "$hdr" "$got" >"$exp"
    echo "updated $name: $n differing lines"
    summary+=("$(printf '%-26s %4d differing lines (updated)' "$name" "$n")")
    continue
  fi
  # unexpected: in this run, not in the list; gone: in the list, not in this run
  unexpected=$WORK/$name.unexpected; gone=$WORK/$name.gone
  diff <(expected_lines "$exp") "$got" >"$WORK/$name.cmp" || true
  sed -n 's/^> //p' "$WORK/$name.cmp" >"$unexpected"
  sed -n 's/^< //p' "$WORK/$name.cmp" >"$gone"
  if [ -s "$unexpected" ] || [ -s "$gone" ]; then
    echo "FAIL $name: $(wc -l <"$unexpected") unexpected, $(wc -l <"$gone") expected but gone (tests/dpdk-ref/expected/$name.diff)"
    [ -s "$unexpected" ] && { echo "  unexpected differences (ref '-' vs ours '+'):"; sed 's/^/    /' "$unexpected"; }
    [ -s "$gone" ] && { echo "  expected differences that no longer occur:"; sed 's/^/    /' "$gone"; }
    failed+=("$name"); summary+=("$(printf '%-26s %4d differing lines: MISMATCH' "$name" "$n")")
  else
    echo "ok   $name: $n differing lines, all expected"
    summary+=("$(printf '%-26s %4d differing lines, as expected' "$name" "$n")")
  fi
done

echo
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "dpdk-diff: ${#failed[@]} variant(s) failed: ${failed[*]}"
  exit 1
fi
echo "dpdk-diff: ${#summary[@]} variant(s) ok"
