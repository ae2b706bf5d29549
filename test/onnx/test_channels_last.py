#!/usr/bin/python3
"""Channels-last models (Keras through tf2onnx) without TensorFlow.

1. samples/keras/keras_small.onnx (a Keras CNN converted by tf2onnx, its
   NHWC input behind a Transpose): `run` on the checked-in input agrees
   with Keras' own prediction to relative L2 <= 1e-4 with the same top-1,
   and so does the pipeline `import` writes.
2. Built here with onnx.helper, random weights, compared with a float64
   numpy reference: an NHWC input, a Transpose to NCHW, a convolution, a
   Transpose back to NHWC, a Reshape to [N, -1] and a Gemm (Keras' Flatten
   before a Dense, whose weights are in H, W, C order): the importer keeps
   [C, H, W] on the device and reorders the Gemm's columns.  Rel. L2 <=
   1e-5 (float32 sums of 200 terms).
3. The same flatten read by anything but a matrix product with constant
   weights is refused with one error line naming the node, exit 2.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BIN = os.environ["CNNVIZ_BIN"]
SRC = os.environ["CNNVIZ_SOURCE_DIR"]
TMP = os.environ.get("CNNVIZ_TEST_TMP", tempfile.gettempdir())
failures = 0


def check(ok, what):
    global failures
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures += 1


def run(args):
    return subprocess.run([BIN] + args, capture_output=True, text=True)


def output_of(out_dir):
    found = [os.path.join(r, f) for r, _, fs in os.walk(out_dir) for f in fs if f == "output.npy"]
    return np.load(found[0]).astype(np.float64) if len(found) == 1 else None


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def keras_fixture(work):
    model = os.path.join(SRC, "samples", "keras", "keras_small.onnx")
    x = os.path.join(SRC, "samples", "keras", "keras_small_input.npy")
    want = np.load(os.path.join(SRC, "samples", "keras", "keras_small_expected.npy")).astype(np.float64)
    out = os.path.join(work, "keras_run")
    p = run(["run", model, "--input", x, "--out", out, "--no-taps", "--no-report", "-q"])
    check(p.returncode == 0, "keras_small.onnx runs (%s)" % p.stderr.strip()[-200:])
    got = output_of(out)
    if got is not None:
        e = rel_l2(got, want)
        check(e <= 1e-4 and got.argmax() == want.argmax(), "keras_small.onnx against Keras: rel L2 %.2e" % e)
    yaml = os.path.join(work, "keras_small.yaml")
    p = run(["import", model, "-o", yaml])
    check(p.returncode == 0, "keras_small.onnx imports (%s)" % p.stderr.strip()[-200:])
    out2 = os.path.join(work, "keras_yaml")
    p = run(["run", yaml, "--input", x, "--out", out2, "--no-taps", "--no-report", "-q"])
    got2 = output_of(out2)
    check(p.returncode == 0 and got2 is not None and got is not None and np.array_equal(got, got2),
          "the imported pipeline gives the same output as the .onnx")


def nhwc_flatten_model(path, rng, consumer="gemm"):
    """[1, 6, 5, 3] NHWC -> Transpose -> Conv 4x3x3x3 -> Transpose(0,2,3,1)
    -> Reshape [1, -1] -> Gemm to 7 (or Relu)."""
    w = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, 4).astype(np.float32)
    gw = rng.normal(0, 0.2, (6 * 5 * 4, 7)).astype(np.float32)
    gb = rng.normal(0, 0.1, 7).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2], name="to_nchw"),
             helper.make_node("Conv", ["t", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Transpose", ["c"], ["u"], perm=[0, 2, 3, 1], name="to_nhwc"),
             helper.make_node("Reshape", ["u", "shape"], ["f"], name="flatten")]
    if consumer == "gemm":
        nodes.append(helper.make_node("Gemm", ["f", "gw", "gb"], ["y"], name="dense"))
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 7])
    else:
        nodes.append(helper.make_node("Relu", ["f"], ["y"], name="relu"))
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 120])
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"),
             numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
             numpy_helper.from_array(gw, "gw"), numpy_helper.from_array(gb, "gb")]
    graph = helper.make_graph(nodes, "nhwc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 5, 3])],
                              [out], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(m, path)
    return w, b, gw, gb


def reference(x_nhwc, w, b, gw, gb):
    """float64: conv with pad 1 on NCHW, back to NHWC, flatten, x @ gw + gb."""
    x = x_nhwc.transpose(0, 3, 1, 2).astype(np.float64)
    n, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    y = np.zeros((n, w.shape[0], h, wd))
    for o in range(w.shape[0]):
        for i in range(h):
            for j in range(wd):
                y[:, o, i, j] = (xp[:, :, i:i + 3, j:j + 3] * w[o]).sum((1, 2, 3)) + b[o]
    f = y.transpose(0, 2, 3, 1).reshape(n, -1)
    return (f @ gw.astype(np.float64) + gb)[0]


def synthetic(work):
    rng = np.random.default_rng(5)
    path = os.path.join(work, "nhwc_flatten.onnx")
    w, b, gw, gb = nhwc_flatten_model(path, rng)
    x = rng.uniform(-1, 1, (1, 6, 5, 3)).astype(np.float32)
    xin = os.path.join(work, "nhwc_x.npy")
    np.save(xin, np.ascontiguousarray(x[0].transpose(2, 0, 1)))  # the tool takes [C, H, W]
    out = os.path.join(work, "nhwc_run")
    p = run(["run", path, "--input", xin, "--out", out, "--no-taps", "--no-report", "-q"])
    check(p.returncode == 0, "NHWC flatten + Gemm runs (%s)" % p.stderr.strip()[-200:])
    got = output_of(out)
    if got is not None:
        e = rel_l2(got, reference(x, w, b, gw, gb))
        check(e <= 1e-5, "NHWC flatten + Gemm against float64: rel L2 %.2e" % e)
    bad = os.path.join(work, "nhwc_flatten_relu.onnx")
    nhwc_flatten_model(bad, rng, consumer="relu")
    p = run(["run", bad, "--input", xin, "--out", os.path.join(work, "bad"), "-q"])
    lines = [l for l in p.stderr.splitlines() if l.startswith("cnnviz-cl: error: ")]
    check(p.returncode == 2 and len(lines) == 1 and "'relu'" in lines[0] and "Transpose reordered" in lines[0],
          "a reordered flatten read by a Relu is refused: %s" % (lines[0] if lines else p.stderr[-200:]))


def main():
    work = tempfile.mkdtemp(prefix="channels_last.", dir=TMP if os.path.isdir(TMP) else None)
    keras_fixture(work)
    synthetic(work)
    print("%s" % ("test_channels_last: ok" if not failures else "test_channels_last: %d failed" % failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
