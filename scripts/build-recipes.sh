#!/bin/bash
# build-recipes.sh: the build-system recipes of examples-c/recipes/ (meson
# with dependency('rte_power') ahead of dependency('libdpdk'), CMake with
# pkg_check_modules, plain make with pkg-config), each building DPDK 22.11's
# unchanged l3fwd-power against an installed rte-power (a staging `make
# install`). Each binary must need our librte_power_rs.so.0 and not DPDK's
# librte_power.so.23, must have been compiled with our include/ ahead of
# DPDK's (meson and CMake: their compile commands), and then runs one
# l3fwd-power scenario (legacy-busy: frequency to the top, restored at
# exit). Needs root and scripts/deps.d/dpdk-programs.txt.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SRC=${L3FWD_SRC:-/usr/share/dpdk/examples/l3fwd-power}
OUT=$REPO/target/build-recipes
STAGE=$REPO/target/dpdk-programs/stage/usr
RECIPES=$REPO/examples-c/recipes

die() { echo "build-recipes: $*" >&2; exit 1; }
[ -f "$SRC/main.c" ] || die "no $SRC/main.c (apt-get install dpdk-doc)"
for t in meson ninja cmake make pkg-config; do
  command -v "$t" >/dev/null || die "$t is needed (scripts/deps.d/dpdk-programs.txt)"
done
(cd "$REPO" && make -s >/dev/null && make -s install PREFIX="$STAGE" LDCONFIG= >/dev/null)
export PKG_CONFIG_PATH=$STAGE/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
mkdir -p "$OUT"
fail=0

# first_include JSON: is our include/ ahead of DPDK's on the compile line
# of main.c?
ours_first() {
  python3 - "$1" "$STAGE/include" <<'EOF'
import json, shlex, sys
cmds = json.load(open(sys.argv[1]))
ours = sys.argv[2]
for c in cmds:
    if c["file"].endswith("main.c"):
        args = c.get("arguments") or shlex.split(c["command"])
        inc = [a[2:] if a.startswith("-I") and len(a) > 2 else None for a in args]
        incs = [a for a in inc if a]
        idx = [i for i, a in enumerate(args) if a == "-I" or a == "-isystem"]
        incs += [args[i + 1] for i in idx]
        first_ours = min((i for i, a in enumerate(args) if ours in a), default=None)
        first_dpdk = min((i for i, a in enumerate(args) if a.endswith("/include/dpdk")), default=None)
        ok = first_ours is not None and first_dpdk is not None and first_ours < first_dpdk
        print(f"  compile line: {'ours ahead of DPDK' if ok else 'NOT ours first'}")
        sys.exit(0 if ok else 1)
print("  no compile command for main.c"); sys.exit(1)
EOF
}

check() { # check NAME BIN
  local name=$1 bin=$2 needed t
  needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(librte_power[^]]*\)\].*/\1/p' | paste -sd' ' -)
  if [ "$needed" = librte_power_rs.so.0 ]; then
    echo "  NEEDED $needed (rte-power), no librte_power.so.23"
  else
    echo "  NEEDED '$needed': not rte-power alone"; return 1
  fi
  t=$SECONDS
  if L3FWD_WAY=$name L3FWD_BIN=$bin L3FWD_LIB_PATH=$STAGE/lib L3FWD_STAGE=$STAGE \
     bash "$HERE/l3fwd-power.sh" run-scenarios legacy-busy > "$OUT/$name.run" 2>&1; then
    grep -E '^  (loaded|cpu1|restored)' "$OUT/$name.run"
    echo "  (scenario $((SECONDS - t)) s)"
  else
    sed 's/^/  | /' "$OUT/$name.run"; return 1
  fi
}

recipe() { # recipe NAME: builds, then checks
  local name=$1 ok=1 t=$SECONDS bin
  echo "== $name"
  rm -rf "${OUT:?}/$name"
  case $name in
    meson)
      meson setup "$OUT/meson" "$RECIPES/meson" -Dl3fwd_src="$SRC" > "$OUT/meson.log" 2>&1 &&
        ninja -C "$OUT/meson" >> "$OUT/meson.log" 2>&1 || ok=0
      bin=$OUT/meson/l3fwd-power
      [ $ok = 1 ] && { ours_first "$OUT/meson/compile_commands.json" || ok=0; } ;;
    cmake)
      cmake -S "$RECIPES/cmake" -B "$OUT/cmake" -DL3FWD_SRC="$SRC" \
        -DCMAKE_EXPORT_COMPILE_COMMANDS=ON > "$OUT/cmake.log" 2>&1 &&
        cmake --build "$OUT/cmake" >> "$OUT/cmake.log" 2>&1 || ok=0
      bin=$OUT/cmake/l3fwd-power
      [ $ok = 1 ] && { ours_first "$OUT/cmake/compile_commands.json" || ok=0; } ;;
    make)
      mkdir -p "$OUT/make"
      make -s -C "$OUT/make" -f "$RECIPES/make/Makefile" L3FWD_SRC="$SRC" > "$OUT/make.log" 2>&1 || ok=0
      bin=$OUT/make/l3fwd-power ;;
  esac
  if [ $ok = 0 ]; then
    echo "  build failed:"; tail -n 20 "$OUT/$name.log" | sed 's/^/  | /'
  else
    echo "  built in $((SECONDS - t)) s: ${bin#"$REPO"/}"
    check "$name" "$bin" || ok=0
  fi
  if [ $ok = 1 ]; then echo "PASS $name"; else echo "FAIL $name"; fail=1; fi
}

for r in meson cmake make; do recipe "$r"; done
exit $fail
