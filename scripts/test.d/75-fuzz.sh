#!/bin/bash
# A short coverage-guided fuzz run of every target (docs/fuzzing.md) on its
# committed corpus: about a minute in all once built; fails on any crash.
# cargo-fuzz is installed at its pinned version by scripts/fuzz.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/fuzz.sh smoke "${FUZZ_SMOKE_SECONDS:-12}"
