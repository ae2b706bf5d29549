#!/usr/bin/env bash
# ONNX models and tensor inputs through the binary: `import` and `run
# MODEL.onnx` on a small network, .npy inputs, the unused-weights warning,
# and the hostile catalogue (a truncated or empty file, random bytes,
# external data that would leave the model's folder by '..', an absolute
# path or a symbolic link, an offset past the end, a 2^40-element
# initializer, a cycle, a missing input, messages nested 200 deep, an
# unsupported node, .npy files of the wrong shape, dtype or order, or cut
# short).  Each hostile case: exit 2, one error line saying what and where,
# no sanitizer report, nothing written to --out.  The models come from
# onnx_cases.py.
. "$(dirname "$0")/lib.sh"
use_sample
M="$TMP/m"
"$PY" "$SRC/test/cli/onnx_cases.py" "$M" || { bad "onnx_cases.py failed"; finish; exit 1; }
ln -s /etc/passwd "$M/link.bin"
ln -s /etc "$M/ldir"

# ---- import: a pipeline file and its weights beside it
expect_rc 0 "import good.onnx (into a new folder)" -- "$BIN" import "$M/good.onnx" -o "$TMP/good/net.yaml"
expect_grep "$TMP/out" "4 layers" "import reports the layers"
expect_grep "$TMP/out" "preprocessing \(not in the model\): ImageNet" "import says which preprocessing it assumed"
if [ -f "$TMP/good/net.safetensors" ]; then ok; else bad "import wrote no net.safetensors"; fi
expect_grep "$TMP/good/net.yaml" "^  weights: net.safetensors" "the pipeline names its weights"
expect_grep "$TMP/good/net.yaml" "name: conv1, op: conv2d, out: 4, kernel: 3, pad: 1, params: conv1" \
  "layers are named after their modules and keep the tensor names"
expect_grep "$TMP/good/net.yaml" "Preprocessing is not part of an ONNX model" "the pipeline says the preprocessing is assumed"
expect_grep "$TMP/good/net.yaml" "color: gray" "a one-channel image input"
expect_rc 0 "info on the imported pipeline" -- "$BIN" info "$TMP/good/net.yaml"
expect_rc 0 "import with --preprocess raw and --size" -- "$BIN" import "$M/good.onnx" -o "$TMP/raw.yaml" \
  --preprocess raw --size 28
expect_grep "$TMP/raw.yaml" "scale: 1" "--preprocess raw: pixel values as they are"
expect_rc 0 "import with --mean/--std" -- "$BIN" import "$M/good.onnx" -o "$TMP/ms.yaml" --mean 0.5 --std 0.25
expect_grep "$TMP/ms.yaml" "mean: \[0.5\]" "--mean written"
expect_grep "$TMP/ms.yaml" "std: \[0.25\]" "--std written"
expect_rc 2 "import refuses to replace the model" -- "$BIN" import "$M/good.onnx" -o "$M/good.onnx"
expect_rc 0 "import replaces what an earlier import wrote" -- "$BIN" import "$M/good.onnx" -o "$TMP/good/net.yaml"
cp "$CFG" "$TMP/mine.yaml"
expect_rc 2 "import does not replace a pipeline file of the user's" -- "$BIN" import "$M/good.onnx" -o "$TMP/mine.yaml"
expect_grep "$TMP/err" "mine.yaml exists and was not written by cnnviz-cl import" "the refusal says why"
if cmp -s "$CFG" "$TMP/mine.yaml" && [ ! -e "$TMP/mine.safetensors" ]; then ok; else bad "the user's pipeline was touched"; fi
cp "$WEIGHTS" "$TMP/theirs.safetensors"
expect_rc 2 "import does not replace weights of the user's" -- "$BIN" import "$M/good.onnx" -o "$TMP/theirs.yaml"
expect_rc 2 "--size that differs from a fixed input" -- "$BIN" import "$M/good.onnx" -o "$TMP/x.yaml" --size 32
expect_rc 2 "--preprocess on a pipeline file" -- "$BIN" run "$CFG" --input "$IMG" --preprocess none
expect_rc 2 "--weights with an ONNX model" -- "$BIN" run "$M/good.onnx" --input "$IMG" --weights "$WEIGHTS"
expect_rc 2 "--preprocess with a bad value" -- "$BIN" import "$M/good.onnx" --preprocess caffe
expect_rc 0 "external data beside the model" -- "$BIN" info "$M/ext_good.onnx"
runcmd "$BIN" info "$M/symbolic.onnx"
check_error "a symbolic height and width without --size" "graph input 'x' has a symbolic size at axis 2: give the input size with --size H,W"
expect_rc 0 "--size for a symbolic height and width" -- "$BIN" info "$M/symbolic.onnx" --size 20,24
expect_grep "$TMP/out" "input \[1, 20, 24\]" "--size sets the input's height and width"
expect_grep "$TMP/out" "resize the shorter side to 24, centre crop 24x20" "the crop follows --size"
expect_rc 0 "run with --preprocess none" -- "$BIN" run "$M/good.onnx" --input "$IMG" --out "$OUTS/none" \
  --preprocess none --no-report
expect_grep "$TMP/err" "assumed preprocessing 'none': .*mean \[0\], std \[1\]" "run says it assumed no mean or std"

# ---- run MODEL.onnx: imported in memory, the same numbers as the pipeline file
expect_rc 0 "run good.onnx on an image" -- "$BIN" run "$M/good.onnx" --input "$IMG" --out "$OUTS/onnx" --no-report
expect_grep "$TMP/err" "preprocessing is not part of an ONNX model; assumed ImageNet preprocessing" \
  "run says which preprocessing it assumed"
expect_rc 0 "run the imported pipeline" -- "$BIN" run "$TMP/good/net.yaml" --input "$IMG" --out "$OUTS/yaml" \
  --no-report
if cmp -s "$OUTS/onnx/0_tshirt/output.npy" "$OUTS/yaml/0_tshirt/output.npy"; then ok; else
  bad "run MODEL.onnx and run of its imported pipeline differ"; fi
expect_rc 0 "a tap by module name" -- "$BIN" run "$M/good.onnx" --input "$IMG" --out "$OUTS/tap" --tap conv1 \
  --no-report
if [ -f "$OUTS/tap/0_tshirt/conv1/activations.png" ]; then ok; else bad "--tap conv1 wrote no activations"; fi

# ---- .npy inputs: fed as they are
expect_rc 0 "run on x.npy [1, 28, 28]" -- "$BIN" run "$M/good.onnx" --input "$M/x.npy" --out "$OUTS/npy" --no-report
if [ -f "$OUTS/npy/x/output.npy" ]; then ok; else bad "x.npy: no output"; fi
expect_rc 0 "run on xs.npy [3, 1, 28, 28]: three inputs" -- "$BIN" run "$M/good.onnx" --input "$M/xs.npy" \
  --out "$OUTS/npys" --no-report
for k in 0 1 2; do
  if [ -f "$OUTS/npys/xs_$k/output.npy" ]; then ok; else bad "xs.npy: no output for input $k"; fi
done
expect_grep "$OUTS/npys/predictions.csv" "xs.npy\[2\]" "each input of an [N, C, H, W] file is named by its index"
"$PY" - "$OUTS" <<'EOF' > "$TMP/cmp.txt" 2>&1
import sys, numpy as np
o = sys.argv[1]
one = np.load(o + "/npy/x/output.npy")
xs = [np.load(o + "/npys/xs_%d/output.npy" % k) for k in range(3)]
assert one.shape == (10,) and all(x.shape == (10,) for x in xs), "shapes"
assert not np.array_equal(xs[0], xs[1]), "the three inputs give the same output"
print("ok")
EOF
if grep -q '^ok$' "$TMP/cmp.txt"; then ok; else bad "npy outputs: $(tail -1 "$TMP/cmp.txt")"; fi
expect_rc 0 "a tensor model (color: none) on t.npy" -- "$BIN" run "$M/tensor.onnx" --input "$M/t.npy" \
  --out "$OUTS/tensor" --no-report
"$PY" - "$OUTS/tensor/t/output.npy" "$M/t.npy" <<'EOF' > "$TMP/cmp.txt" 2>&1
import sys, numpy as np
got, x = np.load(sys.argv[1]), np.load(sys.argv[2])
assert np.array_equal(got, np.maximum(x, 0).reshape(-1)), "relu output"
print("ok")
EOF
if grep -q '^ok$' "$TMP/cmp.txt"; then ok; else bad "tensor model: $(tail -1 "$TMP/cmp.txt")"; fi

# ---- the unused-weights warning
sed -e "s#\.\./samples/#$SRC/samples/#" -e 's/  - {name: bn1, *op: batchnorm, params: features.1}/  - {name: bn1, op: relu}/' \
  "$CFG" > "$TMP/nobn.yaml"
expect_rc 0 "info with a layer left out" -- "$BIN" info "$TMP/nobn.yaml"
expect_grep "$TMP/err" "warning: .*fashion_mnist.safetensors: 4 tensors no layer uses: features.1.weight, features.1.bias, features.1.running_mean, and 1 more" \
  "info warns about the tensors no layer binds"
expect_rc 0 "info on the sample" -- "$BIN" info "$CFG"
if grep -q "no layer uses" "$TMP/err"; then bad "the sample pipeline warns about unused tensors"; else ok; fi

# ---- hostile models: one error line, exit 2, nothing written
head -c 300 "$M/good.onnx" > "$M/truncated.onnx"
: > "$M/empty.onnx"
head -c 4096 /dev/urandom > "$M/random.onnx"
hostile() { # FILE DESCRIPTION ERE
  runcmd "$BIN" info "$M/$1"
  check_error "info $2" "$3"
  fresh_out "h_$1"
  runcmd "$BIN" run "$M/$1" --input "$IMG" --out "$OUTS/h_$1"
  check_error "run $2" "$3"
  untouched "h_$1" "run $2"
}
hostile truncated.onnx "a truncated model" "truncated\.onnx: not a valid ONNX model: .*runs past the end"
hostile empty.onnx "an empty file" "empty\.onnx: not an ONNX model: the file is empty"
hostile random.onnx "random bytes" "random\.onnx: not a valid ONNX model"
hostile ext_dotdot.onnx "external data ../../etc/passwd" "external data '\.\./\.\./etc/passwd' has a '\.\.' component"
hostile ext_abs.onnx "external data /etc/passwd" "external data '/etc/passwd' is an absolute path"
hostile ext_link.onnx "external data through a symbolic link" "external data 'link\.bin': is or passes through a symbolic link"
hostile ext_linkdir.onnx "external data in a linked folder" "'ldir/passwd': is or passes through a symbolic link"
hostile ext_range.onnx "external data past the end of its file" "offset 4096 \+ length 144 runs past its end"
hostile huge.onnx "a 2^40-element initializer" "tensor 'big' of shape \[1048576, 1048576\] has more than 2147483648 elements"
hostile cycle.onnx "a graph cycle" "node 'first' \(Relu, opset 13\): the graph has a cycle"
hostile missing.onnx "an input nothing produces" "node 'add_missing' \(Add, opset 13\): input 'nowhere' is not produced"
hostile deep.onnx "graphs nested 200 deep" "messages nested more than [0-9]+ deep"
hostile unsupported.onnx "an unsupported node" "node 'lonely_erf' \(Erf, opset 13\): .*; supported: Add, AveragePool, .*Conv"
hostile two_inputs.onnx "two graph inputs" "the graph has 2 inputs"
hostile badshape.onnx "a negative input dimension" "graph input 'x' has dimension -3"

# ---- hostile .npy inputs: checked before anything runs
badnpy() { # FILE DESCRIPTION ERE
  fresh_out "n_$1"
  runcmd "$BIN" run "$M/good.onnx" --input "$M/$1" --out "$OUTS/n_$1"
  check_error "$2" "$3"
  untouched "n_$1" "$2"
}
badnpy bad_shape.npy ".npy of the wrong shape" "bad_shape\.npy: a float32 array of shape \[1, 27, 28\]; the network takes \[1, 28, 28\]"
badnpy bad_f8.npy ".npy of float64" "bad_f8\.npy: dtype '<f8': float32 \('<f4'"
badnpy bad_fortran.npy ".npy in Fortran order" "bad_fortran\.npy: the array is in Fortran order"
badnpy bad_short.npy ".npy cut short" "bad_short\.npy: \.npy file of [0-9]+ bytes; its header says 784 elements"
fresh_out "n_img"
runcmd "$BIN" run "$M/tensor.onnx" --input "$IMG" --out "$OUTS/n_img"
check_error "an image for a tensor network" "the network takes a tensor \[5, 1, 1\] \(color: none\), not an image"
untouched "n_img" "an image for a tensor network"
finish
