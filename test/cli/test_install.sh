#!/usr/bin/env bash
# `cmake --install` into a temporary prefix: the CLI, libcnnviz.so with its
# SONAME link, the header and the pkg-config file; then samples/c/gradcam.c
# built against the installed library alone (pkg-config, no source tree
# include) and run on the Fashion-MNIST model.
set -euo pipefail
SRC="${CNNVIZ_SOURCE_DIR:?}"
BUILD="$(dirname "${CNNVIZ_BIN:?}")"
TMP="${CNNVIZ_TEST_TMP:-/tmp}/install"
rm -rf "$TMP" && mkdir -p "$TMP"
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$BUILD" --prefix "$TMP/prefix" > "$TMP/install.log"
libdir=$(find "$TMP/prefix" -name 'libcnnviz.so.0' -printf '%h\n' | head -1)
[ -n "$libdir" ] || fail "no libcnnviz.so.0 installed"
[ -x "$TMP/prefix/bin/cnnviz-cl" ] || fail "no bin/cnnviz-cl"
[ -f "$TMP/prefix/include/cnnviz.h" ] || fail "no include/cnnviz.h"
[ -L "$libdir/libcnnviz.so" ] || fail "no libcnnviz.so development link"
soname=$(readelf -d "$libdir/libcnnviz.so.0" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = "libcnnviz.so.0" ] || fail "SONAME is '$soname'"
# only the public API is exported
others=$(nm -D --defined-only "$libdir/libcnnviz.so.0" | awk '$2 == "T" && $3 !~ /^cnnviz_/' | head -5)
[ -z "$others" ] || fail "exported beside the API: $others"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
version=$(pkg-config --modversion cnnviz)
header=$(sed -n 's/^#define CNNVIZ_VERSION_STRING "\(.*\)"/\1/p' "$TMP/prefix/include/cnnviz.h")
[ "$version" = "$header" ] || fail "pkg-config says $version, the header $header"

# A sanitizer build's library needs the program built the same way.
san=()
if readelf -d "$libdir/libcnnviz.so.0" | grep -q 'libasan'; then san=(-fsanitize=address,undefined); fi
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror "${san[@]}" "$SRC/samples/c/gradcam.c" $(pkg-config --cflags --libs cnnviz) \
  -o "$TMP/gradcam"
LD_LIBRARY_PATH="$libdir" "$TMP/gradcam" "$SRC/configs/fashion_mnist.yaml" \
  "$SRC/samples/fashion_mnist/images/1_trouser.png" relu4 "$TMP/cam.ppm" > "$TMP/out.txt"
cat "$TMP/out.txt"
grep -q "^class 1 (Trouser)" "$TMP/out.txt" || fail "the trouser image is not class 1"
grep -q "^Grad-CAM at relu4 peaks at row" "$TMP/out.txt" || fail "no Grad-CAM line"
[ "$(head -c 2 "$TMP/cam.ppm")" = "P6" ] && [ "$(stat -c %s "$TMP/cam.ppm")" -eq $((13 + 28 * 28 * 3)) ] ||
  fail "cam.ppm is not a 28 x 28 PPM"
echo "test_install: passed"
