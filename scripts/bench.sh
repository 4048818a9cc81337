#!/bin/bash
# scripts/bench.sh [--iters N] [--reps R] [--no-build] [--abi] [ENV...]
#
# Benchmark (not a test): ns per call of this library next to DPDK's own
# librte_power (Debian 22.11) in the same run, and next to a bare pwrite
# loop on the same file, for acpi, pstate and cppc (default: all three).
#
#   --abi       ours through the DPDK 22.11 binary ABI: the very trace
#               binary built against Debian's library (calls through the
#               function-pointer variables), run on our librte_power.so.23
#               (LD_LIBRARY_PATH at target/release/dpdk-abi); without it,
#               trace.c built against our headers and library (24.11
#               function API)
#
#   changing   freq_up/freq_down pairs, every call changes the frequency
#   no-change  freq_max when already at max (nothing is written)
#   get_freq   the current index
#
# DPDK's and our figures come from `../shared/dpdk-ref/run.sh --bench N ENV
# --alt target/dpdk-ref/trace-rs` (the same trace.c, plain files
# bind-mounted over /sys/devices/system/cpu in a private mount namespace).
# The bare figure is bench/bare_pwrite.c on a tree made the same way: the
# writes freq_up/freq_down make (acpi/cppc: one pwrite of "VALUE\n" to
# scaling_setspeed per call; pstate: two, scaling_max_freq and
# scaling_min_freq) and nothing else, as bare pwrite64 system calls, in a
# process that ran rte_eal_init() with trace.c's arguments (the same kind of
# process as the library under test). R repetitions (default 3) run
# interleaved; the table shows medians (ratios: median of the per-run
# ratios, whose two figures were taken back to back).
#
# Goals (issue 2): changing <= 0.7 x DPDK and <= 1.15 x bare; no-change <=
# DPDK. get_freq has no goal. Prints the table, writes it as Markdown to
# target/bench/cpufreq.md and the raw lines to target/bench/cpufreq.raw.
# Needs root. Exit status 0 even when a goal is missed (it is a benchmark).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REF=$(cd "$ROOT/../shared/dpdk-ref" && pwd)
export DPDKREF_BUILD=$ROOT/target/dpdk-ref
OUT=$ROOT/target/bench

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2; }
ITERS=200000; REPS=3; BUILD=1; ENVS=(); ABI=0
while [ $# -gt 0 ]; do
  case "$1" in
    --iters) ITERS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --abi) ABI=1; shift ;;
    -h|--help) usage ;;
    acpi|pstate|cppc) ENVS+=("$1"); shift ;;
    *) echo "bench: unknown argument $1" >&2; usage ;;
  esac
done
[[ "$ITERS" =~ ^[1-9][0-9]*$ ]] && [[ "$REPS" =~ ^[1-9][0-9]*$ ]] || usage
[ ${#ENVS[@]} -gt 0 ] || ENVS=(acpi pstate cppc)
[ "$(id -u)" = 0 ] || { echo "bench: needs root (mount namespaces)" >&2; exit 1; }

cd "$ROOT"
mkdir -p "$OUT"
BARE=$OUT/bare_pwrite
if [ "$BUILD" = 1 ]; then
  cargo build --locked --release --quiet
  bash "$REF/build.sh" >/dev/null
  bash "$REF/build.sh" --lib target/release/librte_power.so --include include --name rs >/dev/null
  # shellcheck disable=SC2046  # pkg-config output is a list of flags
  cc -O2 -Wall -Wextra $(pkg-config --cflags libdpdk) -o "$BARE" bench/bare_pwrite.c -pthread -lrte_eal
  [ "$ABI" = 0 ] || bash scripts/build-abi.sh 23 >/dev/null
fi
ALT=$DPDKREF_BUILD/trace-rs
SUFFIX=""
if [ "$ABI" = 1 ]; then
  # DPDK's own trace binary (NEEDED librte_power.so.23), our library in place
  ALT=$OUT/trace-abi23
  printf '#!/bin/sh\nLD_LIBRARY_PATH=%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} exec %s "$@"\n' \
    "$ROOT/target/release/dpdk-abi" "$DPDKREF_BUILD/trace" > "$ALT"
  chmod +x "$ALT"
  SUFFIX=-abi23
fi
for f in "$DPDKREF_BUILD/trace" "$ALT" "$BARE"; do
  [ -x "$f" ] || { echo "bench: $f missing (run without --no-build)" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rte-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# per env: tree flavour, bare mode, and the two values trace.c's bench
# alternates between (table indices n/2 - 1 and n/2 of the fake tree)
declare -A FLAV=([acpi]=acpi-cpufreq [pstate]=intel_pstate [cppc]=cppc_cpufreq)
declare -A MODE=([acpi]=setspeed [pstate]=minmax [cppc]=setspeed)
declare -A HIGH=([acpi]=2000000 [pstate]=1700000 [cppc]=1900000)
declare -A LOW=([acpi]=1900000 [pstate]=1600000 [cppc]=1800000)

# the bare loop in a private mount namespace, fake tree over the real path
run_bare() {
  local env=$1 tree=$WORK/bare-$1
  rm -rf "$tree"
  bash "$REF/mkfakesys.sh" "$tree" 4 "${FLAV[$env]}"
  unshare -m bash -c 'set -e; mount --make-rprivate /; mount --bind "$1" /sys/devices/system/cpu; exec "$2" "$3" "$4" "$5" "$6"' \
    _ "$tree" "$BARE" "${MODE[$env]}" "$ITERS" "${HIGH[$env]}" "${LOW[$env]}"
}

# "ns/call" figure of the line matching $2 in section $3 (ref|alt) of file $1
figure() {
  awk -v want="$2" -v sec="$3" '
    /^== ref:/ { s = "ref"; next } /^== alt:/ { s = "alt"; next }
    s == sec && index($0, want) { for (i = 1; i <= NF; i++) if ($(i) == "ns/call" || $(i) == "ns/call,") { print $(i - 1); exit } }' "$1"
}

RAW=$OUT/cpufreq$SUFFIX.raw
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
echo "# load average at start: $LOAD ($(nproc) CPUs)" >"$RAW"
declare -A VAL
for ((r = 1; r <= REPS; r++)); do
  for env in "${ENVS[@]}"; do
    f=$WORK/$env.$r
    bash "$REF/run.sh" --bench "$ITERS" "$env" --alt "$ALT" >"$f" 2>"$f.err" ||
      { echo "bench: run.sh --bench $env failed:" >&2; cat "$f.err" >&2; exit 1; }
    run_bare "$env" >"$f.bare" 2>"$f.bare.err" ||
      { echo "bench: bare_pwrite $env failed:" >&2; cat "$f.bare.err" >&2; exit 1; }
    { echo "### rep $r $env"; cat "$f" "$f.bare"; } >>"$RAW"
    if grep -q 'unexpected returns=[1-9]' "$f"; then
      echo "bench: warning: unexpected return values in $env rep $r:" >&2
      grep 'unexpected returns=[1-9]' "$f" >&2
    fi
    for side in ref alt; do
      VAL[$env,change,$side,$r]=$(figure "$f" "freq_up+freq_down" "$side")
      VAL[$env,nochange,$side,$r]=$(figure "$f" "freq_max-at-max" "$side")
      VAL[$env,get,$side,$r]=$(figure "$f" "get_freq calls" "$side")
    done
    VAL[$env,change,bare,$r]=$(awk '{ for (i = 1; i <= NF; i++) if ($(i) == "ns/call") print $(i - 1) }' "$f.bare")
    for k in change nochange get; do
      for side in ref alt; do
        [ -n "${VAL[$env,$k,$side,$r]}" ] || { echo "bench: no $k figure for $side in $f" >&2; cat "$f" >&2; exit 1; }
      done
    done
    printf 'rep %d/%d %-6s changing: DPDK %s ours %s bare %s | no-change: DPDK %s ours %s | get_freq: DPDK %s ours %s\n' \
      "$r" "$REPS" "$env" "${VAL[$env,change,ref,$r]}" "${VAL[$env,change,alt,$r]}" "${VAL[$env,change,bare,$r]}" \
      "${VAL[$env,nochange,ref,$r]}" "${VAL[$env,nochange,alt,$r]}" "${VAL[$env,get,ref,$r]}" "${VAL[$env,get,alt,$r]}"
  done
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { local a=() r; for ((r = 1; r <= REPS; r++)); do a+=("${VAL[$1,$2,$3,$r]}"); done; median "${a[@]}"; }
# median over the repetitions of the per-repetition ratio $3/$4 (the two
# figures of one repetition were taken back to back: less noise than a
# ratio of medians)
ratio() {
  local a=() r
  for ((r = 1; r <= REPS; r++)); do
    a+=("$(awk -v x="${VAL[$1,$2,$3,$r]}" -v y="${VAL[$1,$2,$4,$r]}" 'BEGIN { printf "%.3f", x / y }')")
  done
  median "${a[@]}" | awk '{ printf "%.2f", $1 }'
}

MD=$OUT/cpufreq$SUFFIX.md
{
  echo "ns per call, median of $REPS interleaved runs, $ITERS iterations each (\`scripts/bench.sh\`);"
  echo "ratios: median of the per-run ratios (the figures of one run are taken back to back)."
  if [ "$ABI" = 1 ]; then
    echo "DPDK = Debian's librte_power 22.11, ours = our librte_power.so.23 under the very same trace"
    echo "binary (built against Debian's DPDK: calls through the 22.11 function-pointer variables);"
  else
    echo "DPDK = Debian's librte_power 22.11, ours = this library, both through the same trace.c;"
  fi
  echo "bare = the same pwrite(s) in a C loop. Plain files bind-mounted over /sys/devices/system/cpu."
  echo "Load average at start: $LOAD on $(nproc) CPUs (other work on the machine inflates and scatters the figures)."
  echo
  echo "| env | op | DPDK ns | ours ns | bare ns | ours/DPDK | ours/bare | goal met |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
} >"$MD"
printf '\n%-6s %-22s %9s %9s %9s %9s %9s  %s\n' env op "DPDK ns" "ours ns" "bare ns" ours/DPDK ours/bare "goal met"
missed=0
for env in "${ENVS[@]}"; do
  for k in change nochange get; do
    d=$(med "$env" "$k" ref); o=$(med "$env" "$k" alt)
    b=-; rb=-
    case $k in
      change)
        op="freq_up/down (changing)"
        b=$(med "$env" change bare)
        rb=$(ratio "$env" change alt bare)
        rd=$(ratio "$env" change alt ref)
        goal="<= 0.7x DPDK, <= 1.15x bare"
        ok=$(awk -v rd="$rd" -v rb="$rb" 'BEGIN { print (rd <= 0.7 && rb <= 1.15) ? "yes" : "no" }') ;;
      nochange)
        op="freq_max (no change)"
        rd=$(ratio "$env" nochange alt ref)
        goal="<= DPDK"
        ok=$(awk -v rd="$rd" 'BEGIN { print (rd <= 1.0) ? "yes" : "no" }') ;;
      get)
        op="get_freq"
        rd=$(ratio "$env" get alt ref)
        goal="-"; ok="-" ;;
    esac
    [ "$ok" = no ] && missed=$((missed + 1))
    okc=$ok; [ "$ok" = "-" ] || okc="$ok ($goal)"
    printf '%-6s %-22s %9s %9s %9s %9s %9s  %s\n' "$env" "$op" "$d" "$o" "$b" "$rd" "$rb" "$okc"
    echo "| $env | $op | $d | $o | $b | $rd | $rb | $okc |" >>"$MD"
  done
done
echo
echo "bench: $missed goal(s) missed; table in ${MD#"$ROOT"/}, raw output in ${RAW#"$ROOT"/}"
