#!/bin/bash
# The DPDK binary ABIs (scripts/build-abi.sh): librte_power.so.23 (22.11),
# .24 (23.11), .25 (24.11), .26 (25.11) and librte_power_kvm_vm.so.25/.26.
#   1. exports: each exactly its list in abi/ (names, kinds, data sizes,
#      version nodes), and .so.23 against Debian's librte-power23 itself
#      (scripts/check-abi.sh, objdump -T);
#   2. use: a 22.11 program built against Debian's headers and Debian's
#      -lrte_power, run on our .so.23 (LD_LIBRARY_PATH); a 23.11-shaped
#      program on .so.24 (cpufreq and uncore pointer variables); a
#      24.11-shaped program on .so.25 and .so.26 with DPDK-style driver
#      libraries registering next to ours and the KVM guest channel through
#      librte_power_kvm_vm. Each run on a generated sysfs tree; the loader
#      must not complain (no "version information", no "different size").
set -euo pipefail
cd "$(dirname "$0")/../.."
REF=$(cd ../shared/dpdk-ref && pwd)
cargo build --locked --release
bash scripts/build-abi.sh
bash scripts/check-abi.sh

ABI=$PWD/target/release/dpdk-abi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fail=0
CFLAGS=(-std=gnu11 -O2 -Wall -Wextra -Werror)

# run NAME LOG CMD...: the program's own checks, our announce line, and a
# quiet loader
run() {
  local name=$1 log=$2; shift 2
  if "$@" > "$log.out" 2> "$log.err"; then
    echo "ok   $name: $(grep -c '^ok' "$log.out") checks"
  else
    echo "FAIL $name"; grep -v '^ok' "$log.out" | sed 's/^/  | /'; fail=1
  fi
  if ! grep -q 'rte_power: INFO: rte-power .* serving the DPDK .* binary ABI' "$log.err"; then
    echo "FAIL $name: no 'rte-power ... serving the DPDK ... binary ABI' line: not our library?"; fail=1
  else
    echo "     $(grep -o 'rte-power .* binary ABI (.*)' "$log.err" | head -1)"
  fi
  if grep -E 'version information|different size|symbol lookup error' "$log.err"; then
    echo "FAIL $name: the loader complained"; fail=1
  fi
}

uncore_die() { # an Intel uncore die in tree $1
  local u=$1/intel_uncore_frequency/package_00_die_00
  mkdir -p "$u"
  printf '2400000\n' > "$u/initial_max_freq_khz"; printf '800000\n' > "$u/initial_min_freq_khz"
  printf '2000000\n' > "$u/max_freq_khz"; printf '1200000\n' > "$u/min_freq_khz"
  printf '1600000\n' > "$u/current_freq_khz"
}

# 22.11: built exactly as a DPDK program is, against Debian's library
# shellcheck disable=SC2046  # pkg-config prints a list of flags
cc "${CFLAGS[@]}" $(pkg-config --cflags libdpdk) tests/abi/binary_2211.c -o "$W/binary_2211" \
  -Wl,--no-as-needed -lrte_power
readelf -d "$W/binary_2211" | grep -q 'NEEDED.*\[librte_power.so.23\]' ||
  { echo "FAIL binary_2211 does not need librte_power.so.23"; fail=1; }
"$REF/mkfakesys.sh" "$W/t23" 2 acpi-cpufreq > /dev/null
RTE_POWER_LOG=info RTE_POWER_SYSFS_CPU_DIR=$W/t23 LD_LIBRARY_PATH=$ABI \
  run "22.11 program (Debian headers, Debian -lrte_power) on our librte_power.so.23" "$W/b23" "$W/binary_2211"

# 23.11
cc "${CFLAGS[@]}" tests/abi/binary_2311.c -o "$W/binary_2311" "$ABI/librte_power.so.24"
"$REF/mkfakesys.sh" "$W/t24" 2 intel_pstate > /dev/null
uncore_die "$W/t24"
RTE_POWER_LOG=info RTE_POWER_SYSFS_CPU_DIR=$W/t24 LD_LIBRARY_PATH=$ABI \
  run "23.11 program on our librte_power.so.24" "$W/b24" "$W/binary_2311"

# 24.11 and 25.11: DPDK's drivers as plugins next to ours, the guest channel
for n in 25 26; do
  cc "${CFLAGS[@]}" -fPIC -shared tests/abi/fake_dpdk_driver.c -o "$W/fake_driver$n.so" \
    "$ABI/librte_power.so.$n"
  cc "${CFLAGS[@]}" tests/abi/plugins_2411.c -o "$W/plugins$n" \
    "$ABI/librte_power.so.$n" "$ABI/librte_power_kvm_vm.so.$n" -ldl
  readelf --dyn-syms -W "$W/plugins$n" | grep -q "rte_power_init@DPDK_$n" ||
    { echo "FAIL plugins$n does not bind rte_power_init@DPDK_$n"; fail=1; }
  "$REF/mkfakesys.sh" "$W/t$n" 2 acpi-cpufreq > /dev/null
  mkdir -p "$W/ports$n"
  RTE_POWER_LOG=info RTE_POWER_SYSFS_CPU_DIR=$W/t$n RTE_POWER_VIRTIO_PORTS_DIR=$W/ports$n \
    RTE_POWER_VIRTIO_CLASS_DIR=$W/none LD_LIBRARY_PATH=$ABI \
    run "$([ $n = 25 ] && echo 24.11 || echo 25.11) program + DPDK-style driver plugins on our librte_power.so.$n" \
    "$W/b$n" "$W/plugins$n" "$W/fake_driver$n.so" "$W/ports$n"
done
exit $fail
