#!/usr/bin/env bash
# Hostile inputs: malformed weights files, pipeline files and images, each
# run through the real binary.  Every one must end with exit code 2 and
# exactly one "cnnviz-cl: error: " line that says what is wrong and where
# (file:line:col for YAML, the tensor for weights, the path for images);
# never a signal, never a sanitizer report, and errors in the pipeline or its
# weights must come before anything is written to the --out folder.
# test_errors.sh covers the everyday mistakes; this file covers what a fuzzer
# or an attacker would try.  Generated files live under $TMP.
. "$(dirname "$0")/lib.sh"
use_sample
expect_rc 0 "the base config is good" -- "$BIN" info "$TMP/base.yaml"
WLINE=$(grep -n '^  weights:' "$TMP/base.yaml" | cut -d: -f1)

# bad_config FILE DESCRIPTION ERE: `run` and `info` on FILE both fail so; `run` writes nothing
bad_config() {
  local file=$1 what=$2 re=$3 name
  name=$(basename "$file" .yaml)
  fresh_out "$name"
  runcmd "$BIN" run "$file" --input "$IMG" --out "$OUTS/$name" --npy
  check_error "run: $what" "$re"
  untouched "$name" "run: $what"
  runcmd "$BIN" info "$file"
  check_error "info: $what" "$re"
}

# bad_weights FILE DESCRIPTION ERE: the base pipeline with model.weights: FILE
# (the error line must carry the config's line:column) and --weights FILE.
bad_weights() {
  local file=$1 what=$2 re=$3 name
  name=$(basename "$file" .safetensors)
  sed -e "s#^  weights: .*#  weights: $file#" "$TMP/base.yaml" > "$TMP/w_$name.yaml"
  bad_config "$TMP/w_$name.yaml" "weights: $what" "$TMP/w_$name\.yaml:$WLINE:[0-9]+: model\.weights: $TMP/$re"
  fresh_out "wo_$name"
  runcmd "$BIN" run "$TMP/base.yaml" --weights "$file" --input "$IMG" --out "$OUTS/wo_$name"
  check_error "--weights: $what" "$re"
  untouched "wo_$name" "--weights: $what"
}

# bad_image FILE DESCRIPTION ERE: `run` on the image (the only input) fails
# with exit 2 and one error line that names the image and matches ERE;
# nothing is written at all (taps on: the model's filter images, written
# before the input is tried, are removed again).
bad_image() {
  local file=$1 what=$2 re=$3 name
  name=img_$(basename "$file" | tr '.' '_')
  fresh_out "$name"
  runcmd "$BIN" run "$TMP/base.yaml" --input "$file" --out "$OUTS/$name"
  check_error "image: $what" "$file: $re"
  local left
  left=$(cd "$OUTS/$name" && find . -mindepth 1 ! -path ./existing.txt | head -5)
  if [ -z "$left" ]; then ok; else bad "image: $what: output written for the image: $(echo $left)"; fi
}

# =================================================================== weights
"$PY" - "$WEIGHTS" "$TMP" <<'EOF'
import json, struct, sys
src, tmp = open(sys.argv[1], "rb").read(), sys.argv[2]
n = struct.unpack("<Q", src[:8])[0]
hdr, data = json.loads(src[8:8 + n]), src[8 + n:]
meta = hdr.pop("__metadata__", None)
tensors = {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in hdr.items()}

def raw(name, blob):
    open(f"{tmp}/{name}.safetensors", "wb").write(blob)

def with_header(name, h, body=data):
    h = h if isinstance(h, bytes) else json.dumps(h).encode()
    raw(name, struct.pack("<Q", len(h)) + h + body)

def build(name, ts, patch=None):
    """ts: name -> (dtype, shape, bytes); patch(header dict) edits the header."""
    h, blobs, off = {}, [], 0
    for k, (dt, shape, b) in ts.items():
        h[k] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if patch: patch(h)
    with_header(name, h, b"".join(blobs))

raw("tiny", src[:5])                                              # shorter than the length field
raw("cut_header", src[:8 + n // 2])                               # cut inside the JSON
raw("hugelen", struct.pack("<Q", 1 << 60) + src[8:])              # header length 2^60
raw("zerolen", struct.pack("<Q", 0) + src[8:])
with_header("jsonarray", b"[1, 2, 3]")                            # JSON, but not an object
with_header("yamlish", b"{features.0.weight: {dtype: F32}}")       # YAML flow, not JSON
with_header("trailing", json.dumps(hdr).encode()[:-1] + b",}")
with_header("notutf8", b'{"\xff\xfe": 1}')
with_header("deep", b'{"a": {"b": [[[[[[1]]]]]]}}')
def past(h): h["classifier.4.bias"]["data_offsets"][1] += 1 << 30; h["classifier.4.bias"]["shape"] = [(1 << 28) + 10]
build("pastend", tensors, past)
def overlap(h):
    h["features.1.bias"]["data_offsets"] = list(h["features.1.weight"]["data_offsets"])
build("overlap", tensors, overlap)
def reverse(h): o = h["features.0.bias"]["data_offsets"]; o.reverse()
build("reversed", tensors, reverse)
def f128(h): h["features.0.weight"]["dtype"] = "F128"
build("baddtype", tensors, f128)
def overflow(h): h["features.3.weight"]["shape"] = [1 << 32, 1 << 32, 16]
build("overflow", tensors, overflow)
def negative(h): h["features.3.bias"]["shape"] = [-32]
build("negshape", tensors, negative)
def dup(h): pass
hb = json.dumps({k: v for k, v in list(json.loads(src[8:8 + n]).items())}).encode()
first = b'"features.0.bias": ' + json.dumps(hdr["features.0.bias"]).encode()
with_header("dupname", hb[:-1] + b", " + first + b"}")           # same key twice in the JSON
full = open(sys.argv[1], "rb").read()
raw("shortdata", full[:-100])                                     # the last tensor's bytes cut
ts = dict(tensors); del ts["features.4.running_mean"]
build("missing", ts)
ts = dict(tensors); ts["features.1.running_var"] = ("F32", [16], tensors["features.1.running_var"][2][:64])
build("wrongshape", ts)
ts = dict(tensors); ts["classifier.1.weight"] = ("I64", [128, 3136], bytes(128 * 3136 * 8))
build("intdtype", ts)
ts = dict(tensors); ts["features.8.running_var"] = ("F32", [64], struct.pack("<f", float("nan")) * 64)
build("nanvar", ts)
ts = dict(tensors); ts["features.0.weight"] = ("F32", [32, 1, 3, 3, 1, 1, 1, 1, 1], tensors["features.0.weight"][2])
build("ninedims", ts)
EOF

bad_weights "$TMP/tiny.safetensors" "5-byte file" "tiny\.safetensors: file is 5 bytes, too short"
bad_weights "$TMP/cut_header.safetensors" "cut inside the header" "cut_header\.safetensors: header length [0-9]+ runs past the end of the [0-9]+-byte file"
bad_weights "$TMP/hugelen.safetensors" "header length 2^60" "hugelen\.safetensors: header length 1152921504606846976 is more than"
bad_weights "$TMP/zerolen.safetensors" "header length 0" "zerolen\.safetensors: header length is 0"
bad_weights "$TMP/jsonarray.safetensors" "header is a JSON array" "jsonarray\.safetensors: header is not a JSON object"
bad_weights "$TMP/yamlish.safetensors" "header is YAML, not JSON" "yamlish\.safetensors: .*(not JSON|must be strings|bare value)"
bad_weights "$TMP/trailing.safetensors" "trailing comma in the header" "trailing\.safetensors: header has a trailing comma"
bad_weights "$TMP/notutf8.safetensors" "header not UTF-8" "notutf8\.safetensors: header is not valid UTF-8"
bad_weights "$TMP/deep.safetensors" "header nested too deep" "deep\.safetensors: header nests deeper"
bad_weights "$TMP/pastend.safetensors" "data_offsets past the end" "pastend\.safetensors: tensor 'classifier\.4\.bias': data_offsets .* past the end"
bad_weights "$TMP/overlap.safetensors" "overlapping tensors" "overlap\.safetensors: tensors 'features\.1\.weight' .* and 'features\.1\.bias' .* overlap"
bad_weights "$TMP/reversed.safetensors" "reversed data_offsets" "reversed\.safetensors: tensor 'features\.0\.bias': data_offsets .* reversed"
bad_weights "$TMP/baddtype.safetensors" "unknown dtype" "baddtype\.safetensors: tensor 'features\.0\.weight': unknown dtype 'F128'"
bad_weights "$TMP/overflow.safetensors" "shape product overflows 64 bits" "overflow\.safetensors: tensor 'features\.3\.weight': .*overflows"
bad_weights "$TMP/negshape.safetensors" "negative dimension" "negshape\.safetensors: tensor 'features\.3\.bias': shape\[0\]"
bad_weights "$TMP/dupname.safetensors" "tensor named twice" "dupname\.safetensors: tensor 'features\.0\.bias': appears more than once"
bad_weights "$TMP/shortdata.safetensors" "data section shorter than declared" "shortdata\.safetensors: tensor '[^']+': data_offsets .* past the end"
bad_weights "$TMP/ninedims.safetensors" "more than 8 dimensions" "ninedims\.safetensors: tensor 'features\.0\.weight': shape has more than 8"
# Files that are well-formed but do not fit the pipeline: the error names the
# layer's params: line and the tensor.
L=$(grep -n 'params: features.4}' "$TMP/base.yaml" | cut -d: -f1)
bad_config_w() { # FILE DESCRIPTION ERE
  sed -e "s#^  weights: .*#  weights: $1#" "$TMP/base.yaml" > "$TMP/w_$(basename "$1" .safetensors).yaml"
  bad_config "$TMP/w_$(basename "$1" .safetensors).yaml" "$2" "$TMP/$3"
}
bad_config_w "$TMP/missing.safetensors" "a tensor the config needs is missing" \
  "w_missing\.yaml:$L:[0-9]+: layer 'bn2': tensor 'features\.4\.running_mean' not found"
L=$(grep -n 'params: features.1}' "$TMP/base.yaml" | cut -d: -f1)
bad_config_w "$TMP/wrongshape.safetensors" "a tensor of the wrong shape" \
  "w_wrongshape\.yaml:$L:[0-9]+: layer 'bn1': tensor 'features\.1\.running_var' has shape \[16\], expected \[32\]"
L=$(grep -n 'params: classifier.1}' "$TMP/base.yaml" | cut -d: -f1)
bad_config_w "$TMP/intdtype.safetensors" "an integer tensor for a weight" \
  "w_intdtype\.yaml:$L:[0-9]+: layer 'fc1': tensor 'classifier\.1\.weight' has dtype I64"
L=$(grep -n 'params: features.8}' "$TMP/base.yaml" | cut -d: -f1)
bad_config_w "$TMP/nanvar.safetensors" "NaN running variance" \
  "w_nanvar\.yaml:$L:[0-9]+: layer 'bn3': tensor 'features\.8\.running_var' has a negative or NaN value"

mkdir -p "$TMP/dir.safetensors"
bad_weights "$TMP/dir.safetensors" "weights path is a folder" "dir\.safetensors: is a folder, not a regular file"

# ==================================================================== YAML
# mk NAME SED-ARGS...: $TMP/NAME.yaml, a variation of the base config
mk() {
  local name=$1
  shift
  sed "$@" "$TMP/base.yaml" > "$TMP/$name.yaml"
  if cmp -s "$TMP/base.yaml" "$TMP/$name.yaml"; then bad "$name.yaml: the sed changed nothing"; fi
}
lineof() { grep -nE -m1 -- "$2" "$TMP/$1.yaml" | cut -d: -f1; }

mk quote -e 's/^  name: fashion_mnist$/  name: "fashion_mnist/'
L=$(lineof quote 'name: "fashion')
bad_config "$TMP/quote.yaml" "unclosed quoted string" "quote\.yaml:[0-9]+:[0-9]+: .*(quoted scalar|end of stream).*(started at line $L)?"

mk colon -e 's/^  name: fashion_mnist$/  name: fashion: mnist/'
L=$(lineof colon 'name: fashion: mnist')
bad_config "$TMP/colon.yaml" "mapping value where none is allowed" "colon\.yaml:$L:[0-9]+: mapping values are not allowed"

mk tabitem -e 's/^  - {name: relu2, /\t- {name: relu2, /'
L=$(lineof tabitem 'name: relu2')
bad_config "$TMP/tabitem.yaml" "tab before a list item" "tabitem\.yaml:$L:[0-9]+: .*(tab|character)"

# Billion laughs inside the layers list: anchors are refused where they appear.
{
  sed '/^taps:/,$d' "$TMP/base.yaml"
  echo '  - &l0 {name: lol0, op: relu}'
  for i in 1 2 3 4 5 6 7 8 9; do
    p="*l$((i - 1))"
    echo "  - &l$i [$p, $p, $p, $p, $p, $p, $p, $p, $p, $p]"
  done
} > "$TMP/laughs.yaml"
L=$(lineof laughs '&l0')
bad_config "$TMP/laughs.yaml" "billion laughs in layers" "laughs\.yaml:$L:[0-9]+: anchor '&l0'"

"$PY" - "$TMP" <<'EOF'
import sys
tmp = sys.argv[1]
open(f"{tmp}/deeplist.yaml", "w").write("version: 1\nlayers: " + "[" * 10000 + "]" * 10000 + "\n")
open(f"{tmp}/deepmap.yaml", "w").write("version: 1\nmodel: " + "{a: " * 10000 + "1" + "}" * 10000 + "\n")
block = "version: 1\nmodel:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(200)) + "  " * 201 + "x\n"
open(f"{tmp}/deepblock.yaml", "w").write(block)
import random
random.seed(7)
open(f"{tmp}/binary.yaml", "wb").write(bytes(random.randrange(256) for _ in range(4096)))
open(f"{tmp}/elf.yaml", "wb").write(open("/bin/true", "rb").read()[:4096])
open(f"{tmp}/big.yaml", "w").write("version: 1\n" + "#" * 100 + "\n" + ("# " + "x" * 1000 + "\n") * 4200)
open(f"{tmp}/manylayers.yaml", "w").write(
    "version: 1\nmodel: {name: m, input: {shape: [1, 4, 4]}}\nlayers:\n" +
    "".join(f"  - {{name: r{i}, op: relu}}\n" for i in range(10001)))
EOF
bad_config "$TMP/deeplist.yaml" "flow lists nested 10000 deep" "deeplist\.yaml:2:[0-9]+: nesting deeper than 32"
bad_config "$TMP/deepmap.yaml" "flow mappings nested 10000 deep" "deepmap\.yaml:2:[0-9]+: nesting deeper than 32"
bad_config "$TMP/deepblock.yaml" "block mappings nested 200 deep" "deepblock\.yaml:[0-9]+:[0-9]+: nesting deeper than 32"
bad_config "$TMP/binary.yaml" "random bytes" "binary\.yaml:[0-9]+:[0-9]+: "
bad_config "$TMP/elf.yaml" "an executable" "elf\.yaml:1:[0-9]+: .*(control|character|invalid)"
bad_config "$TMP/big.yaml" "a 4 MiB pipeline file" "big\.yaml: file is [0-9]+ bytes, more than the 4194304 allowed"
L=$(grep -n 'name: r10000,' "$TMP/manylayers.yaml" | cut -d: -f1)
bad_config "$TMP/manylayers.yaml" "10001 layers" "manylayers\.yaml:$L:[0-9]+: more than 10000 layers"

mk bigfloat -e 's/^    scale: .*/    scale: 1e400/'
L=$(lineof bigfloat 'scale: 1e400')
bad_config "$TMP/bigfloat.yaml" "1e400 for a float" "bigfloat\.yaml:$L:[0-9]+: 'scale' must be a finite number \(got 1e400\)"

mk bigint -e 's/out: 32, kernel: 3, pad: 1, params: features.0/out: 99999999999999999999, kernel: 3, pad: 1, params: features.0/'
L=$(lineof bigint '99999999999999999999')
bad_config "$TMP/bigint.yaml" "20-digit integer" "bigint\.yaml:$L:[0-9]+: 'out' is too large"

mk nan -e 's/^    mean: .*/    mean: [.nan]/'
L=$(lineof nan 'mean: \[.nan\]')
bad_config "$TMP/nan.yaml" ".nan for a float" "nan\.yaml:$L:[0-9]+: 'mean' must be a number"

mk negkernel -e 's/out: 32, kernel: 3, pad: 1, params: features.0/out: 32, kernel: -3, pad: 1, params: features.0/'
L=$(lineof negkernel 'kernel: -3')
bad_config "$TMP/negkernel.yaml" "negative kernel size" "negkernel\.yaml:$L:[0-9]+: 'kernel' must be >= 1 \(got -3\)"

mk negpad -e 's/out: 64, kernel: 3, pad: 1, params: features.7/out: 64, kernel: 3, pad: [1, -1], params: features.7/'
L=$(lineof negpad 'pad: \[1, -1\]')
bad_config "$TMP/negpad.yaml" "negative padding" "negpad\.yaml:$L:[0-9]+: 'pad' must be >= 0"

mk stride0 -e 's/name: pool1,   op: maxpool, kernel: 2, stride: 2/name: pool1, op: maxpool, kernel: 2, stride: 0/'
L=$(lineof stride0 'stride: 0')
bad_config "$TMP/stride0.yaml" "stride 0" "stride0\.yaml:$L:[0-9]+: 'stride' must be >= 1"

mk zeroout -e 's/out: 32, kernel: 3, pad: 1, params: features.0/out: 0, kernel: 3, pad: 1, params: features.0/'
L=$(lineof zeroout 'out: 0,')
bad_config "$TMP/zeroout.yaml" "zero output channels" "zeroout\.yaml:$L:[0-9]+: 'out' must be >= 1"

mk zeroin -e 's/^    shape: \[1, 28, 28\]/    shape: [0, 28, 28]/'
L=$(lineof zeroin 'shape: \[0, 28')
bad_config "$TMP/zeroin.yaml" "zero input channels" "zeroin\.yaml:$L:[0-9]+: 'shape' must be >= 1"

mk groups0 -e 's/out: 32, kernel: 3, pad: 1, params: features.3/out: 32, kernel: 3, pad: 1, groups: 0, params: features.3/'
L=$(lineof groups0 'groups: 0')
bad_config "$TMP/groups0.yaml" "groups 0" "groups0\.yaml:$L:[0-9]+: 'groups' must be >= 1"

mk modelkey -e 's/^  name: fashion_mnist$/  name: fashion_mnist\n  weightz: x.safetensors/'
L=$(lineof modelkey 'weightz')
bad_config "$TMP/modelkey.yaml" "unknown key in model" "modelkey\.yaml:$L:3: unknown key 'weightz' in 'model'"

mk outkey -e 's/^  top: 3$/  top: 3\n  colour: true/'
L=$(lineof outkey 'colour: true')
bad_config "$TMP/outkey.yaml" "unknown key in output" "outkey\.yaml:$L:3: unknown key 'colour' in 'output'"

mk dupkeylayer -e 's/name: relu1,   op: relu}/name: relu1, op: relu, op: sigmoid}/'
L=$(lineof dupkeylayer 'op: sigmoid')
bad_config "$TMP/dupkeylayer.yaml" "duplicate key in a layer" "dupkeylayer\.yaml:$L:[0-9]+: key 'op' appears twice"

mk cycle -e 's/name: conv2,   op: conv2d,/name: conv2, in: relu2, op: conv2d,/'
L=$(lineof cycle 'in: relu2')
bad_config "$TMP/cycle.yaml" "cycle through layer inputs" "cycle\.yaml:$L:[0-9]+: input 'relu2' of layer 'conv2' is not defined above"

mk selfin -e 's/name: relu1,   op: relu}/name: relu1, op: relu, in: relu1}/'
L=$(lineof selfin 'in: relu1')
bad_config "$TMP/selfin.yaml" "a layer that is its own input" "selfin\.yaml:$L:[0-9]+: input 'relu1' of layer 'relu1' is not defined above: a layer cannot take its own output"

mk fwdlist -e 's/name: relu3,   op: relu}/name: relu3, op: add, in: [bn3, relu4]}/'
L=$(lineof fwdlist 'in: \[bn3, relu4\]')
bad_config "$TMP/fwdlist.yaml" "forward reference in an add" "fwdlist\.yaml:$L:[0-9]+: input 'relu4' of layer 'relu3' is not defined above \(it is defined later"

mk linin -e 's/name: pool2,   op: maxpool, kernel: 2, stride: 2/name: pool2, op: maxpool, kernel: 1, stride: 1/'
L=$(lineof linin 'params: classifier.1')
bad_config "$TMP/linin.yaml" "linear in-features do not match" \
  "linin\.yaml:$L:[0-9]+: layer 'fc1': tensor 'classifier\.1\.weight' has shape \[128, 3136\], expected \[128, 12544\]"

mk catshape -e 's/name: relu3,   op: relu}/name: relu3, op: concat, in: [bn3, pool1, relu1]}/'
L=$(lineof catshape 'op: concat')
bad_config "$TMP/catshape.yaml" "concat of mismatched sizes" "catshape\.yaml:$L:[0-9]+: layer 'relu3' \(concat\): input 'relu1' has shape \[32, 28, 28\]"

# Sizes that overflow: checked before anything is allocated for them.
gen() { # NAME INPUT-SHAPE LAYERS...: a pipeline with the sample weights
  local name=$1 shape=$2
  shift 2
  {
    echo "version: 1"
    echo "model: {name: m, weights: $WEIGHTS, input: {shape: $shape}}"
    echo "layers:"
    for l in "$@"; do echo "  - $l"; done
  } > "$TMP/$name.yaml"
}
gen hugein '[3, 1048576, 1048576]' '{name: p, op: maxpool, kernel: 1048576}'
bad_config "$TMP/hugein.yaml" "input of 3x2^40 values" "hugein\.yaml:2:[0-9]+: input shape \[3, 1048576, 1048576\] is too large"
gen catbig '[3, 1048576, 341]' '{name: fl, op: flatten}' '{name: cat, op: concat, in: [fl, fl, fl]}'
bad_config "$TMP/catbig.yaml" "concat whose channel count overflows int" "catbig\.yaml:5:[0-9]+: layer 'cat' \(concat\): output \[[0-9]+, 1, 1\] is too large"
gen convbig '[1, 1024, 1024]' '{name: c, op: conv2d, out: 1048576, kernel: 1024, params: features.0}'
bad_config "$TMP/convbig.yaml" "conv weight of 2^40 values" "convbig\.yaml:4:[0-9]+: layer 'c': weight \[1048576, 1, 1024, 1024\] has more than"
gen linbig '[1, 1024, 1024]' '{name: fl, op: flatten}' '{name: fc, op: linear, out: 1048576, params: classifier.1}'
bad_config "$TMP/linbig.yaml" "linear weight of 2^40 values" "linbig\.yaml:5:[0-9]+: layer 'fc': weight \[1048576, 1048576\] has more than"
"$PY" - "$TMP/wide.safetensors" <<'EOF'
import json, struct, sys
h = json.dumps({"w.weight": {"dtype": "F32", "shape": [1048576, 1, 1, 1], "data_offsets": [0, 4 << 20]}}).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + bytes(4 << 20))
EOF
gen widepool '[1, 1, 1]' '{name: c, op: conv2d, out: 1048576, kernel: 1, bias: false, params: w}' \
  "{name: cat, op: concat, in: [$(printf 'c, %.0s' $(seq 2031))c]}" '{name: p, op: adaptive_avgpool, out: [1048576, 1048576]}'
sed -i "s#weights: $WEIGHTS#weights: $TMP/wide.safetensors#" "$TMP/widepool.yaml"
bad_config "$TMP/widepool.yaml" "output of 127x2^64 values (wraps to 0 in 64 bits)" "widepool\.yaml:6:[0-9]+: layer 'p': output \[2130706432, 1048576, 1048576\] is too large"

# The ops of modern CNNs: operands, constants and geometry that do not fit.
gen constshape '[1, 28, 28]' '{name: c, op: conv2d, out: 32, kernel: 3, params: features.0}' \
  '{name: m, op: mul, const: features.0.weight}'
bad_config "$TMP/constshape.yaml" "a mul constant of another shape" \
  "constshape\.yaml:5:[0-9]+: layer 'm' \(mul\): tensor 'features\.0\.weight' has shape \[32, 1, 3, 3\], which does not broadcast with its input \[32, 26, 26\]: a constant must be \[C\], \[C, 1, 1\], \[1, C, 1, 1\], a scalar"
gen constwrongc '[1, 28, 28]' '{name: c, op: conv2d, out: 32, kernel: 3, params: features.0}' \
  '{name: m, op: add, const: features.7.bias}'
bad_config "$TMP/constwrongc.yaml" "a per-channel constant of 64 for 32 channels" \
  "constwrongc\.yaml:5:[0-9]+: layer 'm' \(add\): tensor 'features\.7\.bias' has shape \[64\], which does not broadcast with its input \[32, 26, 26\]"
gen constnone '[1, 28, 28]' '{name: m, op: mul, const: features.99.scale}'
bad_config "$TMP/constnone.yaml" "a mul constant missing from the weights" \
  "constnone\.yaml:4:[0-9]+: layer 'm': tensor 'features\.99\.scale' not found"
gen bcast '[1, 28, 28]' '{name: a, op: maxpool, kernel: 2}' '{name: b, op: mul, in: [a, input]}'
bad_config "$TMP/bcast.yaml" "two layers that do not broadcast" \
  "bcast\.yaml:5:[0-9]+: layer 'b' \(mul\): inputs 'a' \[1, 14, 14\] and 'input' \[1, 28, 28\] do not broadcast"
gen slicenone '[1, 28, 28]' '{name: s, op: slice, start: 3}'
bad_config "$TMP/slicenone.yaml" "a slice that selects no channel" "slicenone\.yaml:4:[0-9]+: layer 's' \(slice\): \[3:1:1\] of 1 channels selects none"
gen shuffle '[3, 28, 28]' '{name: s, op: channel_shuffle, groups: 2}'
bad_config "$TMP/shuffle.yaml" "shuffle groups that do not divide the channels" "shuffle\.yaml:4:[0-9]+: layer 's' \(channel_shuffle\): groups 2 must divide the 3 channels"
gen reflect '[1, 28, 28]' '{name: p, op: pad, pad: [0, 28, 0, 0], mode: reflect}'
bad_config "$TMP/reflect.yaml" "reflect padding as large as the input" "reflect\.yaml:4:[0-9]+: layer 'p' \(pad\): reflect padding \[0, 28, 0, 0\] must be smaller than the input \[28, 28\]"
gen rsempty '[1, 28, 28]' '{name: r, op: resize, scale: 0.01}'
bad_config "$TMP/rsempty.yaml" "a resize to nothing" "rsempty\.yaml:4:[0-9]+: layer 'r' \(resize\): output height 0 from input 28 is empty"
gen rsboth '[1, 28, 28]' '{name: r, op: resize, scale: 2, size: [3, 3]}'
bad_config "$TMP/rsboth.yaml" "a resize with size and scale" "rsboth\.yaml:4:[0-9]+: layer 'r' \(resize\) needs 'size: \[h, w\]' or 'scale: \[sh, sw\]' \(one of them\)"
gen constval '[1, 28, 28]' '{name: m, op: mul, const: features.0.bias, value: 2}'
bad_config "$TMP/constval.yaml" "const and value together" "constval\.yaml:4:[0-9]+: layer 'm' \(mul\) takes 'const' or 'value' as its second operand, not both"
gen gmpflat '[1, 28, 28]' '{name: f, op: flatten}' '{name: g, op: global_maxpool}'
bad_config "$TMP/gmpflat.yaml" "global max pool of a flat vector" "gmpflat\.yaml:5:[0-9]+: layer 'g' \(global_maxpool\) needs a \[C, H, W\] input"

mk tag -e 's/^version: 1$/version: !!int 1/'
bad_config "$TMP/tag.yaml" "a YAML tag" "tag\.yaml:2:[0-9]+: tags are not allowed"

mk nul -e 's/^  name: fashion_mnist$/  name: "fashion\\0mnist"/'
L=$(lineof nul 'fashion.0mnist')
bad_config "$TMP/nul.yaml" "NUL inside a string" "nul\.yaml:$L:[0-9]+: 'name' must not contain NUL"

mk longname -e "s/name: relu1,   op: relu}/name: r$(printf 'x%.0s' $(seq 200)), op: relu}/"
L=$(lineof longname 'name: rxxxx')
bad_config "$TMP/longname.yaml" "a 201-byte layer name" "longname\.yaml:$L:[0-9]+: 'name' is 201 bytes long"

printf '# only a comment\n\n   \n# and another\n' > "$TMP/comments.yaml"
bad_config "$TMP/comments.yaml" "comments only" "comments\.yaml:1:1: .*empty"

printf -- '- version: 1\n- model: x\n' > "$TMP/rootlist.yaml"
bad_config "$TMP/rootlist.yaml" "a list at the top" "rootlist\.yaml:1:1: a pipeline file must be a mapping"

mkdir -p "$TMP/dir.yaml"
fresh_out dircfg
runcmd "$BIN" run "$TMP/dir.yaml" --input "$IMG" --out "$OUTS/dircfg"
check_error "config path is a folder" "dir\.yaml: is a folder, not a regular file"
untouched dircfg "config path is a folder"

# =================================================================== images
"$PY" - "$IMG" "$TMP" <<'EOF'
import io, struct, sys, zlib
import numpy as np
from PIL import Image
src, tmp = sys.argv[1], sys.argv[2]
png = open(src, "rb").read()

def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

def with_ihdr(w, h, depth=8, color=0, body=None):
    """The sample PNG with its IHDR replaced (CRC fixed), IDAT kept."""
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0))
    return png[:8] + ihdr + png[8 + 25:] if body is None else png[:8] + ihdr + body

def save(name, data):
    open(f"{tmp}/{name}", "wb").write(data)

save("cut.png", png[:len(png) // 2])
save("zero.png", with_ihdr(0, 28))
save("huge.png", with_ihdr(100000, 100000))
save("manypx.png", with_ihdr(16384, 16384))
save("tallsmall.png", with_ihdr(8192, 8192))
bad = bytearray(png); bad[29] ^= 0xff                              # IHDR CRC
save("badcrc.png", bytes(bad))
save("sigonly.png", png[:8] + b"\x00" * 40)
save("elf.png", open("/bin/true", "rb").read()[:8192])
save("empty.png", b"")
b = io.BytesIO(); Image.open(src).save(b, "GIF"); save("gif.png", b.getvalue())

im = Image.open(src).convert("RGB")
b = io.BytesIO(); im.convert("CMYK").save(b, "JPEG"); save("cmyk.jpg", b.getvalue())
b = io.BytesIO(); im.save(b, "JPEG", quality=90); jpg = b.getvalue()
save("cut.jpg", jpg[:-60])                                         # inside the scan
save("cuthdr.jpg", jpg[:jpg.index(b"\xff\xda")])                    # before the scan
i = jpg.index(b"\xff\xc0")                                         # SOF0: P, H, W at +5
j = bytearray(jpg); j[i + 5:i + 9] = struct.pack(">HH", 65000, 65000); save("hugedim.jpg", bytes(j))
j = bytearray(jpg); j[i + 5:i + 7] = struct.pack(">H", 0); save("zeroh.jpg", bytes(j))
save("soionly.jpg", b"\xff\xd8\xff" + b"\x00" * 64)

# 16-bit grayscale, the sample's pixels scaled to 16 bits: must work.
a = np.asarray(Image.open(src).convert("L")).astype(">u2") * 257
raw = b"".join(b"\x00" + row.tobytes() for row in a)
save("gray16.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 16, 0, 0, 0, 0))
     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
EOF

bad_image "$TMP/cut.png" "truncated PNG" "bad PNG: .*(truncated|Not enough)"
bad_image "$TMP/zero.png" "PNG of width 0" "bad PNG: .*(zero|IHDR)"
bad_image "$TMP/huge.png" "PNG header claiming 100000x100000" "image is 100000x100000, more than the 16384 pixels per side"
bad_image "$TMP/manypx.png" "PNG header claiming 16384x16384" "image is 16384x16384, more than the [0-9]+ pixels allowed"
bad_image "$TMP/tallsmall.png" "PNG header claiming 8192x8192 in a small file" "bad PNG: a 8192x8192 image cannot fit in a [0-9]+-byte file"
bad_image "$TMP/badcrc.png" "PNG with a bad IHDR CRC" "bad PNG: .*CRC"
bad_image "$TMP/sigonly.png" "PNG signature then zeros" "bad PNG: "
bad_image "$TMP/elf.png" "an executable named .png" "not a PNG or JPEG image"
bad_image "$TMP/empty.png" "an empty .png" "empty file"
bad_image "$TMP/gif.png" "a GIF named .png" "not a PNG or JPEG image"
bad_image "$TMP/cmyk.jpg" "CMYK JPEG" "CMYK is not supported"
bad_image "$TMP/cut.jpg" "JPEG cut inside the scan" "truncated JPEG"
bad_image "$TMP/cuthdr.jpg" "JPEG cut before the scan" "bad JPEG: .*SOS"
bad_image "$TMP/hugedim.jpg" "JPEG header claiming 65000x65000" "image is 65000x65000, more than the 16384 pixels per side"
bad_image "$TMP/zeroh.jpg" "JPEG of height 0" "(bad JPEG|zero size)"
bad_image "$TMP/soionly.jpg" "JPEG marker then zeros" "bad JPEG: no frame header"

# An "image" that is a folder is read as a folder of images: an empty one
# named like an image, given directly and through a list.
mkdir -p "$TMP/folder.png"
fresh_out dirimg
runcmd "$BIN" run "$TMP/base.yaml" --input "$TMP/folder.png" --out "$OUTS/dirimg"
check_error "image path is an empty folder" "--input $TMP/folder\.png: no \.png/\.jpg/\.jpeg files"
untouched dirimg "image path is an empty folder"
echo "$TMP/folder.png" > "$TMP/list.txt"
fresh_out dirlist
runcmd "$BIN" run "$TMP/base.yaml" --input "@$TMP/list.txt" --out "$OUTS/dirlist"
check_error "listed image is an empty folder" "$TMP/folder\.png: no \.png/\.jpg/\.jpeg files"
untouched dirlist "listed image is an empty folder"

# 16-bit PNG is supported (reduced to 8 bits by rounding): same top class as
# the 8-bit original.
runcmd "$BIN" run "$TMP/base.yaml" --input "$IMG" --out "$OUTS/ok8" --no-taps --no-report
cp "$OUTS/ok8/predictions.csv" "$TMP/p8.csv" 2> /dev/null
runcmd "$BIN" run "$TMP/base.yaml" --input "$TMP/gray16.png" --out "$OUTS/ok16" --no-taps --no-report
if [ "$rc" -eq 0 ]; then ok; else bad "16-bit PNG: exit $rc"; sed 's/^/  stderr: /' "$TMP/err" | head -5 >&2; fi
if [ -f "$TMP/p8.csv" ] && [ -f "$OUTS/ok16/predictions.csv" ] &&
   [ "$(tail -1 "$TMP/p8.csv" | cut -d, -f2-3)" = "$(tail -1 "$OUTS/ok16/predictions.csv" | cut -d, -f2-3)" ]; then ok
else bad "16-bit PNG: top class differs from the 8-bit image"; fi

finish
