#!/usr/bin/env bash
# Kernel choice by measurement (host/runtime/choose.h): the first run on a
# CPU device times each 3x3 convolution shape of the sample pipeline and
# writes the choices file; the next run reads it (no timing, the same
# output bit for bit); a file forcing Winograd or im2col everywhere is
# obeyed (--profile names the kernel) and predicts as the measured one
# within float32 rounding; a damaged file is measured again; no cache
# folder, CNNVIZ_CHOOSE=0 and gradient maps measure nothing.  The device
# must be a CPU (PoCL) for the choice to exist; elsewhere the test only
# checks that nothing is measured.  About 30 s on a 2-core CPU.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
CFG="$SRC/configs/fashion_mnist.yaml"
IMAGES="$SRC/samples/fashion_mnist/images"
export CNNVIZ_CACHE_DIR="$TMP/cache"
CONVS="conv2 conv3 conv4" # the 3x3 convolutions with 32 or more input channels

# run NAME DESCRIPTION [ARGS...]: the sample pipeline into $TMP/NAME, exit 0
run() {
  local name=$1 what=$2
  shift 2
  expect_rc 0 "$what" -- "$BIN" run "$CFG" --input "$IMAGES" --out "$TMP/$name" --no-taps --no-report --batch 4 \
    --profile "$@"
  cp "$TMP/out" "$TMP/$name.out"
  cp "$TMP/err" "$TMP/$name.err"
}

# choices: the data lines of the choices file(s)
choices() { cat "$TMP"/cache/choices*/*.txt 2> /dev/null | grep -v '^#' | tail -n +2; }

# kernel NAME LAYER: the kernel column of LAYER in $TMP/NAME.out's profile table
kernel() { awk -v l="$2" '$1 == l && $2 == "conv2d" { print $3; exit }' "$TMP/$1.out"; }

# same_outputs A B TOL DESCRIPTION: every output.npy of A and B agree within
# TOL relative to B's largest magnitude (0: bit for bit)
same_outputs() {
  if msg=$("$PY" - "$TMP/$1" "$TMP/$2" "$3" 2>&1 <<'EOF'
import glob, os, sys
import numpy as np
a, b, tol = sys.argv[1], sys.argv[2], float(sys.argv[3])
files = sorted(glob.glob(os.path.join(b, "*", "output.npy")))
assert files, "no output.npy in " + b
for fb in files:
    fa = os.path.join(a, os.path.relpath(fb, b))
    x, y = np.load(fa).astype(np.float64), np.load(fb).astype(np.float64)
    assert x.shape == y.shape, f"{fa}: shape {x.shape} vs {y.shape}"
    err = float(np.max(np.abs(x - y))) / max(float(np.max(np.abs(y))), 1e-30)
    assert err <= tol, f"{os.path.relpath(fb, b)}: relative difference {err:.3g} > {tol:g}"
EOF
  ); then ok; else bad "$4"; printf '%s\n' "$msg" | tail -3 | sed 's/^/  /' >&2; fi
}

cpu=false
"$BIN" devices 2> /dev/null | grep -E '^selected:' | grep -qiE 'cpu|pthread|pocl' && cpu=true

# ------------------------------------------------------------ first run
run first "first run"
if $cpu; then
  expect_grep "$TMP/first.err" '^cnnviz-cl: timed 3 convolution shapes on this device' "the first run says it measured"
  expect_grep "$TMP/first.out" '\(3 convolution shapes timed' "--profile's start-up line counts them"
  n=$(choices | wc -l)
  if [ "$n" -eq 3 ]; then ok; else bad "the choices file has $n entries, expected 3"; choices | head -5 >&2; fi
  # ci hi wi co pt pb pl pr batch: conv2 32@28x28, conv3 32@14x14 -> 64, conv4 64@14x14
  for key in '32 28 28 32 1 1 1 1 4' '32 14 14 64 1 1 1 1 4' '64 14 14 64 1 1 1 1 4'; do
    if choices | grep -qE "^$key (winograd|im2col) [0-9.]+ [0-9.]+$"; then ok; else
      bad "no entry for shape '$key'"; choices | head -5 >&2; fi
  done
  for l in $CONVS; do
    k=$(kernel first "$l")
    if [ "$k" = winograd ] || [ "$k" = im2col ]; then ok; else bad "$l: kernel '$k' in the profile"; fi
  done

  # -------------------------------------------------------- second run
  run second "second run"
  if ! grep -q 'timed' "$TMP/second.err" "$TMP/second.out"; then ok; else bad "the second run measured again"; fi
  for l in $CONVS; do
    if [ "$(kernel second "$l")" = "$(kernel first "$l")" ]; then ok; else bad "$l: the second run chose otherwise"; fi
  done
  same_outputs second first 0 "the second run's outputs equal the first's bit for bit"

  # -------------------------------------------------------- forced choices
  f=$(ls "$TMP"/cache/choices*/*.txt)
  cp "$f" "$TMP/measured.txt"
  for want in winograd im2col; do
    sed -E "s/ (winograd|im2col) / $want /" "$TMP/measured.txt" > "$f"
    run "$want" "all $want"
    for l in $CONVS; do
      k=$(kernel "$want" "$l")
      if [ "$k" = "$want" ]; then ok; else bad "$l ran '$k' with a file choosing $want"; fi
    done
    if ! grep -q 'timed' "$TMP/$want.err"; then ok; else bad "a complete file was measured again"; fi
    same_outputs "$want" first 1e-5 "all $want predicts as the measured choice"
  done

  # -------------------------------------------------------- damaged files
  for damage in garbage header; do
    if [ $damage = garbage ]; then printf 'not a choices file\n\x01\x02\n' > "$f"
    else sed '1s/.*/cnnviz-cl-choices 99/' "$TMP/measured.txt" > "$f"; fi
    run "damaged-$damage" "a run with a damaged file ($damage)"
    expect_grep "$TMP/damaged-$damage.err" '^cnnviz-cl: timed 3 convolution shapes' "a damaged file ($damage) is measured again"
    n=$(choices | wc -l)
    if [ "$n" -eq 3 ] && head -1 "$f" | grep -qx 'cnnviz-cl-choices 1'; then ok; else
      bad "the damaged file ($damage) was not rewritten whole"; head -3 "$f" >&2; fi
  done
  # a bad line among good ones: that shape alone is measured again
  # (and an entry of another network, with absurd times, survives the rewrite)
  grep -v '^32 28 28 32 ' "$TMP/measured.txt" > "$f"
  echo '32 28 28 32 1 1 1 1 4 fastest 1.0 2.0' >> "$f"
  echo '999 1 1 1 0 0 0 0 1 im2col 1e300 nan' >> "$f"
  run badline "a run with one bad line"
  expect_grep "$TMP/badline.err" '^cnnviz-cl: timed 1 convolution shape ' "only the bad line's shape is measured"
  n=$(choices | wc -l)
  if [ "$n" -eq 4 ]; then ok; else bad "after the bad line: $n entries, expected 4"; choices >&2; fi
  expect_grep "$f" '^999 1 1 1 0 0 0 0 1 im2col -1\.000 -1\.000$' "another network's entry is kept, its times bounded"
  if [ "$(awk 'length > 200' "$f" | wc -l)" -eq 0 ]; then ok; else bad "a line of the rewritten file is too long"; fi
fi

# ------------------------------------------------------------ nothing measured
rm -rf "$TMP/cache"
CNNVIZ_CACHE_DIR=off run off "no cache folder"
if ! grep -q 'timed' "$TMP/off.err" "$TMP/off.out"; then ok; else bad "a run without a cache folder measured"; fi
CNNVIZ_CHOOSE=0 run nochoose "CNNVIZ_CHOOSE=0"
if ! grep -q 'timed' "$TMP/nochoose.err"; then ok; else bad "CNNVIZ_CHOOSE=0 measured"; fi
if [ -z "$(choices)" ]; then ok; else bad "CNNVIZ_CHOOSE=0 wrote a choices file"; fi
expect_rc 0 "a saliency run" -- "$BIN" run "$CFG" --input "$IMAGES/$(ls "$IMAGES" | head -1)" --out "$TMP/sal" \
  --no-report --no-taps --tap input:saliency
if ! grep -q 'timed' "$TMP/err"; then ok; else bad "a gradient-map run measured"; fi

finish
