#!/bin/bash
# Packaging: `make install` into temporary prefixes (layout, SONAME links,
# headers, rte_power.pc with Libs.private checked against rustc), the C
# example built with pkg-config alone (shared and static) and run on
# generated sysfs trees, and the Rust example.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test --locked --release --test install
