#!/usr/bin/env bash
# run --shard I/N and merge: 200 Fashion-MNIST test images (from Debian's
# dataset-fashion-mnist) in two folders whose file names repeat, so that
# output folder names ("0007", "0007_2") are decided over the whole list.
# Each of 4 parts writes only its inputs, whole batches of --batch, in
# order; its manifest records the part, the list's length and hash, and
# the pipeline + weights hash; its files are byte for byte the single
# run's for the same inputs.  A part with no inputs still publishes.
# Usage errors exit 2 with one line.
# merge joins the parts into the single run's folder: the same files, the
# same bytes (PNG, .npy, predictions, report), the manifest alike but for
# file times; it refuses (exit 2, one line, nothing written) missing or
# doubled parts, overlapping parts of different counts, parts of other
# weights, options or input lists, folders that are not this tool's, and
# files changed since their part wrote them.  Inputs a part could not
# read are merged as one run publishes them, then exit 2.
. "$(dirname "$0")/lib.sh"
use_sample
need_fashion_test
fashion_images "$TMP/imgs" 200
RUN=("$BIN" run "$CFG" --input "$TMP/imgs" -q --batch 4 --no-taps --tap fc2 --tap input:saliency
     --tap conv4:gradcam --curves 4 --npy)

# --- usage ------------------------------------------------------------------
for bad in 4/4 -1/4 1/0 x 1/ /4 "1/4/2" " 1/4"; do
  runcmd "${RUN[@]}" --out "$OUTS/bad" --shard "$bad"
  check_error "--shard '$bad'" "--shard '$bad'"
done
runcmd "${RUN[@]}" --shard 1/4
check_error "--shard without --out" "needs --out"
[ ! -e "$OUTS/bad" ] && ok || bad "a refused --shard wrote $OUTS/bad"

# --- the single run and the parts -------------------------------------------
t0=$SECONDS
expect_rc 0 "single run" -- "${RUN[@]}" --out "$OUTS/single"
t_single=$((SECONDS - t0))
t0=$SECONDS
for i in 0 1 2 3; do
  expect_rc 0 "shard $i/4" -- "${RUN[@]}" --out "$OUTS/part$i" --shard $i/4
done
echo "single run ${t_single}s, 4 parts $((SECONDS - t0))s (a shared machine: indicative only)"

if "$PY" - "$OUTS" <<'EOF'
import hashlib, json, os, sys
outs = sys.argv[1]
def load(d):
    return json.load(open(os.path.join(outs, d, "manifest.json")))
single = load("single")
run = single["run"]
assert "shard" not in run, "a single run records no shard"
assert run["inputs"] == 200 and len(run["model"]) == 16 and run["settings"]["batch"] == 4, run
# the single run's files in input order: the model's, then each input's
inputs = [e["input"] for e in single["files"] if e["input"] is not None and "/" in e["path"]]
order = [x for i, x in enumerate(inputs) if i == 0 or inputs[i - 1] != x]
assert len(order) == 200 and len(set(order)) == 200, "each input's files are together, in order"
stems = {e["path"].split("/")[0] for e in single["files"] if "/" in e["path"] and e["input"]}
assert "0007" in stems and "0007_2" in stems, "names repeated across folders get a suffix"
by_path = {e["path"]: e for e in single["files"]}
preds = json.load(open(os.path.join(outs, "single", "predictions.json")))
reached = 0
for i in range(4):
    m = load("part%d" % i)
    r = m["run"]
    sh = r["shard"]
    assert sh["index"] == i and sh["count"] == 4, sh
    assert sh["first"] == reached and sh["end"] > sh["first"] and sh["first"] % 4 == 0, sh
    reached = sh["end"]
    for k in ("model", "inputs", "input_list", "settings", "layers", "notes", "title"):
        assert r[k] == run[k], (i, k)
    mine = order[sh["first"]:sh["end"]]
    p = json.load(open(os.path.join(outs, "part%d" % i, "predictions.json")))
    assert p == preds[sh["first"]:sh["end"]], "part %d: predictions differ from the single run's" % i
    seen = set()
    for e in m["files"]:
        if "/" not in e["path"]:
            continue
        if e["input"] is not None:
            assert e["input"] in mine, "part %d wrote files of %s" % (i, e["input"])
            seen.add(e["input"])
        s = by_path[e["path"]]
        a = open(os.path.join(outs, "part%d" % i, e["path"]), "rb").read()
        b = open(os.path.join(outs, "single", e["path"]), "rb").read()
        assert a == b, "part %d: %s differs from the single run's" % (i, e["path"])
        e2 = dict(e); s2 = dict(s)
        e2.pop("mtime"); s2.pop("mtime")
        assert e2 == s2, "part %d: manifest entry of %s differs" % (i, e["path"])
    assert seen == set(mine), "part %d: inputs without files" % i
assert reached == 200, reached
print("ok")
EOF
then ok; else bad "parts against the single run"; fi

# --- more parts than batches: a part with no inputs (2 batches: parts 0 and 2 are empty)
expect_rc 0 "shard 2/4 of 2 batches" -- "$BIN" run "$CFG" --input "$IMAGES/0_tshirt.png" --input "$IMAGES/1_trouser.png" \
  --no-taps --out "$OUTS/empty" --shard 2/4
expect_grep "$TMP/err" "shard 2/4: no inputs" "an empty part says so"
if "$PY" - "$OUTS/empty" <<'EOF'
import json, os, sys
m = json.load(open(os.path.join(sys.argv[1], "manifest.json")))
sh = m["run"]["shard"]
assert sh["first"] == sh["end"] and m["run"]["inputs"] == 2, sh
assert json.load(open(os.path.join(sys.argv[1], "predictions.json"))) == []
EOF
then ok; else bad "an empty part publishes its manifest"; fi

# --- the hash follows the weights -------------------------------------------
"$PY" - "$WEIGHTS" "$TMP/other.safetensors" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[-1] ^= 1  # the last byte of the last tensor
open(sys.argv[2], "wb").write(b)
EOF
expect_rc 0 "run with other weights" -- "$BIN" run "$CFG" --weights "$TMP/other.safetensors" --input "$IMG" -q \
  --no-taps --out "$OUTS/otherw"
if "$PY" - "$OUTS/otherw" "$OUTS/single" <<'EOF'
import json, os, sys
a, b = (json.load(open(os.path.join(d, "manifest.json")))["run"]["model"] for d in sys.argv[1:])
assert a != b, "one bit of the weights changes the hash"
EOF
then ok; else bad "model hash"; fi

# --- merge: the parts joined equal the single run ---------------------------
expect_rc 0 "merge --help" -- "$BIN" merge --help
expect_grep "$TMP/out" "usage: cnnviz-cl merge OUT PART_DIR" "merge --help"
t0=$SECONDS
expect_rc 0 "merge of 4 parts (given out of order)" -- \
  "$BIN" merge "$OUTS/merged" "$OUTS/part3" "$OUTS/part1" "$OUTS/part0" "$OUTS/part2"
echo "merge of 4 parts: $((SECONDS - t0))s"
expect_grep "$TMP/err" "merged 4 parts: 200 inputs" "merge says what it did"
if same_run "$OUTS/single" "$OUTS/merged" > "$TMP/same" 2>&1; then ok; else bad "merged differs from the single run"; tail -3 "$TMP/same" >&2; fi
consistent_py() {
  "$PY" - "$1" <<'PYEOF'
import json, os, sys
d = sys.argv[1]
m = json.load(open(os.path.join(d, "manifest.json")))
listed = {e["path"]: e for e in m["files"]}
present = {os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs} - {"manifest.json"}
assert set(listed) == present, sorted(set(listed) ^ present)[:5]
for p, e in listed.items():
    st = os.lstat(os.path.join(d, p))
    assert e["bytes"] == st.st_size and e["mtime"] == [st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9], p
PYEOF
}
if consistent_py "$OUTS/merged"; then ok; else bad "the merged manifest records its files' sizes and times"; fi
# merging again into the same folder replaces the earlier merge
expect_rc 0 "merge again into the same folder" -- "$BIN" merge -q "$OUTS/merged" "$OUTS"/part*
if same_run "$OUTS/single" "$OUTS/merged" > "$TMP/same" 2>&1; then ok; else bad "a second merge differs"; tail -3 "$TMP/same" >&2; fi

# --- merge refuses, writing nothing -----------------------------------------
# refused DESCRIPTION ERE PARTS...: exit 2, one error line, $OUTS/refused not made
refused() {
  local what=$1 re=$2
  shift 2
  runcmd "$BIN" merge "$OUTS/refused" "$@"
  check_error "$what" "$re"
  [ ! -e "$OUTS/refused" ] && ok || { bad "$what: wrote $OUTS/refused"; rm -rf "$OUTS/refused"; }
}
refused "a missing part" "inputs 100 to 147 of 200 are in none of the folders given: shard 2/4 missing" \
  "$OUTS/part0" "$OUTS/part1" "$OUTS/part3"
refused "the last part missing" "inputs 148 to 199 of 200 .*shard 3/4 missing" "$OUTS/part0" "$OUTS/part1" "$OUTS/part2"
cp -a "$OUTS/part1" "$OUTS/part1-again"
refused "a doubled part" "shard 1/4 is given twice: .*part1 and .*part1-again" \
  "$OUTS"/part0 "$OUTS"/part1 "$OUTS"/part1-again "$OUTS"/part2 "$OUTS"/part3
refused "the same folder twice" "shard 0/4 is given twice" "$OUTS"/part0 "$OUTS"/part0 "$OUTS"/part1 "$OUTS"/part2 \
  "$OUTS"/part3
mkdir -p "$OUTS/empty-dir" "$OUTS/foreign"
echo '{"name": "my-app", "files": []}' > "$OUTS/foreign/manifest.json"
refused "a folder without a manifest" "empty-dir: not an output folder of cnnviz-cl \(no manifest.json\)" \
  "$OUTS"/part0 "$OUTS"/empty-dir
refused "another program's folder" "foreign: not an output folder of cnnviz-cl" "$OUTS"/part0 "$OUTS"/foreign
refused "a file, not a folder" "not a folder" "$OUTS"/part0 "$OUTS"/part0/predictions.json
refused "a missing folder" "nowhere: No such file" "$OUTS"/part0 "$OUTS"/nowhere
png=$(cd "$OUTS/part1-again" && find . -name '*.png' | head -1)
touch -d '2001-01-01' "$OUTS/part1-again/$png"
refused "a part's file changed since" "part1-again/${png#./}: changed since its run wrote it" \
  "$OUTS"/part0 "$OUTS"/part1-again "$OUTS"/part2 "$OUTS"/part3
rm -rf "$OUTS/part1-again"
runcmd "$BIN" merge "$OUTS/part0" "$OUTS"/part0 "$OUTS"/part1 "$OUTS"/part2 "$OUTS"/part3
check_error "OUT is one of the parts" "is also given as a part"
runcmd "$BIN" merge "$OUTS/x"
check_error "merge without parts" "give OUT and the parts"

# parts that disagree, on the 10 sample images (batch 1: parts of 10 inputs)
small() { "$BIN" run "$CFG" --input "$IMAGES" -q --no-taps --tap conv4:gradcam "$@"; }
for i in 0 1 2; do expect_rc 0 "small part $i/3" -- small --out "$OUTS/s$i" --shard $i/3; done
expect_rc 0 "small part 1/3 with --top 2" -- small --out "$OUTS/s1top" --shard 1/3 --top 2
expect_rc 0 "small part 1/3 with other weights" -- small --out "$OUTS/s1w" --shard 1/3 --weights "$TMP/other.safetensors"
expect_rc 0 "small part 1/2" -- small --out "$OUTS/h1" --shard 1/2
ls "$IMAGES"/*.png | head -9 > "$TMP/nine.txt"
expect_rc 0 "small part 0/3 of 9 inputs" -- "$BIN" run "$CFG" --input "@$TMP/nine.txt" -q \
  --no-taps --tap conv4:gradcam --out "$OUTS/s0nine" --shard 0/3
expect_rc 0 "small parts merged" -- "$BIN" merge -q "$OUTS/small" "$OUTS"/s0 "$OUTS"/s1 "$OUTS"/s2
# part 1/4 redone as parts 2/8 and 3/8 (the same inputs)
for sh in 0/4 2/4 3/4 2/8 3/8; do expect_rc 0 "small part $sh" -- small --out "$OUTS/q${sh/\//of}" --shard $sh; done
expect_rc 0 "parts of 4 and 8 merged" -- "$BIN" merge -q "$OUTS/mixed" "$OUTS"/q0of4 "$OUTS"/q2of8 "$OUTS"/q3of8 \
  "$OUTS"/q2of4 "$OUTS"/q3of4
if same_run "$OUTS/small" "$OUTS/mixed" > "$TMP/same" 2>&1; then ok; else bad "parts of 4 and 8"; tail -3 "$TMP/same" >&2; fi
refused "other options" "s1top ran with top 2, .*s0 with 3" "$OUTS"/s0 "$OUTS"/s1top "$OUTS"/s2
refused "other weights" "s1w ran another pipeline or other weights than .*s0 \(model hash" "$OUTS"/s0 "$OUTS"/s1w \
  "$OUTS"/s2
refused "parts of different counts that overlap" "input 5 of 10 is in two folders: .*s1 \(shard 1/3\) and .*h1 \(shard 1/2\)" \
  "$OUTS"/s0 "$OUTS"/s1 "$OUTS"/h1
refused "another input list" "s0nine ran on another input list" "$OUTS"/s1 "$OUTS"/s0nine "$OUTS"/s2

# --- inputs that could not be read: published, then exit 2, as one run ------
mkdir -p "$TMP/withbad"
cp "$IMAGES"/*.png "$TMP/withbad/"
printf 'not a png' > "$TMP/withbad/3_dress.png"
runcmd "$BIN" run "$CFG" --input "$TMP/withbad" -q --no-taps --tap pool2 --out "$OUTS/bad-single"
[ "$rc" -eq 2 ] && ok || bad "a run with an unreadable input: exit $rc"
for i in 0 1 2; do runcmd "$BIN" run "$CFG" --input "$TMP/withbad" -q --no-taps --tap pool2 --out "$OUTS/bad$i" --shard $i/3; done
runcmd "$BIN" merge "$OUTS/bad-merged" "$OUTS"/bad0 "$OUTS"/bad1 "$OUTS"/bad2
check_error "merge of parts with an unreadable input" "1 of 10 inputs could not be read when the parts ran"
if same_run "$OUTS/bad-single" "$OUTS/bad-merged" > "$TMP/same" 2>&1; then ok; else
  bad "merged parts with an unreadable input differ from the single run"; tail -3 "$TMP/same" >&2; fi

# --- an empty part joins the others -----------------------------------------
TWO=(--input "$IMAGES/0_tshirt.png" --input "$IMAGES/1_trouser.png" -q --no-taps)
expect_rc 0 "two inputs, one run" -- "$BIN" run "$CFG" "${TWO[@]}" --out "$OUTS/two"
for i in 0 1 3; do expect_rc 0 "two inputs, part $i/4" -- "$BIN" run "$CFG" "${TWO[@]}" --out "$OUTS/two$i" --shard $i/4; done
expect_rc 0 "merge with empty parts" -- "$BIN" merge -q "$OUTS/two-merged" "$OUTS"/two0 "$OUTS"/two1 "$OUTS"/empty \
  "$OUTS"/two3
if same_run "$OUTS/two" "$OUTS/two-merged" > "$TMP/same" 2>&1; then ok; else bad "merge with empty parts"; tail -3 "$TMP/same" >&2; fi

finish
