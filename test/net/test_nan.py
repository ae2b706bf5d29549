#!/usr/bin/python3
"""NaN and Inf in the weights: cnnviz-cl against PyTorch on the Fashion-MNIST
sample.

    /usr/bin/python3 test/net/test_nan.py

The shipped weights (samples/fashion_mnist/fashion_mnist.safetensors,
configs/fashion_mnist.yaml) are written again with NaN, +Inf or -Inf put
into chosen tensors (CASES below), and for each case:

  * `run --no-taps --npy` on one image (the fused forward: batch norm folded
    into the convolutions, ReLU in their epilogues) and `run --no-taps
    --batch 2` on two images (the fully-connected layers on the GEMM path):
    every output.npy against the float64 PyTorch forward of the same
    weights (netref.run_config on the same YAML): NaN exactly where PyTorch
    has NaN, +Inf and -Inf exactly where it has them, the finite values
    within RTOL (relative L2);
  * `run --tap conv1 ... --tap pool2 --npy` (unfused: conv outputs kept, batch
    norm + ReLU as their own pass): each tapped activations.npy against
    PyTorch's tensor of that layer, the same way -- this is where ReLU
    meets -Inf (it gives 0) and max pooling meets NaN and Inf;
  * predictions.json is strict JSON (no NaN/Infinity tokens), its top-3
    order is torch.sort(descending=True, stable=True)'s (NaN first, ties
    by index; torch.argmax is the top-1), its probabilities are null where
    torch.softmax gives NaN and equal to it (1e-5) elsewhere;
    predictions.csv writes "nan";
  * stderr holds exactly one weights warning line naming the first three
    tensors with their counts ("features.3.weight: 2 NaN", "and 2 more"),
    and exactly one line about the network's output iff PyTorch's output
    holds NaN or Inf, naming the count and the first input;
  * `run --strict` and `info --strict` exit 2 with one error line naming
    the file and the first tensor, and leave no output folder; `info`
    without it exits 0 with the warning.
One case also runs the pipeline's own taps (saliency, Grad-CAM, the
report: gradient mode, every layer kept) and checks the report names no
class for the NaN output.  The shipped weights give no warning at all.

Tolerance: RTOL = 1e-4 relative L2 over the finite entries, the figure of
test_fashion_mnist.py (float32 device vs float64, measured ~1e-6 there).
Whether a value is NaN, +Inf or -Inf does not depend on rounding or on the
order of a sum, so those positions must match exactly.

Environment: CNNVIZ_BIN, CNNVIZ_SOURCE_DIR (repo root; default: from this
file), CNNVIZ_TEST_TMP (scratch; default: a temporary folder).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import yaml
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import netref  # noqa: E402

SOURCE_DIR = os.environ.get("CNNVIZ_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
CONFIG = os.path.join(SOURCE_DIR, "configs", "fashion_mnist.yaml")
SAMPLES = os.path.join(SOURCE_DIR, "samples", "fashion_mnist")
WEIGHTS = os.path.join(SAMPLES, "fashion_mnist.safetensors")
IMAGES = [os.path.join(SAMPLES, "images", n) for n in ("0_tshirt.png", "7_sneaker.png")]
TAPS = ["conv1", "conv2", "pool1", "conv3", "conv4", "pool2"]
RTOL = 1e-4
PROB_ATOL = 1e-5
TIMEOUT = 300
NAN, INF = float("nan"), float("inf")

# name -> list of (tensor, index, value); optional dtype per tensor.  Chosen
# so that the output ends partly NaN (A), all NaN (B, F), mixed +-Inf (D),
# finite though the weights are not (E), and NaN/Inf reaching ReLU and max
# pooling in the taps (C, F).  The channels of E and F have a positive
# batch-norm gamma (all of the sample's are), so an Inf keeps its sign.
CASES = [
    ("A nan fc2 weight", [("classifier.4.weight", (3, 17), NAN)], {}),
    ("B nan conv2 weights", [("features.3.weight", (5, 7, 1, 2), NAN),
                             ("features.3.weight", (20, 0, 0, 0), NAN)], {}),
    ("C +inf conv1 weight", [("features.0.weight", (6, 0, 1, 1), INF)], {}),
    ("D +inf fc1 bias", [("classifier.1.bias", (40,), INF)], {}),
    ("E -inf conv4 bias", [("features.10.bias", (9,), -INF)], {}),
    ("F +inf conv3 bias", [("features.7.bias", (13,), INF)], {}),
    # five tensors, F16 and BF16 among them (converted, not used in place)
    ("G five tensors", [("features.0.bias", (2,), NAN), ("features.0.bias", (3,), -INF),
                        ("features.3.bias", (1,), INF), ("features.10.weight", (1, 2, 0, 0), NAN),
                        ("classifier.1.weight", (0, 5), -INF), ("classifier.4.bias", (0,), NAN)],
     {"features.3.bias": torch.float16, "classifier.4.bias": torch.bfloat16}),
]

failures = []
checks = 0


def check(cond, msg):
    global checks
    checks += 1
    print(("ok    " if cond else "FAIL  ") + msg, flush=True)
    if not cond:
        failures.append(msg)


def binary():
    b = os.environ.get("CNNVIZ_BIN") or os.path.join(SOURCE_DIR, "build", "cnnviz-cl")
    if not os.access(b, os.X_OK):
        raise SystemExit("FAIL  CNNVIZ_BIN is not set or not executable: %r" % b)
    return b


def failed(rc, err):
    """The end of stderr, for a message, when the run failed."""
    return "" if rc == 0 else ": " + " | ".join(err.strip().splitlines()[-3:])


def run(args):
    p = subprocess.run([binary()] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=TIMEOUT)
    return p.returncode, p.stdout, p.stderr


def load_image(path, spec):
    u8 = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    x = u8 * spec["scale"]
    return ((x - spec["mean"][0]) / spec["std"][0])[None, None]


def strict_json(text):
    def refuse(token):
        raise ValueError("non-JSON token %s" % token)
    return json.loads(text, parse_constant=refuse)


def kinds(a):
    return np.isnan(a), np.isposinf(a), np.isneginf(a)


def compare(got, ref, what):
    """NaN/+Inf/-Inf positions equal, finite entries within RTOL."""
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    if got.shape != ref.shape:
        check(False, "%s: shape %s, PyTorch %s" % (what, got.shape, ref.shape))
        return
    same = all(np.array_equal(g, r) for g, r in zip(kinds(got), kinds(ref)))
    n_nan, n_pinf, n_ninf = (int(k.sum()) for k in kinds(ref))
    bad = int(sum((g != r).sum() for g, r in zip(kinds(got), kinds(ref))))
    check(same, "%s: NaN/+Inf/-Inf at PyTorch's places (%d NaN, %d +Inf, %d -Inf of %d; %d differ)"
          % (what, n_nan, n_pinf, n_ninf, ref.size, bad))
    fin = np.isfinite(ref) & np.isfinite(got)
    if fin.any():
        err = np.linalg.norm(got[fin] - ref[fin]) / max(np.linalg.norm(ref[fin]), 1e-30)
        check(err <= RTOL, "%s: finite values rel. L2 %.2e <= %g" % (what, err, RTOL))


def reference(layers, sd, x):
    outs = {}
    with torch.no_grad():
        y, _ = netref.run_config(layers, {k: v.double() if v.is_floating_point() else v
                                          for k, v in sd.items()},
                                 torch.from_numpy(x), outs_out=outs)
    return y.numpy(), {k: v.numpy() for k, v in outs.items()}


def counts_text(values):
    t = torch.tensor(values, dtype=torch.float64)
    parts = []
    for n, label in ((int(torch.isnan(t).sum()), "NaN"), (int(torch.isposinf(t).sum()), "+Inf"),
                     (int(torch.isneginf(t).sum()), "-Inf")):
        if n:
            parts.append("%d %s" % (n, label))
    return ", ".join(parts)


def expected_tensors(edits, layers):
    """(tensor, counts text) in binding order: the config's layer order, and
    weight, bias, ... within a layer as graph.c binds them."""
    per = {}
    for name, _, v in edits:
        per.setdefault(name, []).append(v)
    order = []
    for d in layers:
        p = d.get("params")
        if not p:
            continue
        for suffix in ("weight", "bias", "running_mean", "running_var"):
            key = "%s.%s" % (p, suffix)
            if key in per:
                order.append((key, counts_text(per[key])))
    return order


def check_weights_warning(stderr, path, tensors, what):
    lines = [l for l in stderr.splitlines() if l.startswith("cnnviz-cl: warning: %s:" % path)]
    check(len(lines) == 1, "%s: one weights warning line (%d)" % (what, len(lines)))
    if not lines:
        return
    line = lines[0]
    n = len(tensors)
    check("%d tensor%s hold%s NaN or Inf" % (n, "" if n == 1 else "s", "s" if n == 1 else "") in line,
          "%s: warning counts %d tensor%s" % (what, n, "" if n == 1 else "s"))
    for name, text in tensors[:3]:
        check("%s: %s" % (name, text) in line, "%s: warning names '%s: %s'" % (what, name, text))
    if n > 3:
        check("and %d more" % (n - 3) in line, "%s: warning says 'and %d more'" % (what, n - 3))
        check(tensors[3][0] not in line, "%s: warning stops after three tensors" % what)


def check_output_warning(stderr, refs, inputs, what):
    lines = [l for l in stderr.splitlines() if "the network's output holds" in l]
    bad = [i for i, r in enumerate(refs) if not np.isfinite(r).all()]
    if not bad:
        check(not lines, "%s: no output warning for finite outputs" % what)
        return
    check(len(lines) == 1, "%s: one output warning line (%d)" % (what, len(lines)))
    if lines:
        want = "for %d of %d input%s (first: %s)" % (len(bad), len(refs), "" if len(refs) == 1 else "s",
                                                     inputs[bad[0]])
        check(want in lines[0], "%s: output warning says '%s'" % (what, want))
        check("the weights hold NaN or Inf" in lines[0], "%s: output warning points at the weights" % what)


def check_predictions(out, refs, inputs, what):
    with open(os.path.join(out, "predictions.json"), encoding="utf-8") as f:
        text = f.read()
    try:
        preds = strict_json(text)
    except ValueError as e:
        check(False, "%s: predictions.json is not JSON: %s" % (what, e))
        return
    check(len(preds) == len(refs), "%s: %d predictions" % (what, len(preds)))
    with open(os.path.join(out, "predictions.csv"), encoding="utf-8") as f:
        rows = f.read().splitlines()[1:]
    for k, (entry, ref) in enumerate(zip(preds, refs)):
        r = torch.from_numpy(ref.reshape(-1))
        order = torch.sort(r, descending=True, stable=True).indices[:3].tolist()
        top = [int(t["index"]) for t in entry["top"]]
        check(top == order and top[0] == int(torch.argmax(r)),
              "%s [%d]: top-3 %s, PyTorch sort %s, argmax %d" % (what, k, top, order, int(torch.argmax(r))))
        prob = torch.softmax(r, 0)
        ok = True
        for t in entry["top"]:
            p = prob[int(t["index"])].item()
            ok &= (t["prob"] is None) if np.isnan(p) else (t["prob"] is not None and abs(t["prob"] - p) <= PROB_ATOL)
        check(ok, "%s [%d]: probabilities as torch.softmax (null for NaN): %s vs %s"
              % (what, k, [t["prob"] for t in entry["top"]], [prob[int(t["index"])].item() for t in entry["top"]]))
        csv_prob = rows[k].rsplit(",", 1)[1] if k < len(rows) else "?"
        p0 = prob[order[0]].item()
        check(csv_prob == "nan" if np.isnan(p0) else abs(float(csv_prob) - p0) <= PROB_ATOL,
              "%s [%d]: predictions.csv top-1 probability %s (PyTorch %g)" % (what, k, csv_prob, p0))


def stems(paths):
    return [os.path.splitext(os.path.basename(p))[0] for p in paths]


def run_case(work, name, edits, dtypes, sd0, layers, spec, xs):
    tag = name.split()[0]
    sd = {k: v.clone() for k, v in sd0.items()}
    for tensor, index, value in edits:
        sd[tensor][index] = value
    for tensor, dt in dtypes.items():
        sd[tensor] = sd[tensor].to(dt)
    path = os.path.join(work, "case_%s.safetensors" % tag)
    netref.save_safetensors(sd, path, use_package=False)
    refs = [reference(layers, sd, x) for x in xs]
    tensors = expected_tensors(edits, layers)
    what = "case " + name

    # fused forward, one image
    out = os.path.join(work, "out_%s_fused" % tag)
    rc, _, err = run(["run", CONFIG, "--weights", path, "--input", IMAGES[0], "--out", out,
                      "--no-taps", "--npy", "-q"])
    check(rc == 0, "%s: run exits 0 (%d)%s" % (what, rc, failed(rc, err)))
    if rc == 0:
        compare(np.load(os.path.join(out, stems(IMAGES)[0], "output.npy")), refs[0][0], what + " output")
        check_weights_warning(err, path, tensors, what)
        check_output_warning(err, [refs[0][0]], IMAGES[:1], what)
        check_predictions(out, [refs[0][0]], IMAGES[:1], what)

    # batch of two: the fully-connected layers run as a GEMM
    out = os.path.join(work, "out_%s_batch" % tag)
    rc, _, err = run(["run", CONFIG, "--weights", path, "--input", IMAGES[0], "--input", IMAGES[1],
                      "--out", out, "--no-taps", "--batch", "2", "-q"])
    check(rc == 0, "%s: run --batch 2 exits 0 (%d)%s" % (what, rc, failed(rc, err)))
    if rc == 0:
        for stem, ref in zip(stems(IMAGES), refs):
            compare(np.load(os.path.join(out, stem, "output.npy")), ref[0], "%s batch 2 %s output" % (what, stem))
        check_output_warning(err, [r[0] for r in refs], IMAGES, what + " batch 2")
        check_predictions(out, [r[0] for r in refs], IMAGES, what + " batch 2")

    # unfused, every conv and pool layer tapped
    out = os.path.join(work, "out_%s_taps" % tag)
    args = ["run", CONFIG, "--weights", path, "--input", IMAGES[0], "--out", out, "--no-taps", "--npy",
            "--no-report", "-q"]
    for t in TAPS:
        args += ["--tap", t]
    rc, _, err = run(args)
    check(rc == 0, "%s: run with taps exits 0 (%d)%s" % (what, rc, failed(rc, err)))
    if rc == 0:
        for t in TAPS:
            got = np.load(os.path.join(out, stems(IMAGES)[0], t, "activations.npy"))
            compare(got, refs[0][1][t][0], "%s tap %s" % (what, t))
        compare(np.load(os.path.join(out, stems(IMAGES)[0], "output.npy")), refs[0][0], what + " output (taps)")
    return path, refs, tensors


def check_strict(work, path, first, what):
    for cmd in ("run", "info"):
        out = os.path.join(work, "out_strict_%s" % cmd)
        shutil.rmtree(out, ignore_errors=True)
        args = [cmd, CONFIG, "--weights", path, "--strict"]
        if cmd == "run":
            args += ["--input", IMAGES[0], "--out", out]
        rc, _, err = run(args)
        lines = err.strip().splitlines()
        check(rc == 2, "%s: %s --strict exits 2 (%d)" % (what, cmd, rc))
        check(len(lines) == 1 and lines[0].startswith("cnnviz-cl: error: %s:" % path) and
              "'%s'" % first in lines[0], "%s: %s --strict: one error line naming %s and '%s': %s"
              % (what, cmd, path, first, lines))
        check(not os.path.exists(out), "%s: %s --strict leaves no output folder" % (what, cmd))
    rc, stdout, err = run(["info", CONFIG, "--weights", path])
    check(rc == 0 and "total:" in stdout and "warning: %s:" % path in err,
          "%s: info without --strict exits 0 with the warning (%d)" % (what, rc))


def main():
    base = os.environ.get("CNNVIZ_TEST_TMP") or tempfile.mkdtemp(prefix="cnnviz-nan-")
    work = os.path.join(base, "nan")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    with open(CONFIG, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    layers, spec = cfg["layers"], cfg["model"]["input"]
    sd0, _ = netref.load_safetensors(WEIGHTS)
    xs = [load_image(p, spec) for p in IMAGES]

    # The shipped weights: no warning of either kind.
    rc, _, err = run(["run", CONFIG, "--input", IMAGES[0], "--out", os.path.join(work, "out_clean"),
                      "--no-taps", "-q"])
    check(rc == 0 and "warning" not in err, "shipped weights: exit 0, no warning (%d)%s" % (rc, failed(1, err)))

    done = {}
    for name, edits, dtypes in CASES:
        done[name.split()[0]] = run_case(work, name, edits, dtypes, sd0, layers, spec, xs)

    path, _, tensors = done["A"]
    check_strict(work, path, tensors[0][0], "case A")
    path, _, tensors = done["G"]
    check_strict(work, path, tensors[0][0], "case G")

    # The pipeline's own taps (gradient maps, report) on all-NaN outputs.
    path, refs, _ = done["B"]
    out = os.path.join(work, "out_B_full")
    rc, _, err = run(["run", CONFIG, "--weights", path, "--input", IMAGES[0], "--out", out, "-q"])
    check(rc == 0, "case B with the pipeline's taps exits 0 (%d)%s" % (rc, failed(rc, err)))
    if rc == 0:
        compare(np.load(os.path.join(out, stems(IMAGES)[0], "output.npy")), refs[0][0],
                "case B output (gradient mode)")
        with open(os.path.join(out, "index.html"), encoding="utf-8") as f:
            html = f.read()
        check("output holds NaN or Inf</span>" in html and "No class is predicted" in html,
              "case B report: the input's title and table say NaN, no class")

    print("%d checks, %d failed" % (checks, len(failures)))
    if failures:
        raise SystemExit(1)
    if not os.environ.get("CNNVIZ_TEST_TMP"):
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
