# Shared helpers for the CLI tests (sourced).  Each check prints one line;
# the test ends with "N passed, N failed" and fails if any check failed.
set -u
BIN="${CNNVIZ_BIN:?CNNVIZ_BIN must point to the cnnviz-cl binary}"
SRC="${CNNVIZ_SOURCE_DIR:?}"
TMP="${CNNVIZ_TEST_TMP:-/tmp}/$(basename "$0" .sh).$$"
mkdir -p "$TMP"
passed=0
failed=0

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }

# expect_rc WANT DESCRIPTION -- command...  (stdout/stderr in $TMP/out, $TMP/err)
expect_rc() {
  local want=$1 what=$2
  shift 3
  "$@" > "$TMP/out" 2> "$TMP/err"
  local rc=$?
  if [ "$rc" -eq "$want" ]; then ok; else
    bad "$what: exit $rc, expected $want"; sed 's/^/  stderr: /' "$TMP/err" | head -5 >&2; fi
}

# expect_grep FILE PATTERN DESCRIPTION
expect_grep() {
  if grep -qE -- "$2" "$1"; then ok; else bad "$3: /$2/ not in $(basename "$1")"; head -5 "$1" | sed 's/^/  /' >&2; fi
}

# use_sample: the Fashion-MNIST sample's paths (CFG IMAGES IMG WEIGHTS), PY,
# an empty $OUTS for --out folders, and $TMP/base.yaml: the sample pipeline
# with absolute weights and labels, so copies in $TMP resolve.
use_sample() {
  PY=/usr/bin/python3
  CFG="$SRC/configs/fashion_mnist.yaml"
  IMAGES="$SRC/samples/fashion_mnist/images"
  IMG="$IMAGES/0_tshirt.png"
  WEIGHTS="$SRC/samples/fashion_mnist/fashion_mnist.safetensors"
  OUTS="$TMP/outs"
  mkdir -p "$OUTS"
  sed -e "s#\.\./samples/#$SRC/samples/#" "$CFG" > "$TMP/base.yaml"
}

finish() {
  echo "$passed passed, $failed failed"
  rm -rf "$TMP"
  [ "$failed" -eq 0 ]
}
