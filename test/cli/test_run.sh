#!/usr/bin/env bash
# Real runs of the Fashion-MNIST pipeline on the sample images: what is
# printed, what is written (predictions.json, manifest.json, output.npy,
# tapped .npy files), the input forms, bad inputs among good ones, weight
# overrides and output names that must stay inside --out.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
CFG="$SRC/configs/fashion_mnist.yaml"
IMAGES="$SRC/samples/fashion_mnist/images"
WEIGHTS="$SRC/samples/fashion_mnist/fashion_mnist.safetensors"
LABELS="$SRC/samples/fashion_mnist/classes.txt"
LAYERS="conv1 bn1 relu1 conv2 bn2 relu2 pool1 conv3 bn3 relu3 conv4 bn4 relu4 pool2 flatten fc1 relu5 dropout fc2"

# check_py DESCRIPTION ARGS... <<'EOF' python EOF -- a check written in Python:
# it passes when the script exits 0; what it prints is shown on failure.
check_py() {
  local what=$1
  shift
  local msg
  if msg=$("$PY" - "$@" 2>&1); then ok; else bad "$what"; printf '%s\n' "$msg" | head -8 | sed 's/^/  /' >&2; fi
}

# check_manifest DIR: every entry names an existing file inside DIR, with the
# stated format; .npy files have the stated shape; no path is listed twice.
check_manifest() {
  check_py "manifest of $(basename "$1") matches the files" "$1" <<'EOF'
import json, os, sys
import numpy as np
out = os.path.realpath(sys.argv[1])
m = json.load(open(os.path.join(out, "manifest.json")))
files = m["files"]
assert files, "manifest lists no files"
for e in files:
    for k in ("path", "kind", "layer", "input", "channel", "format", "shape"):
        assert k in e, f"entry {e} lacks '{k}'"
    p = os.path.realpath(os.path.join(out, e["path"]))
    assert p.startswith(out + os.sep), f"{e['path']} is outside the output folder"
    assert os.path.isfile(p), f"{e['path']} does not exist"
    fmt = e["format"]
    assert e["path"].lower().endswith("." + fmt), f"{e['path']}: format {fmt} but another extension"
    if fmt == "npy":
        a = np.load(p)
        assert list(a.shape) == e["shape"], f"{e['path']}: shape {list(a.shape)}, manifest says {e['shape']}"
        assert a.dtype == np.float32, f"{e['path']}: dtype {a.dtype}"
        assert np.isfinite(a).all(), f"{e['path']}: not finite"
    elif fmt == "json":
        json.load(open(p))
    elif fmt == "png":
        assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n", f"{e['path']}: not a PNG"
# every file in the folder is listed (the manifest itself aside)
listed = {os.path.normpath(e["path"]) for e in files}
for d, _, names in os.walk(out):
    for n in names:
        rel = os.path.relpath(os.path.join(d, n), out)
        assert rel == "manifest.json" or rel in listed, f"{rel} is written but not in the manifest"
EOF
  # BUG: a --tap that repeats a tap of the config lists its file twice in the
  # manifest (see the --npy --tap run below); every path must appear once.
  check_py "manifest of $(basename "$1") lists each path once" "$1" <<'EOF'
import json, os, sys, collections
m = json.load(open(os.path.join(sys.argv[1], "manifest.json")))
c = collections.Counter(e["path"] for e in m["files"])
dups = [p for p, n in c.items() if n > 1]
assert not dups, f"listed more than once: {dups}"
EOF
}

# no_tmp DIR: no temporary file is left behind
no_tmp() {
  local left
  left=$(find "$1" -name '*.tmp.*' | head -3)
  if [ -z "$left" ]; then ok; else bad "temporary files left in $1: $left"; fi
}

# ---------------------------------------------------------------- all samples
O="$TMP/all"
expect_rc 0 "run on the sample folder" -- "$BIN" run "$CFG" --input "$IMAGES" --out "$O"
cp "$TMP/out" "$TMP/all.out"
check_py "stdout: each input with its top-3 and labels" "$TMP/all.out" "$IMAGES" "$LABELS" 3 <<'EOF'
import os, re, sys
lines = open(sys.argv[1]).read().splitlines()
images, labels, k = sys.argv[2], open(sys.argv[3]).read().splitlines(), int(sys.argv[4])
names = sorted(os.listdir(images))
assert len(names) == 10, names
for n in names:
    idx = [i for i, l in enumerate(lines) if l.strip().endswith(n)]
    assert len(idx) == 1, f"{n}: {len(idx)} header lines"
    block = lines[idx[0] + 1: idx[0] + 1 + k + 1]
    for r in range(k):
        m = re.match(r"^\s*(\d+)\.\s+(\d+)\s+(.+?)\s+([01]\.\d+)$", block[r])
        assert m, f"{n}: rank line {r + 1} is {block[r]!r}"
        assert int(m.group(1)) == r + 1, block[r]
        assert m.group(3) == labels[int(m.group(2))], f"label {m.group(3)!r} for index {m.group(2)}"
    assert len(block) == k or not re.match(r"^\s*\d+\.\s", block[k]), f"{n}: more than {k} rank lines"
    assert int(re.match(r"^\s*1\.\s+(\d+)", block[0]).group(1)) == int(n.split("_")[0]), f"{n}: wrong top-1 {block[0]}"
EOF
check_py "predictions.json: 10 inputs, right top-1 label" "$O/predictions.json" "$LABELS" <<'EOF'
import json, os, sys
p = json.load(open(sys.argv[1]))
labels = open(sys.argv[2]).read().splitlines()
assert len(p) == 10, f"{len(p)} inputs"
for e in p:
    want = int(os.path.basename(e["input"]).split("_")[0])
    top = e["top"]
    assert len(top) == 3, f"{e['input']}: top has {len(top)}"
    assert top[0]["index"] == want, f"{e['input']}: top-1 {top[0]}"
    assert top[0]["label"] == labels[want], f"{e['input']}: label {top[0]['label']!r}"
    probs = [t["prob"] for t in top]
    assert probs == sorted(probs, reverse=True) and 0 < probs[0] <= 1, probs
    assert probs[0] > 0.5, f"{e['input']}: top-1 prob {probs[0]}"
EOF
for f in "$IMAGES"/*.png; do
  stem=$(basename "$f" .png)
  if [ -f "$O/$stem/output.npy" ]; then ok; else bad "no $stem/output.npy"; fi
done
check_py "output.npy holds the logits: argmax is the class" "$O" <<'EOF'
import os, sys
import numpy as np
for d in sorted(os.listdir(sys.argv[1])):
    p = os.path.join(sys.argv[1], d, "output.npy")
    if os.path.isdir(os.path.join(sys.argv[1], d)) and d != "model":
        a = np.load(p)
        assert a.shape == (10,), a.shape
        assert int(a.argmax()) == int(d.split("_")[0]), f"{d}: argmax {a.argmax()}"
EOF
check_manifest "$O"
no_tmp "$O"

# --------------------------------------------------------------- npy and taps
O="$TMP/taps"
expect_rc 0 "--npy --tap conv1 --tap pool2:activations" -- \
  "$BIN" run "$CFG" --input "$IMAGES" --out "$O" --npy --tap conv1 --tap pool2:activations
check_py "tapped activations have [C, H, W] shapes" "$O" "$IMAGES" <<'EOF'
import os, sys
import numpy as np
for n in sorted(os.listdir(sys.argv[2])):
    stem = n[:-4]
    for layer, shape in (("conv1", (32, 28, 28)), ("pool2", (64, 7, 7))):
        p = os.path.join(sys.argv[1], stem, layer, "activations.npy")
        assert os.path.isfile(p), f"missing {stem}/{layer}/activations.npy"
        a = np.load(p)
        assert a.shape == shape and a.dtype == np.float32, f"{stem}/{layer}: {a.shape} {a.dtype}"
    # pool2 follows relu4: no negative value
    assert np.load(os.path.join(sys.argv[1], stem, "pool2", "activations.npy")).min() >= 0
EOF
check_manifest "$O"
no_tmp "$O"

O="$TMP/notaps"
expect_rc 0 "--no-taps --npy" -- "$BIN" run "$CFG" --input "$IMAGES" --out "$O" --npy --no-taps
n=$(find "$O" -name 'activations*' | wc -l)
if [ "$n" -eq 0 ]; then ok; else bad "--no-taps wrote $n activation files"; fi
n=$(find "$O" -mindepth 2 -type f ! -name output.npy ! -name input.png | wc -l)
if [ "$n" -eq 0 ]; then ok; else bad "--no-taps wrote $n files besides output.npy and input.png in the input folders"; fi
check_manifest "$O"

O="$TMP/top5"
expect_rc 0 "--top 5" -- "$BIN" run "$CFG" --input "$IMAGES" --out "$O" --top 5
cp "$TMP/out" "$TMP/top5.out"
check_py "--top 5 prints 5 lines per input" "$TMP/top5.out" "$IMAGES" "$LABELS" 5 <<'EOF'
import os, re, sys
lines = open(sys.argv[1]).read().splitlines()
ranks = [l for l in lines if re.match(r"^\s*\d+\.\s+\d+\s+\S", l)]
assert len(ranks) == 50, f"{len(ranks)} rank lines for 10 inputs"
heads = [l for l in lines if l.strip().endswith(".png")]
assert len(heads) == 10, heads
for i, l in enumerate(lines):
    if l.strip().endswith(".png"):
        nums = [int(re.match(r"^\s*(\d+)\.", x).group(1)) for x in lines[i + 1:i + 6]]
        assert nums == [1, 2, 3, 4, 5], f"{l}: ranks {nums}"
EOF
check_py "--top 5 in predictions.json" "$O/predictions.json" <<'EOF'
import json, sys
assert all(len(e["top"]) == 5 for e in json.load(open(sys.argv[1])))
EOF

# ------------------------------------------------------------------------ info
expect_rc 0 "info" -- "$BIN" info "$CFG"
for l in $LAYERS; do expect_grep "$TMP/out" "^$l +[a-z_0-9]+ " "info lists layer $l"; done
n=$(grep -cE "^($(echo $LAYERS | tr ' ' '|')) " "$TMP/out")
if [ "$n" -eq 19 ]; then ok; else bad "info: $n layer rows, expected 19"; fi
expect_grep "$TMP/out" '19 layers' "info counts 19 layers"
expect_grep "$TMP/out" '^total: .*parameters' "info total line"
expect_grep "$TMP/out" '^total: 468\.[0-9]k parameters' "info total parameters"
expect_grep "$TMP/out" 'device memory' "info device memory line"
expect_grep "$TMP/out" '^pool2 .*\[64, 7, 7\]' "info shape of pool2"

# --------------------------------------------------------------- input forms
O="$TMP/a/b/c/new"
expect_rc 0 "--out into a nested new folder" -- "$BIN" run "$CFG" --input "$IMAGES/3_dress.png" --out "$O" -q
if [ -f "$O/3_dress/output.npy" ] && [ -f "$O/manifest.json" ]; then ok; else bad "nested --out: files missing"; fi
check_manifest "$O"
if [ ! -s "$TMP/out" ]; then ok; else bad "-q still prints per-input lines"; fi

mkdir -p "$TMP/few"
cp "$IMAGES/5_sandal.png" "$IMAGES/6_shirt.png" "$TMP/few/"
O="$TMP/mixed"
expect_rc 0 "a folder and a single file" -- "$BIN" run "$CFG" --input "$TMP/few" --input "$IMAGES/8_bag.png" --out "$O"
check_py "folder + file: 3 inputs in order" "$O/predictions.json" <<'EOF'
import json, os, sys
p = json.load(open(sys.argv[1]))
got = [os.path.basename(e["input"]) for e in p]
assert got == ["5_sandal.png", "6_shirt.png", "8_bag.png"], got
assert [e["top"][0]["index"] for e in p] == [5, 6, 8]
EOF
for s in 5_sandal 6_shirt 8_bag; do
  if [ -f "$O/$s/output.npy" ]; then ok; else bad "folder + file: no $s/output.npy"; fi
done
check_manifest "$O"

# @list.txt: one path a line, relative to the list's folder; blank lines and # comments
mkdir -p "$TMP/lists"
printf '# two of the samples\n%s\n\n../few/6_shirt.png\n' "$IMAGES/7_sneaker.png" > "$TMP/lists/list.txt"
O="$TMP/listed"
expect_rc 0 "@list.txt input" -- "$BIN" run "$CFG" --input "@$TMP/lists/list.txt" --out "$O"
check_py "@list.txt: both inputs, right labels" "$O/predictions.json" <<'EOF'
import json, os, sys
p = json.load(open(sys.argv[1]))
assert [os.path.basename(e["input"]) for e in p] == ["7_sneaker.png", "6_shirt.png"], p
assert [e["top"][0]["label"] for e in p] == ["Sneaker", "Shirt"]
EOF

# same file name twice: both outputs kept
O="$TMP/twice"
expect_rc 0 "same stem from two places" -- "$BIN" run "$CFG" --input "$IMAGES/6_shirt.png" --input "$TMP/few/6_shirt.png" --out "$O" -q
n=$(find "$O" -name output.npy | wc -l)
if [ "$n" -eq 2 ]; then ok; else bad "same stem twice: $n output.npy files, expected 2"; fi
check_manifest "$O"

# batches give the same logits as single images, with a partial last batch
O="$TMP/batch"
expect_rc 0 "--batch 4 on 10 images" -- "$BIN" run "$CFG" --input "$IMAGES" --out "$O" --batch 4 -q --no-taps
check_py "--batch 4 matches batch 1" "$O" "$TMP/all" <<'EOF'
import os, sys
import numpy as np
for d in sorted(os.listdir(sys.argv[2])):
    p = os.path.join(sys.argv[2], d, "output.npy")
    if os.path.isfile(p):
        a, b = np.load(p), np.load(os.path.join(sys.argv[1], d, "output.npy"))
        assert np.allclose(a, b, rtol=1e-4, atol=1e-4), f"{d}: {np.abs(a - b).max()}"
EOF

# ------------------------------------------------ one corrupt PNG among good ones
mkdir -p "$TMP/somebad"
cp "$IMAGES/0_tshirt.png" "$IMAGES/1_trouser.png" "$IMAGES/9_ankle_boot.png" "$TMP/somebad/"
head -c 120 "$IMAGES/2_pullover.png" > "$TMP/somebad/2_broken.png"
O="$TMP/somebad.out"
expect_rc 2 "a corrupt PNG among good ones: exit 2" -- "$BIN" run "$CFG" --input "$TMP/somebad" --out "$O"
expect_grep "$TMP/err" "skipped: .*2_broken\.png" "the skipped line names the bad file"
expect_grep "$TMP/err" "^cnnviz-cl: error: " "an error line at the end"
if tail -n 1 "$TMP/err" | grep -q '^cnnviz-cl: error: '; then ok; else bad "the error line is not the last line"; fi
for s in 0_tshirt 1_trouser 9_ankle_boot; do
  if [ -f "$O/$s/output.npy" ]; then ok; else bad "bad PNG among good: no $s/output.npy"; fi
  expect_grep "$TMP/out" "$s\.png" "bad PNG among good: $s printed"
done
if [ ! -e "$O/2_broken" ]; then ok; else bad "output folder written for the corrupt PNG"; fi
check_py "bad PNG among good: predictions.json holds the 3 good ones" "$O/predictions.json" <<'EOF'
import json, os, sys
p = json.load(open(sys.argv[1]))
assert [os.path.basename(e["input"]) for e in p] == ["0_tshirt.png", "1_trouser.png", "9_ankle_boot.png"], p
assert [e["top"][0]["index"] for e in p] == [0, 1, 9]
EOF
check_manifest "$O"
no_tmp "$O"

# ------------------------------------------------------ relative --weights copy
mkdir -p "$TMP/cwd/w"
cp "$WEIGHTS" "$TMP/cwd/w/copy.safetensors"
(cd "$TMP/cwd" && expect_rc 0 "relative --weights copy" -- "$BIN" run "$CFG" --weights w/copy.safetensors \
  --input "$IMAGES/4_coat.png" --out o -q; echo "$passed $failed" > "$TMP/counts")
read -r passed failed < "$TMP/counts"
check_py "relative --weights: coat is a coat" "$TMP/cwd/o/predictions.json" <<'EOF'
import json, sys
assert json.load(open(sys.argv[1]))[0]["top"][0]["label"] == "Coat"
EOF
(cd "$TMP/cwd" && expect_rc 2 "relative --weights is read from the current folder" -- "$BIN" run "$CFG" \
  --weights w/none.safetensors --input "$IMAGES/4_coat.png" --out o2 -q
 expect_grep "$TMP/err" "w/none\.safetensors" "the missing override is named"
 echo "$passed $failed" > "$TMP/counts")
read -r passed failed < "$TMP/counts"
(cd "$TMP/cwd" && expect_rc 0 "info with a relative --weights" -- "$BIN" info "$CFG" --weights w/copy.safetensors
 echo "$passed $failed" > "$TMP/counts")
read -r passed failed < "$TMP/counts"

# --repeat with --profile at batch 4: the forward's median, and per-layer
# GFLOP/s that count every image of the batch (conv2: 32 x 32 x 9 x 784
# multiply-adds an image)
expect_rc 0 "--repeat 3 --profile at batch 4" -- "$BIN" run "$CFG" --input "$IMAGES" --out "$TMP/repeat" \
  --no-taps --no-report --batch 4 --repeat 3 --profile
expect_grep "$TMP/out" '^forward: median [0-9.]+ ms over 3 runs \(batch 4,' "--repeat prints the forward's median"
check_py "per-layer GFLOP/s count the batch" "$TMP/out" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
assert "per-layer medians" in text, "no per-layer table after the forward's median"
block = text.split("per-layer medians", 1)[1]
m = re.search(r"^conv2\s+conv2d\s+(?:\w+\s+)?\[32, 28, 28\]\s+([0-9.]+)\s+([0-9.]+)", block, re.M)
assert m, "no conv2 row in the per-layer table"
ms, gf = float(m.group(1)), float(m.group(2))
want = 2 * 32 * 32 * 9 * 784 * 4 / (ms * 1e6)
assert abs(gf - want) <= 0.01 * want + 0.06, f"conv2: {gf} GFLOP/s printed, {want:.2f} for 4 images in {ms} ms"
EOF

# ------------------------------------------------ output names stay inside --out
# Every check here runs in a sandbox; all it may write is under sandbox/out.
SB="$TMP/sandbox"
mkdir -p "$SB/cfg"
touch "$TMP/stamp"
sed -e "s#\.\./samples/#$SRC/samples/#" -e 's#name: conv1, #name: ../evil, #' \
    -e 's#layer: \[conv1,#layer: [../evil,#' -e 's#layer: conv1,#layer: ../evil,#' "$CFG" > "$SB/cfg/evil.yaml"
if grep -q 'name: \.\./evil' "$SB/cfg/evil.yaml"; then ok; else bad "sed did not rename conv1"; fi
# '/' is not allowed in a layer name: rejected at the name, before anything is written
(cd "$SB" && expect_rc 2 "layer '../evil' is rejected" -- "$BIN" run cfg/evil.yaml --input "$IMAGES/4_coat.png" \
  --out out/evil --npy --tap ../evil
 expect_grep "$TMP/err" "^cnnviz-cl: error: cfg/evil\.yaml:[0-9]+:[0-9]+: .*\.\./evil" "'../evil' error names file:line:col"
 echo "$passed $failed" > "$TMP/counts")
read -r passed failed < "$TMP/counts"
# '..' and '.' only use allowed characters: they must not become path parts
for nm in .. . ...; do
  sed -e "s#\.\./samples/#$SRC/samples/#" -e "s#name: conv1, #name: '$nm', #" \
      -e "s#layer: \[conv1,#layer: ['$nm',#" -e "s#layer: conv1,#layer: '$nm',#" \
      -e "s#name: conv2,   op: conv2d,#name: conv2, in: '$nm', op: conv2d,#" "$CFG" > "$SB/cfg/dots.yaml"
  (cd "$SB" && expect_rc 0 "layer named '$nm'" -- "$BIN" run cfg/dots.yaml --input "$IMAGES/4_coat.png" \
    --out out/dots --npy --tap "$nm" --tap "$nm:filters"
   echo "$passed $failed" > "$TMP/counts")
  read -r passed failed < "$TMP/counts"
  check_py "layer '$nm': its files stay in the input's folder" "$SB/out/dots" "$nm" <<'EOF'
import json, os, sys
out = os.path.realpath(sys.argv[1])
m = json.load(open(os.path.join(out, "manifest.json")))
mine = [e for e in m["files"] if e["layer"] == sys.argv[2]]
assert mine, f"no file for layer {sys.argv[2]!r}"
for e in mine:
    # filters do not depend on the input: they live under model/
    stem = os.path.join(out, "model" if e["kind"] == "filters" else "4_coat")
    p = os.path.realpath(os.path.join(out, e["path"]))
    assert p.startswith(stem + os.sep), f"{e['path']} leaves {stem}"
    assert os.path.dirname(p) != stem, f"{e['path']} is not in a layer folder"
    assert all(part not in (".", "..") for part in e["path"].split("/")), e["path"]
EOF
  check_manifest "$SB/out/dots"
  rm -rf "$SB/out/dots"
done
# BUG: distinct layers whose names make the same safe folder name ('..', '...'
# and '_..' all become '_..') write over each other's activations.npy, and
# the manifest then lists one path three times with different shapes; each
# layer must get its own folder, as same-named images do (stem, stem_2).
sed -e "s#\.\./samples/#$SRC/samples/#" -e "s#name: conv1, #name: '..', #" -e "s#name: conv2, #name: '...', #" \
    -e "s#name: conv3, #name: '_..', #" -e 's#layer: \[conv1, conv2, pool1, conv3,#layer: [pool1,#' \
    -e "s#layer: conv1,#layer: '..',#" "$CFG" > "$SB/cfg/clash.yaml"
(cd "$SB" && expect_rc 0 "layers '..', '...', '_..'" -- "$BIN" run cfg/clash.yaml --input "$IMAGES/4_coat.png" \
  --out out/clash --npy --tap .. --tap ... --tap _..
 echo "$passed $failed" > "$TMP/counts")
read -r passed failed < "$TMP/counts"
check_manifest "$SB/out/clash"
check_py "layers with clashing safe names get one file each" "$SB/out/clash" <<'EOF'
import json, os, sys
m = json.load(open(os.path.join(sys.argv[1], "manifest.json")))
paths = {e["layer"]: e["path"] for e in m["files"] if e["layer"] in ("..", "...", "_..")}
assert len(paths) == 3 and len(set(paths.values())) == 3, f"layer -> path: {paths}"
EOF
# image names made only of dots
mkdir -p "$SB/im"
cp "$IMAGES/4_coat.png" "$SB/im/..png"
cp "$IMAGES/4_coat.png" "$SB/im/.png"
cp "$IMAGES/4_coat.png" "$SB/im/a b&c.PNG"
(cd "$SB" && expect_rc 0 "images named '..png', '.png'" -- "$BIN" run cfg/dots.yaml --input im/..png --input im/.png \
  --input "im/a b&c.PNG" --out out/dotimg --npy
 echo "$passed $failed" > "$TMP/counts")
read -r passed failed < "$TMP/counts"
n=$(find "$SB/out/dotimg" -name output.npy | wc -l)
if [ "$n" -eq 3 ]; then ok; else bad "dot-named images: $n output.npy, expected 3"; fi
check_manifest "$SB/out/dotimg"
outside=$(find "$TMP" -newer "$TMP/stamp" -type f ! -path "$SB/out/*" ! -path "$SB/cfg/*" ! -path "$SB/im/*" \
  ! -name out ! -name err ! -name counts | head -5)
if [ -z "$outside" ]; then ok; else bad "files written outside --out: $outside"; fi
no_tmp "$SB/out"
no_tmp "$TMP"

finish
