#!/usr/bin/env bash
# Build KenLM's lmplz + build_binary (the language-model trainer SkyPile's quality models need)
# from the `kenlm` sdist on PyPI, which carries lm/builder, against Debian's boost/eigen/zlib/bz2/lzma.
# The binaries are cached in $SKYPILE_KENLM_CACHE (default ~/.cache/skypile/kenlm/<version>/bin) and
# linked into the active virtualenv's bin/, so a second install is instant.
# Run from scripts/install.sh with the venv active.  Missing Debian packages are apt-get installed
# when we run as root (CI); otherwise the script says which ones to install.
set -euo pipefail
VERSION=${KENLM_VERSION:-0.3.0}
CACHE=${SKYPILE_KENLM_CACHE:-$HOME/.cache/skypile/kenlm/$VERSION}
BIN_DIR=${VIRTUAL_ENV:-$(python -c 'import sys; print(sys.prefix)')}/bin

link_into_venv() {
    for tool in lmplz build_binary; do ln -sf "$CACHE/bin/$tool" "$BIN_DIR/$tool"; done
    echo "kenlm: lmplz + build_binary in $CACHE/bin (linked into $BIN_DIR)"
}

if [ -x "$CACHE/bin/lmplz" ] && [ -x "$CACHE/bin/build_binary" ]; then
    link_into_venv
    exit 0
fi

PKGS="build-essential cmake libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev libeigen3-dev zlib1g-dev libbz2-dev liblzma-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "kenlm: apt-get install $missing"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    else
        echo "error: building KenLM (lmplz) needs a C++ compiler and these Debian packages: $missing" >&2
        echo "       sudo apt-get install $missing   (then rerun scripts/install.sh)" >&2
        exit 1
    fi
fi
if ! command -v g++ >/dev/null || ! command -v cmake >/dev/null; then
    echo "error: building KenLM (lmplz) needs a C++ compiler and cmake: apt-get install build-essential cmake" >&2
    exit 1
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# The sdist only (no wheel exists with lmplz); --no-build-isolation avoids fetching its build deps.
python -m pip download -q --no-deps --no-binary kenlm --no-build-isolation "kenlm==$VERSION" -d "$WORK" \
    || python -m pip download -q --no-deps --no-binary kenlm "kenlm==$VERSION" -d "$WORK"
tar -xzf "$WORK"/kenlm-"$VERSION".tar.gz -C "$WORK"
cmake -S "$WORK/kenlm-$VERSION" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DCOMPILE_TESTS=OFF >"$WORK/cmake.log" 2>&1 \
    || { tail -30 "$WORK/cmake.log" >&2; exit 1; }
cmake --build "$WORK/build" --target lmplz build_binary -j "$(nproc)" >"$WORK/make.log" 2>&1 \
    || { tail -30 "$WORK/make.log" >&2; exit 1; }
mkdir -p "$CACHE.tmp/bin"
cp "$WORK/build/bin/lmplz" "$WORK/build/bin/build_binary" "$CACHE.tmp/bin/"
rm -rf "$CACHE" && mv "$CACHE.tmp" "$CACHE"   # atomic: a half-built cache is never used
link_into_venv
