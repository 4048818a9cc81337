#!/bin/bash
# The hostile-guest benchmark (monitor/benches/hostile.rs) of this tree's
# monitor against another build in the same run: OLD_REV (default main)
# is checked out in a temporary worktree and built into target/bench-old.
#   scripts/bench-hostile.sh [--seconds S] [--only rss,latency,throughput,instructions]
#       [--cells 1x1,8x8,64x64] [--rounds N] [--pin] [--favour] [--keep-callgrind DIR]
#   OLD_REV=5619fa7 scripts/bench-hostile.sh ...   (the monitor before issue 10)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
rev=${OLD_REV:-main}
old="$root/target/bench-old/release/vm_power_mgr"
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/src" 2>/dev/null || true; rm -rf "$tmp"' EXIT
git worktree add --detach "$tmp/src" "$rev" >/dev/null
echo "old monitor: $rev ($(git rev-parse --short "$rev"))"
(cd "$tmp/src" && cargo build --locked --release -p vm-power-mgr --target-dir "$root/target/bench-old")
cargo bench --locked -p vm-power-mgr --bench hostile -- --old "$old" "$@"
