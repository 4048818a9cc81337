#!/bin/bash
# Formatting and lints: rustfmt, clippy with warnings as errors.
set -euo pipefail
cargo fmt --all -- --check
(cd fuzz && cargo fmt -- --check)    # its own workspace (scripts/fuzz.sh)
cargo clippy --locked --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --lib
