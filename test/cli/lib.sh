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

# Sanitizer reports, assertion failures and crashes all leave one of these.
SANITIZER='AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|internal error|Segmentation fault|Aborted|core dumped'

# check_error DESCRIPTION ERE: the last command ($TMP/err, $rc) failed with
# exit 2 (no signal), one error line matching ERE, no sanitizer output.
check_error() {
  local what=$1 re=$2
  if [ "$rc" -ge 128 ]; then bad "$what: killed by signal $((rc - 128))"
  elif [ "$rc" -eq 2 ]; then ok
  else bad "$what: exit $rc, expected 2"; fi
  if grep -qE "$SANITIZER" "$TMP/err"; then
    bad "$what: sanitizer or crash report on stderr"; grep -E "$SANITIZER" "$TMP/err" | head -3 | sed 's/^/  /' >&2
  else ok; fi
  local n
  n=$(grep -c '^cnnviz-cl: error: ' "$TMP/err")
  if [ "$n" -eq 1 ]; then ok; else bad "$what: $n error lines, expected 1"; sed 's/^/  stderr: /' "$TMP/err" | head -5 >&2; fi
  if [ -n "${HOSTILE_VERBOSE:-}" ]; then
    echo "[$what] rc=$rc $(grep -E '^cnnviz-cl: (error|skipped): ' "$TMP/err" | sed "s#$TMP/##g" | tr '\n' ' ')"
  fi
  if grep '^cnnviz-cl: error: ' "$TMP/err" | grep -qE -- "$re"; then ok; else
    bad "$what: /$re/ not in the error line"; grep '^cnnviz-cl: error: ' "$TMP/err" | sed 's/^/  /' >&2; fi
}

# runcmd COMMAND...: run it, stdout/stderr into $TMP/out and $TMP/err, status in $rc
runcmd() {
  "$@" > "$TMP/out" 2> "$TMP/err"
  rc=$?
}

# fresh_out NAME: an --out folder that already holds one file of the user's
fresh_out() {
  mkdir -p "$OUTS/$1"
  echo keep > "$OUTS/$1/existing.txt"
}

# untouched NAME DESCRIPTION: the folder still holds exactly existing.txt
untouched() {
  local left
  left=$(cd "$OUTS/$1" && find . -mindepth 1 ! -path ./existing.txt | head -5)
  if [ -z "$left" ] && [ -f "$OUTS/$1/existing.txt" ]; then ok; else
    bad "$2: output written for an error: $(echo $left)"; fi
}

# same_run A B: the same files, byte for byte but manifest.json, whose
# entries differ in their times at most
same_run() {
  /usr/bin/python3 - "$1" "$2" <<'PYEOF'
import json, os, sys
a, b = sys.argv[1:]
def files(d):
    return sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)
fa, fb = files(a), files(b)
assert fa == fb, "files differ: %s" % sorted(set(fa) ^ set(fb))[:5]
for f in fa:
    if f != "manifest.json":
        assert open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read(), f + " differs"
ma, mb = (json.load(open(os.path.join(d, "manifest.json"))) for d in (a, b))
for m in (ma, mb):
    for e in m["files"]:
        e.pop("mtime")
assert ma == mb, [k for k in ma if ma[k] != mb[k]]
print(len(fa), "files alike")
PYEOF
}

# Fashion-MNIST's test set (Debian's dataset-fashion-mnist)
FASHION_TEST=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
# need_fashion_test: ends the test with a SKIP line when it is not there
need_fashion_test() {
  [ -f "$FASHION_TEST" ] && return 0
  echo "SKIP: $FASHION_TEST missing (Debian package dataset-fashion-mnist; cmake/install-deps.sh installs it)"
  finish
  exit $?
}

# fashion_images DIR N: the first N test images as DIR/a/NNNN.png and
# DIR/b/NNNN.png (N/2 each: the same names in both folders)
fashion_images() {
  /usr/bin/python3 - "$1" "$2" "$FASHION_TEST" <<'PYEOF'
import gzip, os, struct, sys
import numpy as np
from PIL import Image
out, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = gzip.open(path, "rb").read()
_, _, ndim = struct.unpack(">HBB", data[:4])
dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
imgs = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)
for i in range(n):
    sub = os.path.join(out, "ab"[i * 2 // n])
    os.makedirs(sub, exist_ok=True)
    Image.fromarray(imgs[i]).save(os.path.join(sub, "%04d.png" % (i % (n // 2))))
PYEOF
}

finish() {
  echo "$passed passed, $failed failed"
  rm -rf "$TMP"
  [ "$failed" -eq 0 ]
}
