#!/bin/bash
# Coverage-guided fuzzing with libFuzzer through cargo-fuzz, on the stable
# toolchain (RUSTC_BOOTSTRAP=1 lets it pass the -Z flags it needs).
#
#   scripts/fuzz.sh install            cargo-fuzz at the pinned version
#   scripts/fuzz.sh smoke [SECONDS]    every target on its committed corpus,
#                                      SECONDS (default 10) each; fails on a crash
#   scripts/fuzz.sh run TARGET SECONDS [JOBS]  a long run (new inputs kept in
#                                      fuzz/corpus/TARGET; minimise before commit)
#   scripts/fuzz.sh cmin TARGET        minimise fuzz/corpus/TARGET in place
#   scripts/fuzz.sh coverage TARGET    line coverage of the corpus (needs llvm-tools)
#
# Targets and figures: docs/fuzzing.md. The fuzzers run niced; run one at a
# time on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_FUZZ_VERSION=0.12.0
TARGETS=(wire_decode channel_serve monitor_command rte_pm_args guest_cli_args)
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never
# safe Rust only in the targets: no sanitizer (several times the executions
# per second); overflow and debug assertions on
FUZZ_FLAGS=(--sanitizer none --debug-assertions --release)

install() {
  if cargo fuzz --version 2>/dev/null | grep -q "cargo-fuzz $CARGO_FUZZ_VERSION"; then
    return
  fi
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
}

# runs one target for SECS on its corpus; new inputs go to NEW_DIR
# (default: the corpus itself)
run_one() {
  local target=$1 secs=$2; shift 2
  local corpus="fuzz/corpus/$target"
  mkdir -p "$corpus" "fuzz/artifacts/$target"
  local dirs=("$corpus")
  [ -n "${NEW_DIR:-}" ] && dirs=("$NEW_DIR" "$corpus")
  nice -n 10 cargo fuzz run "${FUZZ_FLAGS[@]}" "$target" "${dirs[@]}" -- \
    -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$@"
}

case "${1:-smoke}" in
  install) install ;;
  smoke)
    install
    secs=${2:-10}
    cargo fuzz build "${FUZZ_FLAGS[@]}"
    for t in "${TARGETS[@]}"; do
      echo "--- fuzz $t (${secs} s)"
      log=$(mktemp)
      # the committed corpus is only read: new inputs go to a temp dir
      new=$(mktemp -d)
      if ! NEW_DIR=$new run_one "$t" "$secs" >"$log" 2>&1; then
        tail -40 "$log"; rm -rf "$log" "$new"
        echo "FAIL: fuzz target $t crashed (input in fuzz/artifacts/$t)"; exit 1
      fi
      grep -E '^stat::(number_of_executed_units|peak_rss_mb)|cov: ' "$log" | tail -3
      rm -rf "$log" "$new"
    done
    echo "fuzz smoke: ${#TARGETS[@]} targets, no crash"
    ;;
  run)
    install
    if [ "${4:-1}" -gt 1 ]; then
      run_one "$2" "$3" -jobs="$4" -workers="$4"
    else
      run_one "$2" "$3"
    fi
    ;;
  cmin)
    install
    mkdir -p "fuzz/corpus/$2.min"
    nice -n 10 cargo fuzz cmin "${FUZZ_FLAGS[@]}" "$2" "fuzz/corpus/$2"
    ;;
  coverage)
    install
    cargo fuzz coverage "$2" "fuzz/corpus/$2"
    ;;
  *) echo "usage: $0 install|smoke [S]|run TARGET S [JOBS]|cmin TARGET|coverage TARGET"; exit 2 ;;
esac
