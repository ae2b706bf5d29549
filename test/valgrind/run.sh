#!/usr/bin/env bash
# valgrind memcheck of a full run of the default pipeline on one sample
# image (predictions, every tap of the pipeline: filters, activations,
# weights, saliency and Grad-CAM with their curves, the report).  Kernels
# run inside valgrind too (PoCL executes them on the CPU), so one image
# takes several minutes.  Passes
# when valgrind reports no error at all: no invalid read or write, no
# uninitialised value used, 0 bytes definitely lost -- with the suppressions
# of test/valgrind/pocl.supp, which cover only PoCL, LLVM and the ICD loader.
# Then the C API test program (test_capi), if it is built, the same way.
#   test/valgrind/run.sh [BUILD_DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${1:-build}/cnnviz-cl"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
export POCL_CACHE_DIR="${POCL_CACHE_DIR:-$OUT/pocl}" CNNVIZ_CACHE_DIR="${CNNVIZ_CACHE_DIR:-$OUT/cnnviz}"
# Kernels compiled once outside valgrind: the checked run loads them from
# the caches (compiling under valgrind takes many minutes).
"$BIN" run configs/fashion_mnist.yaml --input samples/fashion_mnist/images --out "$OUT/warm" -q > /dev/null
valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
  --num-callers=40 --suppressions=test/valgrind/pocl.supp --log-file="$OUT/valgrind.log" \
  "$BIN" run configs/fashion_mnist.yaml --input samples/fashion_mnist/images/0_tshirt.png --out "$OUT/run" -q \
  > /dev/null && rc=0 || rc=$?
n=$(find "$OUT/run" -name '*.png' | wc -l)
echo "valgrind: the run wrote $n PNG files"
[ "$n" -gt 100 ] || { echo "valgrind: the run did not finish its work" >&2; exit 1; }
grep -E "ERROR SUMMARY|definitely lost|indirectly lost" "$OUT/valgrind.log" | sed 's/^==[0-9]*== //'
if [ "$rc" -ne 0 ]; then
  echo "valgrind: exit $rc; the report:" >&2
  grep -v "^==[0-9]*== *$" "$OUT/valgrind.log" | head -200 >&2
  exit 1
fi
echo "valgrind: clean"

# The C API test program (test/api/test_capi.c), when built: the same
# checks, through libcnnviz.so.
CAPI="${1:-build}/test/test_capi"
if [ -x "$CAPI" ]; then
  "$CAPI" "$PWD" > /dev/null # warm the caches
  valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    --num-callers=40 --suppressions=test/valgrind/pocl.supp --log-file="$OUT/valgrind-capi.log" \
    "$CAPI" "$PWD" > /dev/null && rc=0 || rc=$?
  grep -E "ERROR SUMMARY|definitely lost" "$OUT/valgrind-capi.log" | sed 's/^==[0-9]*== //'
  if [ "$rc" -ne 0 ]; then
    echo "valgrind: test_capi exit $rc; the report:" >&2
    grep -v "^==[0-9]*== *$" "$OUT/valgrind-capi.log" | head -200 >&2
    exit 1
  fi
  echo "valgrind: test_capi clean"
fi
