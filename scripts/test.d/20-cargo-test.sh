#!/bin/bash
# Unit, integration and doc tests of the crate. The tests' restore journal
# is a directory of this run (tests that make a restore fail on purpose
# leave records, which must not land in the host's /run/rte_power/journal).
set -euo pipefail
cd "$(dirname "$0")/../.."
journal=$(mktemp -d)
trap 'rm -rf "$journal"' EXIT
export RTE_POWER_JOURNAL_DIR=$journal/journal
cargo build --locked --release
cargo test --locked --workspace --all-targets
cargo test --locked --doc
bash scripts/check-layers.sh
