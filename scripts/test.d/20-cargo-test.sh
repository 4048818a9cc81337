#!/bin/bash
# Unit, integration and doc tests of the crate.
set -euo pipefail
cargo build --locked --release
cargo test --locked --workspace --all-targets
cargo test --locked --doc
bash scripts/check-layers.sh
