#!/usr/bin/env bash
# run --shard I/N: 200 Fashion-MNIST test images (from Debian's
# dataset-fashion-mnist) in two folders whose file names repeat, so that
# output folder names ("0007", "0007_2") are decided over the whole list.
# Each of 4 parts writes only its inputs, whole batches of --batch, in
# order; its manifest records the part, the list's length and hash, and
# the pipeline + weights hash; its files are byte for byte the single
# run's for the same inputs.  A part with no inputs still publishes.
# Usage errors exit 2 with one line.
. "$(dirname "$0")/lib.sh"
use_sample
DATA=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
if [ ! -f "$DATA" ]; then
  echo "SKIP: $DATA missing (Debian package dataset-fashion-mnist; cmake/install-deps.sh installs it)"
  finish
  exit $?
fi

# make_images DIR N: N test images as DIR/a/NNNN.png and DIR/b/NNNN.png (N/2 each)
make_images() {
  "$PY" - "$1" "$2" "$DATA" <<'EOF'
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
EOF
}
make_images "$TMP/imgs" 200
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

finish
