#!/usr/bin/env bash
# normalize: global across parts.  A pipeline with a global tap (conv2),
# a global tap that clips to percentiles (pool2) and a per-channel one
# (conv1) over the 10 sample images in batches of 2, cut into 3 parts
# whose own ranges differ.  The recipe (run --stats per part, merge --stats,
# for the clipping tap a second round run --stats --ranges, merge --stats,
# then run --ranges per part and merge) gives the single run's files byte
# for byte.  Parts drawn with their own ranges do not merge; statistics
# files that do not fit (another model, the first round where the second is
# needed, mixed rounds, not a statistics file) are refused with exit 2.
. "$(dirname "$0")/lib.sh"
use_sample
cat "$TMP/base.yaml" | sed '/^taps:/,$d' > "$TMP/g.yaml"
cat >> "$TMP/g.yaml" <<'EOF'
taps:
  - {layer: conv2, show: activations, normalize: global}
  - {layer: pool2, show: activations, normalize: global, clip: [1, 99]}
  - {layer: conv1, show: activations}
output:
  top: 3
EOF
sed '/layer: pool2/d' "$TMP/g.yaml" > "$TMP/g1.yaml"
run() { "$BIN" run "$1" --input "$IMAGES" -q --batch 2 "${@:2}"; }
# parts CFG NAME ARGS...: the 3 parts of CFG into $OUTS/NAME0..2
parts() {
  local cfg=$1 name=$2 i
  shift 2
  for i in 0 1 2; do expect_rc 0 "$name part $i/3" -- run "$cfg" --shard $i/3 --out "$OUTS/$name$i" "$@"; done
}

# --- one round: a global tap without clip --------------------------------
expect_rc 0 "single run, one global tap" -- run "$TMP/g1.yaml" --out "$OUTS/single1"
parts "$TMP/g1.yaml" st "--stats"
if [ -f "$OUTS/st0/stats.json" ] && [ ! -e "$OUTS/st0/predictions.json" ] && [ ! -e "$OUTS/st0/model" ]; then ok; else
  bad "a --stats part writes stats.json and no images"; ls "$OUTS/st0" >&2; fi
expect_rc 0 "merge --stats" -- "$BIN" merge --stats "$OUTS/r.json" "$OUTS"/st2 "$OUTS"/st0 "$OUTS"/st1
expect_grep "$TMP/err" "draw each part with run --ranges" "merge --stats says what comes next"
parts "$TMP/g1.yaml" draw "--ranges" "$OUTS/r.json"
expect_rc 0 "merge of parts drawn with the shared range" -- "$BIN" merge -q "$OUTS/merged1" "$OUTS"/draw{0,1,2}
if same_run "$OUTS/single1" "$OUTS/merged1" > "$TMP/same" 2>&1; then ok; else
  bad "one round: merged differs from the single run"; tail -3 "$TMP/same" >&2; fi
# the same parts with their own ranges do not merge
parts "$TMP/g1.yaml" own
runcmd "$BIN" merge "$OUTS/refused" "$OUTS"/own{0,1,2}
check_error "parts drawn with their own global ranges" "drew layer 'conv2' with the global range .*run --stats, merge --stats"
[ ! -e "$OUTS/refused" ] && ok || bad "a refused merge wrote its folder"

# --- two rounds: a tap that clips ------------------------------------------
expect_rc 0 "single run, clipping tap" -- run "$TMP/g.yaml" --out "$OUTS/single"
parts "$TMP/g.yaml" a "--stats"
expect_rc 0 "merge --stats, first round" -- "$BIN" merge --stats "$OUTS/r1.json" "$OUTS"/a{0,1,2}
expect_grep "$TMP/err" "layer 'pool2' clips to percentiles: its histogram needs a second round" "the first round says a second follows"
runcmd run "$TMP/g.yaml" --shard 0/3 --out "$OUTS/early" --ranges "$OUTS/r1.json"
check_error "drawing with the first round only" "layer 'pool2' clips to percentiles, which needs the histogram of a second round"
[ ! -e "$OUTS/early" ] && ok || bad "a refused run wrote its folder"
parts "$TMP/g.yaml" b --stats --ranges "$OUTS/r1.json"
runcmd "$BIN" merge --stats "$OUTS/mixed.json" "$OUTS"/a0 "$OUTS"/b1 "$OUTS"/b2
check_error "parts of both rounds" "the histogram of layer 'pool2' is"
[ ! -e "$OUTS/mixed.json" ] && ok || bad "a refused merge --stats wrote its file"
expect_rc 0 "merge --stats, second round" -- "$BIN" merge --stats "$OUTS/r2.json" "$OUTS"/b{0,1,2}
parts "$TMP/g.yaml" c --ranges "$OUTS/r2.json"
expect_rc 0 "merge of parts drawn with the shared ranges" -- "$BIN" merge -q "$OUTS/merged" "$OUTS"/c{0,1,2}
if same_run "$OUTS/single" "$OUTS/merged" > "$TMP/same" 2>&1; then ok; else
  bad "two rounds: merged differs from the single run"; tail -3 "$TMP/same" >&2; fi
# the whole run's own --stats gives the same file as the parts' merged
expect_rc 0 "--stats of the whole, second round" -- run "$TMP/g.yaml" --stats --ranges "$OUTS/r1.json" --out "$OUTS/whole"
if cmp -s "$OUTS/whole/stats.json" "$OUTS/r2.json"; then ok; else bad "the parts' statistics merged differ from the whole's"; fi

# --- refusals ----------------------------------------------------------------
runcmd "$BIN" merge "$OUTS/refused" "$OUTS"/a{0,1,2}
check_error "merge of --stats parts without --stats" "holds statistics \(run --stats\)"
runcmd "$BIN" merge --stats "$OUTS/refused.json" "$OUTS"/c{0,1,2}
check_error "merge --stats of drawn parts" "holds a run's files, not statistics"
runcmd "$BIN" merge --stats "$OUTS/refused.json" "$OUTS"/b0 "$OUTS"/b2
check_error "merge --stats with a part missing" "inputs 2 to 5 of 10 are in none of the folders given: shard 1/3 missing"
echo '{"mine": true}' > "$OUTS/user.json"
cp "$OUTS/user.json" "$OUTS/user.keep"
runcmd "$BIN" merge --stats "$OUTS/user.json" "$OUTS"/b{0,1,2}
check_error "merge --stats over a file not its own" "user.json exists and is not a statistics file of cnnviz-cl"
cmp -s "$OUTS/user.json" "$OUTS/user.keep" && ok || bad "merge --stats changed a file of the user's"
runcmd run "$TMP/g.yaml" --ranges "$OUTS/user.json" --out "$OUTS/refused"
check_error "--ranges of a file that is not statistics" "user.json: not a statistics file of cnnviz-cl"
runcmd run "$TMP/g.yaml" --ranges "$OUTS/nowhere.json" --out "$OUTS/refused"
check_error "--ranges of a missing file" "nowhere.json"
"$PY" - "$WEIGHTS" "$TMP/other.safetensors" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[-1] ^= 1
open(sys.argv[2], "wb").write(b)
EOF
runcmd run "$TMP/g.yaml" --weights "$TMP/other.safetensors" --ranges "$OUTS/r2.json" --out "$OUTS/refused"
check_error "--ranges of other weights" "r2.json: gathered with another pipeline or other weights"
runcmd run "$CFG" --stats --out "$OUTS/refused"
check_error "--stats without a global tap" "run --stats: no tap of .* has normalize: global"
[ ! -e "$OUTS/refused" ] && ok || bad "a refused run wrote its folder"
runcmd run "$TMP/g.yaml" --ranges "$OUTS/r2.json" --input "$IMG" --out "$OUTS/subset"
[ "$rc" -eq 0 ] && ok || bad "--ranges over another input list: exit $rc"
expect_grep "$TMP/err" "gathered over another input list" "--ranges over another input list warns"
finish
