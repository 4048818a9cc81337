#!/bin/bash
# Installs the Debian packages every part of the test suite needs: the
# union of scripts/deps.d/*.txt (one package per line, # comments).
# Idempotent; run as root on Debian 12.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
mapfile -t PKGS < <(cat "$HERE"/deps.d/*.txt | sed 's/#.*//' | tr -s ' \t' '\n' | grep -v '^$' | sort -u)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all ${#PKGS[@]} packages present"
fi
