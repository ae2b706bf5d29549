#!/usr/bin/env bash
# Bad pipeline files, weights, images and options: each is refused with exit
# code 2 and one "cnnviz-cl: error: " line on stderr that says where (file
# line:column, tensor or image path) and what.  Errors in the pipeline or its
# weights are raised before anything is written.
. "$(dirname "$0")/lib.sh"
use_sample # every run writes under $OUTS; config errors must leave it empty
expect_rc 0 "the base config is good" -- "$BIN" info "$TMP/base.yaml"

# mk NAME SED-ARGS...: $TMP/NAME.yaml, a variation of the base config
mk() {
  local name=$1
  shift
  sed "$@" "$TMP/base.yaml" > "$TMP/$name.yaml"
  if cmp -s "$TMP/base.yaml" "$TMP/$name.yaml"; then bad "$name.yaml: the sed changed nothing"; fi
}
# lineof NAME ERE: the number of the first line of $TMP/NAME.yaml that matches
lineof() { grep -nE -m1 -- "$2" "$TMP/$1.yaml" | cut -d: -f1; }

# expect_error DESCRIPTION ERE -- command...: exit 2, exactly one error line, and it matches ERE
expect_error() {
  local what=$1 re=$2
  shift 2
  expect_rc 2 "$what" "$@"
  local n
  n=$(grep -c '^cnnviz-cl: error: ' "$TMP/err")
  if [ "$n" -eq 1 ]; then ok; else bad "$what: $n error lines, expected 1"; sed 's/^/  stderr: /' "$TMP/err" | head -5 >&2; fi
  if grep '^cnnviz-cl: error: ' "$TMP/err" | grep -qE -- "$re"; then ok; else
    bad "$what: /$re/ not in the error line"; grep '^cnnviz-cl: error: ' "$TMP/err" | sed 's/^/  /' >&2; fi
}

# config_error NAME DESCRIPTION ERE: run and info on $TMP/NAME.yaml both fail so; run writes nothing
config_error() {
  local name=$1 what=$2 re=$3
  expect_error "run: $what" "$re" -- "$BIN" run "$TMP/$name.yaml" --input "$IMAGES" --out "$OUTS/$name" --npy
  if [ ! -e "$OUTS/$name" ]; then ok; else bad "run: $what: the output folder was created"; fi
  expect_error "info: $what" "$re" -- "$BIN" info "$TMP/$name.yaml"
}

# ------------------------------------------------------------ YAML and schema
mk syntax -e 's/^\(  - {name: bn1, .*\)}$/\1/'
L=$(lineof syntax 'name: bn1,')
config_error syntax "YAML syntax error" "^cnnviz-cl: error: $TMP/syntax\.yaml:($L|$((L + 1))):[0-9]+: .*expected"

mk tab -e 's/^    color: gray/\tcolor: gray/'
L=$(lineof tab 'color: gray')
config_error tab "tab indentation" "^cnnviz-cl: error: $TMP/tab\.yaml:$L:[0-9]+: .*(tab|character)"

mk topkey -e 's/^version: 1$/version: 1\nbogus: 3/'
L=$(lineof topkey '^bogus:')
config_error topkey "unknown top-level key" "$TMP/topkey\.yaml:$L:1: unknown key 'bogus'"

mk dupkey -e 's/^version: 1$/version: 1\nversion: 1/'
config_error dupkey "duplicate top-level key" "$TMP/dupkey\.yaml:3:1: .*'version'.*(twice|duplicate)"

mk layerkey -e 's/name: relu1,   op: relu}/name: relu1, op: relu, frob: 1}/'
L=$(lineof layerkey 'frob: 1')
config_error layerkey "unknown layer key" "$TMP/layerkey\.yaml:$L:[0-9]+: unknown key 'frob'.*relu1"

mk unkop -e 's/name: relu1,   op: relu}/name: relu1, op: frobnicate}/'
L=$(lineof unkop 'frobnicate')
config_error unkop "unknown op" "$TMP/unkop\.yaml:$L:[0-9]+: unknown op 'frobnicate'"

mk dupname -e 's/name: relu2,/name: relu1,/'
L2=$(grep -nE 'name: relu1,' "$TMP/dupname.yaml" | sed -n 2p | cut -d: -f1)
config_error dupname "duplicate layer name" "$TMP/dupname\.yaml:$L2:[0-9]+: .*'relu1'.*(already|twice|duplicate)"

mk later -e 's/name: conv2,   op: conv2d,/name: conv2, in: relu3, op: conv2d,/'
L=$(lineof later 'in: relu3')
config_error later "in: names a later layer" "$TMP/later\.yaml:$L:[0-9]+: .*'relu3'.*(later|above)"

mk nosuchin -e 's/name: conv2,   op: conv2d,/name: conv2, in: nosuch, op: conv2d,/'
L=$(lineof nosuchin 'in: nosuch')
config_error nosuchin "in: names a missing layer" "$TMP/nosuchin\.yaml:$L:[0-9]+: .*'nosuch'.*(not defined|unknown|no layer)"

mk outtype -e 's/out: 32, kernel: 3, pad: 1, params: features.0/out: abc, kernel: 3, pad: 1, params: features.0/'
L=$(lineof outtype 'out: abc')
config_error outtype "out: is not an integer" "$TMP/outtype\.yaml:$L:[0-9]+: .*'out'.*integer"

mk version2 -e 's/^version: 1$/version: 2/'
config_error version2 "unsupported version" "$TMP/version2\.yaml:[0-9]+:[0-9]+: .*version 2"

printf -- 'version: 1\n---\nversion: 1\n' > "$TMP/twodoc.yaml"
config_error twodoc "two YAML documents" "$TMP/twodoc\.yaml:2:[0-9]+: .*document"

: > "$TMP/empty.yaml"
config_error empty "empty pipeline file" "$TMP/empty\.yaml:1:1: .*empty"

mk tapkind -e 's/show: filters}/show: frob}/'
L=$(lineof tapkind 'show: frob')
config_error tapkind "unknown tap kind in the config" "$TMP/tapkind\.yaml:$L:[0-9]+: .*'frob'"

mk taplayer -e 's/{layer: fc1, show: weights/{layer: fc9, show: weights/'
L=$(lineof taplayer 'layer: fc9')
config_error taplayer "tap on a missing layer" "$TMP/taplayer\.yaml:$L:[0-9]+: .*'fc9'"

mk std0 -e 's/std: \[0.3530\]/std: [0]/'
L=$(lineof std0 'std: \[0\]')
config_error std0 "std of zero" "$TMP/std0\.yaml:$L:[0-9]+: .*'std'"

# Alias bomb: a billion 'lol's if expanded.  Refused without expanding.
{
  echo 'version: 1'
  echo 'a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]'
  for i in 1 2 3 4 5 6 7 8; do
    p="*a$((i - 1))"
    echo "a$i: &a$i [$p, $p, $p, $p, $p, $p, $p, $p, $p, $p]"
  done
  sed '1,/^version: 1$/d' "$TMP/base.yaml"
} > "$TMP/bomb.yaml"
config_error bomb "alias bomb" "$TMP/bomb\.yaml:2:[0-9]+: .*(alias|anchor)"

# ------------------------------------------------------------- shapes and ops
mk bigkernel -e 's/name: conv1,   op: conv2d, out: 32, kernel: 3, pad: 1,/name: conv1, op: conv2d, out: 32, kernel: 31, pad: 0,/'
L=$(lineof bigkernel 'kernel: 31')
config_error bigkernel "kernel larger than the padded input" "$TMP/bigkernel\.yaml:$L:[0-9]+: .*conv1.*31.*28x28"

mk groups -e 's/out: 32, kernel: 3, pad: 1, params: features.3/out: 32, kernel: 3, pad: 1, groups: 3, params: features.3/'
L=$(lineof groups 'groups: 3')
config_error groups "groups not dividing the channels" "$TMP/groups\.yaml:$L:[0-9]+: .*groups.*3.*32"

mk linconv -e '/name: flatten,/d'
L=$(lineof linconv 'name: fc1,')
config_error linconv "linear directly after a conv block, no flatten" "$TMP/linconv\.yaml:$L:[0-9]+: .*fc1.*flatten"

mk addshape -e 's/name: relu3,   op: relu}/name: relu3, op: add, in: [bn3, relu1]}/'
L=$(lineof addshape 'op: add')
config_error addshape "add of shapes that do not broadcast" "$TMP/addshape\.yaml:$L:[0-9]+: layer 'relu3' \(add\): inputs 'bn3' \[64, 14, 14\] and 'relu1' \[32, 28, 28\] do not broadcast"

# ------------------------------------------------------------------- weights
mk wrongout -e 's/out: 32, kernel: 3, pad: 1, params: features.0/out: 16, kernel: 3, pad: 1, params: features.0/'
L=$(lineof wrongout 'out: 16')
config_error wrongout "wrong out: on a conv" \
  "$TMP/wrongout\.yaml:$L:[0-9]+: .*'features\.0\.weight'.*\[32, 1, 3, 3\].*\[16, 1, 3, 3\]"

mk notensor -e 's/params: features.0}/params: features.99}/'
L=$(lineof notensor 'features.99')
config_error notensor "missing tensor" "$TMP/notensor\.yaml:$L:[0-9]+: .*'features\.99\.weight'.*not found"

mk wmissing -e "s#^  weights: .*#  weights: $TMP/nosuch.safetensors#"
config_error wmissing "weights file missing" "$TMP/wmissing\.yaml:5:[0-9]+: .*$TMP/nosuch\.safetensors.*(No such|cannot open)"

head -c 5000 "$WEIGHTS" > "$TMP/truncated.safetensors"
mk wtrunc -e "s#^  weights: .*#  weights: $TMP/truncated.safetensors#"
config_error wtrunc "weights file truncated" "$TMP/wtrunc\.yaml:5:[0-9]+: .*truncated\.safetensors.*(past the end|truncated|short)"

head -c 4096 "$SRC/configs/fashion_mnist.yaml" > "$TMP/garbage.safetensors"
mk wgarbage -e "s#^  weights: .*#  weights: $TMP/garbage.safetensors#"
config_error wgarbage "weights file garbage" "$TMP/wgarbage\.yaml:5:[0-9]+: .*garbage\.safetensors.*header"

# a header that is not JSON, and a tensor whose shape does not fit its bytes
"$PY" - "$WEIGHTS" "$TMP" <<'EOF'
import json, struct, sys
src = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", src[:8])[0]
hdr, data = json.loads(src[8:8 + n]), src[8 + n:]
def write(name, h):
    open(f"{sys.argv[2]}/{name}.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + data)
write("badjson", json.dumps(hdr).encode()[:-5])
hdr["features.0.weight"]["shape"] = [32, 1, 3, 4]
write("badshape", json.dumps(hdr).encode())
EOF
mk wbadjson -e "s#^  weights: .*#  weights: $TMP/badjson.safetensors#"
config_error wbadjson "weights header not JSON" "$TMP/wbadjson\.yaml:5:[0-9]+: .*badjson\.safetensors.*JSON"
mk wbadshape -e "s#^  weights: .*#  weights: $TMP/badshape.safetensors#"
config_error wbadshape "weights shape does not fit its bytes" "$TMP/wbadshape\.yaml:5:[0-9]+: .*'features\.0\.weight'.*1536"

expect_error "--weights override garbage" "$TMP/garbage\.safetensors.*header" -- \
  "$BIN" run "$TMP/base.yaml" --weights "$TMP/garbage.safetensors" --input "$IMG" --out "$OUTS/wover"
if [ ! -e "$OUTS/wover" ]; then ok; else bad "--weights garbage: the output folder was created"; fi

mk nolabels -e "s#^  labels: .*#  labels: $TMP/nosuch.txt#"
config_error nolabels "labels file missing" "$TMP/nolabels\.yaml:6:[0-9]+: .*$TMP/nosuch\.txt"

# One class name per network output: a line short or a line over is an
# error naming both counts; empty lines at the end are not lines, CRLF is
# fine, an empty line in the middle is a (nameless) class.
LABELS="$SRC/samples/fashion_mnist/classes.txt"
head -n 9 "$LABELS" > "$TMP/short.txt"
{ cat "$LABELS"; echo extra; } > "$TMP/long.txt"
{ head -n 5 "$LABELS"; echo; tail -n 5 "$LABELS"; } > "$TMP/gap.txt"
{ cat "$LABELS"; printf '\n\n'; } | sed 's/$/\r/' > "$TMP/trailing.txt"
mk shortlabels -e "s#^  labels: .*#  labels: $TMP/short.txt#"
config_error shortlabels "labels file one line short" \
  "$TMP/shortlabels\.yaml:6:[0-9]+: labels: $TMP/short\.txt has 9 lines, but the network has 10 outputs \(layer 'fc2'\)"
mk longlabels -e "s#^  labels: .*#  labels: $TMP/long.txt#"
config_error longlabels "labels file one line over" "$TMP/longlabels\.yaml:6:[0-9]+: labels: $TMP/long\.txt has 11 lines"
mk gaplabels -e "s#^  labels: .*#  labels: $TMP/gap.txt#"
config_error gaplabels "labels file with an empty line inserted" "$TMP/gaplabels\.yaml:6:[0-9]+: labels: $TMP/gap\.txt has 11 lines"
mk trailinglabels -e "s#^  labels: .*#  labels: $TMP/trailing.txt#"
expect_rc 0 "labels with CRLF and empty lines at the end" -- "$BIN" info "$TMP/trailinglabels.yaml"

# -------------------------------------------------------------------- images
expect_error "image missing" "$TMP/nosuch\.png" -- "$BIN" run "$TMP/base.yaml" --input "$TMP/nosuch.png" --out "$OUTS/imgmissing"
if [ ! -e "$OUTS/imgmissing" ]; then ok; else bad "image missing: the output folder was created"; fi

expect_error "missing @list" "$TMP/nosuch\.txt" -- "$BIN" run "$TMP/base.yaml" --input "@$TMP/nosuch.txt" --out "$OUTS/nolist"

echo 'not an image' > "$TMP/notimage.png"
expect_error "image not an image (the only input)" "$TMP/notimage\.png: .*(not a PNG|image)" -- \
  "$BIN" run "$TMP/base.yaml" --input "$TMP/notimage.png" --out "$OUTS/notimage"

"$PY" - "$TMP/big30.png" <<'EOF'
import struct, sys, zlib
w = h = 30
raw = b"".join(b"\x00" + bytes([128] * w) for _ in range(h))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
EOF
expect_error "30x30 image for resize: none" "$TMP/big30\.png: .*30x30.*28x28" -- \
  "$BIN" run "$TMP/base.yaml" --input "$TMP/big30.png" --out "$OUTS/big30"

# ------------------------------------------------------------------- options
expect_error "unknown CLI flag" "unknown option '--frobnicate'" -- \
  "$BIN" run "$TMP/base.yaml" --input "$IMG" --out "$OUTS/flag" --frobnicate
expect_error "--batch 0" "--batch '0'" -- "$BIN" run "$TMP/base.yaml" --input "$IMG" --out "$OUTS/batch0" --batch 0
expect_error "--batch abc" "--batch 'abc'" -- "$BIN" run "$TMP/base.yaml" --input "$IMG" --out "$OUTS/batchabc" --batch abc
expect_error "--top 0" "--top '0'" -- "$BIN" run "$TMP/base.yaml" --input "$IMG" --out "$OUTS/top0" --top 0
expect_error "--input without a value" "--input" -- "$BIN" run "$TMP/base.yaml" --input
expect_error "no --input" "input" -- "$BIN" run "$TMP/base.yaml" --out "$OUTS/noinput"
expect_error "--tap nosuchlayer" "--tap nosuchlayer: .*'nosuchlayer'" -- \
  "$BIN" run "$TMP/base.yaml" --input "$IMG" --out "$OUTS/tap1" --tap nosuchlayer
expect_error "--tap conv1:nosuchkind" "--tap conv1:nosuchkind: .*kind 'nosuchkind'" -- \
  "$BIN" run "$TMP/base.yaml" --input "$IMG" --out "$OUTS/tap2" --tap conv1:nosuchkind
expect_error "--device 97" "--device '97'" -- "$BIN" run "$TMP/base.yaml" --input "$IMG" --out "$OUTS/dev97" --device 97
expect_grep "$TMP/err" 'device 0: ' "--device 97 prints the device list on stderr"
expect_grep "$TMP/err" '^platform 0: ' "--device 97 prints the platforms on stderr"
expect_error "--platform 97" "--platform '97'" -- "$BIN" run "$TMP/base.yaml" --input "$IMG" --out "$OUTS/plat97" --platform 97
expect_error "missing config file" "$TMP/nosuch\.yaml.*(No such|cannot open)" -- \
  "$BIN" run "$TMP/nosuch.yaml" --input "$IMG" --out "$OUTS/nocfg"
expect_error "info: missing config file" "$TMP/nosuch\.yaml.*(No such|cannot open)" -- "$BIN" info "$TMP/nosuch.yaml"
expect_error "info: unexpected argument" "'extra'" -- "$BIN" info "$TMP/base.yaml" extra
expect_error "info: --batch 0" "--batch '0'" -- "$BIN" info "$TMP/base.yaml" --batch 0

# ----------------------------------------------------------------- resources
# A 4096 x 4096 input: one conv output is 4 GiB per image, so batch 64 fits
# no device; refused before any allocation, with the size and a hint.
cat > "$TMP/bigmem.yaml" <<YAML
version: 1
model:
  name: bigmem
  input: {shape: [1, 4096, 4096], color: gray, resize: none}
layers:
  - {name: conv,  op: conv2d, out: 64, kernel: 3, pad: 1, params: c}
  - {name: relu,  op: relu}
  - {name: gap,   op: global_avgpool}
  - {name: flat,  op: flatten}
  - {name: fc,    op: linear, out: 2, params: f}
YAML
"$PY" - "$TMP/bigmem.safetensors" <<'PYEOF'
import json, struct, sys
import numpy as np
rng = np.random.default_rng(1)
t = {"c.weight": rng.normal(size=(64, 1, 3, 3)), "c.bias": rng.normal(size=64),
     "f.weight": rng.normal(size=(2, 64)), "f.bias": rng.normal(size=2)}
head, off, blobs = {}, 0, []
for k, v in t.items():
    b = v.astype("<f4").tobytes()
    head[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
    off += len(b)
    blobs.append(b)
h = json.dumps(head).encode()
h += b" " * (-len(h) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PYEOF
expect_rc 1 "batch 64 of 4096x4096 images does not fit" -- \
  "$BIN" run "$TMP/bigmem.yaml" --weights "$TMP/bigmem.safetensors" --repeat 1 --batch 64 --out "$OUTS/bigmem"
expect_grep "$TMP/err" "needs [0-9]+ MiB.*(has|at most) [0-9]+ MiB.*use a smaller --batch" \
  "the memory error says how much is needed and suggests --batch"
n=$(grep -c '^cnnviz-cl: error: ' "$TMP/err")
if [ "$n" -eq 1 ]; then ok; else bad "memory error: $n error lines"; fi

# Nothing was written for any error above (the image runs remove what they
# wrote before the input turned out unreadable, the folder too).
left=$(find "$OUTS" -mindepth 1 -maxdepth 1 2>/dev/null | head -5)
if [ -z "$left" ]; then ok; else bad "output written for errors: $left"; fi

finish
