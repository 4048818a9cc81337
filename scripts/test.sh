#!/bin/bash
# The whole test suite: every step in scripts/test.d/ in name order.
# Run as root (the C API tests and the DPDK comparison use private mount
# namespaces). `scripts/test.sh NAME...` runs only the steps whose file
# name contains one of the NAMEs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
bash scripts/install-deps.sh
pass=0; fail=0; failed=()
for step in scripts/test.d/*.sh; do
  name=$(basename "$step" .sh)
  if [ $# -gt 0 ]; then
    sel=0; for want in "$@"; do case "$name" in *"$want"*) sel=1 ;; esac; done
    [ $sel = 1 ] || continue
  fi
  echo "=== $name"
  start=$(date +%s)
  if bash "$step"; then pass=$((pass + 1)); r=ok; else fail=$((fail + 1)); failed+=("$name"); r=FAILED; fi
  echo "=== $name: $r ($(( $(date +%s) - start )) s)"
done
echo
[ $fail -eq 0 ] || echo "failed steps: ${failed[*]}"
echo "test steps: $pass passed, $fail failed"
[ $fail -eq 0 ]
