#!/bin/bash
# rte-pm end to end, and the cost of the library's P-state statistics.
# The unit and integration tests (tools/rte-pm/tests/, tests/qos.rs) run in
# 20-cargo-test; this step drives the built binary on a generated host and
# on the real machine (read-only commands), then runs the benchmark.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --locked --release -p rte-pm -p testkit -p rte-power --bin rte-pm \
  --example fake_host --example stats_cost
bin=target/release/rte-pm
host=$(mktemp -d)
trap 'rm -rf "$host"' EXIT
eval "export $(target/release/examples/fake_host "$host" acpi 4)"
fail=0
check() { # check <expected status> <grep pattern> <args...>
  local want=$1 pat=$2; shift 2
  local out rc=0
  out=$("$bin" "$@" 2>&1) || rc=$?
  if [ "$rc" != "$want" ] || ! grep -q -- "$pat" <<<"$out"; then
    echo "FAIL: rte-pm $* (status $rc, want $want; pattern '$pat')"; echo "$out" | head -20; fail=1
  else
    echo "ok: rte-pm $*"
  fi
}
check 0 '^\*P7 ' get-cpufreq-states 0
check 0 '"source": "kernel"' get-cpufreq-states --json
check 0 'turbo mode           : enabled (cpufreq/boost)' get-cpufreq-para 1
check 1 'is not available on CPU0' set-scaling-governor 0 nosuchgov
check 0 'scaling_max_freq = 2200000 kHz' set-scaling-maxfreq 2.2GHz
check 0 'cpufreq/ondemand/up_threshold = 90 %' set-up-threshold 90
check 0 'cpufreq/boost = 0' disable-turbo-mode
check 0 'max C-state set to C1' set-max-cstate 1
check 0 'C1 (C1) and shallower' get-cpuidle-states 2
check 0 'max C-state set to unlimited' set-max-cstate unlimited
check 0 'CPU3	 1	 0	 0	 2-3' get-cpu-topology
check 0 'Elapsed time (ms)' start 0.2
check 2 'Ambiguous options' set-scaling
# the restore journal: empty, then a record of a process that is gone
export RTE_POWER_JOURNAL_DIR=$host/journal
check 0 'nothing to restore' restore
mkdir -p "$host/journal"
printf 'rte_power-journal 1\nkind cpufreq\npath %s\npid 999999999\nstart 1\ncpu 1\ngovernor powersave\n' \
  "$(realpath "$RTE_POWER_SYSFS_CPU_DIR/cpu1/cpufreq")" > "$host/journal/cpufreq-test.rec"
check 0 'would restore governor powersave' restore --dry-run
check 0 'cpu 1 (.*): restored governor powersave' restore
check 0 'nothing to restore' restore
unset RTE_POWER_JOURNAL_DIR
# the real machine, read-only: topology always exists
unset RTE_POWER_SYSFS_CPU_DIR RTE_POWER_PROC_STAT
check 0 '"command": "get-cpu-topology"' get-cpu-topology --json
# the statistics' cost (fails if a no-change call touches them)
target/release/examples/stats_cost
exit $fail
