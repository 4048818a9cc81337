#!/bin/bash
# Formatting and lints: rustfmt, clippy with warnings as errors.
set -euo pipefail
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --lib
