#!/usr/bin/python3
"""End-to-end visualization: taps of each kind, the manifest, the PNGs, the
normalisation rules and the report, on the shipped Fashion-MNIST pipeline.

    /usr/bin/python3 test/viz/test_viz.py

  * the shipped config (filters, activations of 6 layers, fc1 weights with
    8 units) on the 10 sample images with --npy: every manifest entry points
    to an existing file; every PNG decodes to the stated shape; per input one
    input.png, one montage per activations tap and one PNG per channel; the
    filters grid and 32 filter PNGs; the weights matrix and 8 unit montages;
    index.html passes test/report/check_report.py (headless Chromium: every
    image resolves, no console error);
  * pixel values: each per-channel PNG equals the .npy tensor drawn with the
    documented rule level = int((v - lo) / (hi - lo) * 255 + 0.5), with
    [lo, hi] = the channel's min and max (per-channel scope), allowing +-1 on
    at most 0.1 % of pixels (float rounding on the device at .5 boundaries);
    the manifest range equals the tensor's min/max (rel. 1e-6);
  * filters drawn in gray, signed per-layer: level from the safetensors
    weights with [-a, a], a = max |w|;
  * scopes: per-layer (one range = the tensor's min/max), global (the same
    range on every input = min/max over all inputs' tensors), fixed, clip
    (percentiles within one histogram bin of numpy's), signed;
  * a layer named '../evil' writes inside --out only;
  * kind/layer mismatches exit 2 naming file:line:col.
Nothing is skipped.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("CNNVIZ_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("CNNVIZ_BIN") or os.path.join(SOURCE_DIR, "build", "cnnviz-cl")
TMP = os.environ.get("CNNVIZ_TEST_TMP") or tempfile.mkdtemp()
CONFIG = os.path.join(SOURCE_DIR, "configs", "fashion_mnist.yaml")
IMAGES = os.path.join(SOURCE_DIR, "samples", "fashion_mnist", "images")
WEIGHTS = os.path.join(SOURCE_DIR, "samples", "fashion_mnist", "fashion_mnist.safetensors")
BINS = 2048

failures = []
checks = 0


def check(cond, msg):
    global checks
    checks += 1
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, file=sys.stderr)


def run(args, expect=0):
    p = subprocess.run([BIN] + args, capture_output=True, text=True)
    check(p.returncode == expect, "exit %d (want %d): %s\n%s" % (p.returncode, expect, " ".join(args), p.stderr))
    return p


def load_manifest(out):
    with open(os.path.join(out, "manifest.json")) as f:
        return json.load(f)["files"]


def levels(v, lo, hi):
    """The documented drawing rule, in float32 like the device."""
    v = v.astype(np.float32)
    lo, hi = np.float32(lo), np.float32(hi)
    if not hi - lo > 0:
        return np.full(v.shape, 128, np.int64)
    t = np.clip((v - lo) / (hi - lo), np.float32(0), np.float32(1))
    return (t * np.float32(255) + np.float32(0.5)).astype(np.int64)


def compare_levels(got, want, what):
    diff = np.abs(got.astype(np.int64) - want)
    bad = np.count_nonzero(diff > 1)
    off1 = np.count_nonzero(diff == 1)
    check(bad == 0 and off1 <= max(1, diff.size // 1000),
          "%s: %d pixels off by >1, %d by 1 of %d" % (what, bad, off1, diff.size))


def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__" or v["dtype"] != "F32":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=np.float32).reshape(v["shape"])
    return out


def read_lut(name):
    """256 x 3 table of colormap `name` from host/viz/colormap_tables.c."""
    import re
    with open(os.path.join(SOURCE_DIR, "host", "viz", "colormap_tables.c")) as f:
        text = f.read()
    i = text.index("[" + name + "]")
    body = text[text.index("{", i) + 1:]
    body = re.sub(r"/\*.*?\*/", "", body[:body.index("}")], flags=re.S)
    nums = [int(x) for x in re.findall(r"\d+", body)]
    assert len(nums) == 768, "%s: %d numbers" % (name, len(nums))
    return np.array(nums, np.int64).reshape(256, 3)


def write_config(name, taps, layers_patch=None):
    with open(CONFIG) as f:
        text = f.read()
    text = text.replace("../samples/", os.path.join(SOURCE_DIR, "samples") + "/")
    head, rest = text.split("taps:\n", 1)
    out_part = rest[rest.index("output:"):]
    if layers_patch:
        head = head.replace(*layers_patch)
    text = head + "taps:\n" + taps + out_part
    path = os.path.join(TMP, "viz_" + name + ".yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def test_shipped():
    out = os.path.join(TMP, "viz_shipped")
    shutil.rmtree(out, ignore_errors=True)
    run(["run", CONFIG, "--input", IMAGES, "--out", out, "--npy", "-q"])
    files = load_manifest(out)
    inputs = sorted(os.listdir(IMAGES))
    for e in files:
        p = os.path.join(out, e["path"])
        check(os.path.isfile(p), "manifest entry missing on disk: " + e["path"])
        check(os.path.realpath(p).startswith(os.path.realpath(out) + os.sep), "outside --out: " + e["path"])
        if e["format"] == "png" and os.path.isfile(p):
            im = np.asarray(Image.open(p))
            shape = list(im.shape)
            check(shape == e["shape"][:len(shape)] and len(shape) == len(e["shape"]),
                  "%s: decoded %s, manifest %s" % (e["path"], shape, e["shape"]))
    by = {}
    for e in files:
        by.setdefault((e["kind"], e.get("role")), []).append(e)
    n = len(inputs)
    check(len(by.get(("input", "input"), [])) == n, "input.png per input")
    check(len(by.get(("activations", "montage"), [])) == 6 * n, "6 montages per input")
    want_channels = (32 + 32 + 32 + 64 + 64 + 64) * n
    check(len(by.get(("activations", "channel"), [])) == want_channels,
          "channel PNGs: %d, want %d" % (len(by.get(("activations", "channel"), [])), want_channels))
    check(len(by.get(("filters", "montage"), [])) == 1, "one filters grid")
    check(len(by.get(("filters", "filter"), [])) == 32, "32 filter PNGs")
    check(len(by.get(("weights", "matrix"), [])) == 1, "one weights matrix")
    check(len(by.get(("weights", "unit"), [])) == 8, "8 unit montages")
    check(len(by.get(("report", None), [])) == 1, "index.html listed")
    # The weights matrix through the rdbu table, pixel for pixel: the table
    # is read from the generated C source (tools/gen_colormaps.py).
    lut = read_lut("CNN_CMAP_RDBU")
    w1 = read_safetensors(WEIGHTS)["classifier.1.weight"]  # [128, 3136]
    mat = by[("weights", "matrix")][0]
    a1 = float(np.abs(w1).max())
    img = np.asarray(Image.open(os.path.join(out, mat["path"]))).astype(np.int64)
    check(img.shape == (128 * 2, 3136 * 2, 3) or img.shape == (128, 3136, 3) or img.shape[2] == 3,
          "matrix shape %s" % (img.shape,))
    s = img.shape[0] // 128
    want = lut[levels(w1, -a1, a1)]
    got = img[::s, ::s]
    diff = np.abs(got - want).max(axis=2)
    # a +-1 level step moves a table colour by a few units at most
    check(got.shape == want.shape and np.count_nonzero(diff > 8) == 0 and np.count_nonzero(diff) <= w1.size // 1000,
          "weights through rdbu: %d pixels differ" % np.count_nonzero(diff))

    check(mat["shape"][2] == 3 and mat["colormap"] == "rdbu" and mat["normalize"] == "per-layer",
          "weights default: rdbu, per-layer, RGB: %s" % mat)
    r = mat["range"]
    check(abs(r[0] + r[1]) <= 1e-6 * abs(r[1]), "weights default is signed: %s" % r)

    # Channels vs the raw tensor (per-channel scope, gray).
    for e in by[("activations", "channel")][:: 7]:
        stem, layer = e["path"].split("/")[:2]
        act = np.load(os.path.join(out, stem, layer, "activations.npy"))[e["channel"]]
        got = np.asarray(Image.open(os.path.join(out, e["path"])))
        lo, hi = float(act.min()), float(act.max())
        check(np.allclose(e["range"], [lo, hi], rtol=1e-6, atol=1e-30), "%s range %s vs %s" % (e["path"], e["range"], [lo, hi]))
        compare_levels(got, levels(act, lo, hi), e["path"])

    # The report shows each input with its own prediction (top-1 label in
    # the input's summary line) and its own input image.
    import html as htmlmod
    import re
    with open(os.path.join(out, "index.html")) as f:
        page = f.read()
    with open(os.path.join(out, "predictions.json")) as f:
        preds = json.load(f)
    sections = re.findall(r'<details class="in"[^>]*><summary>.*?<b>(.*?)</b><span class="t1">(.*?) [0-9.]+%</span>'
                          r'.*?<img[^>]*src="([^"]+)"', page, re.S)
    check(len(sections) == len(preds), "report has %d input sections for %d predictions" % (len(sections), len(preds)))
    for (path, label, img), p in zip(sections, preds):
        path, label = htmlmod.unescape(path), htmlmod.unescape(label)
        check(path == p["input"] and label == p["top"][0]["label"], "report: %s shows %r, predictions.json says %s %r"
              % (path, label, p["input"], p["top"][0]["label"]))
        stem = os.path.splitext(os.path.basename(path))[0]
        check(img == stem + "/input.png", "report: %s shows image %s" % (path, img))

    # The report in Chromium.
    p = subprocess.run(["/usr/bin/python3", os.path.join(SOURCE_DIR, "test", "report", "check_report.py"), out],
                       capture_output=True, text=True)
    check(p.returncode == 0, "check_report.py: " + p.stdout + p.stderr)


def test_filters_gray():
    cfg = write_config("filters", "  - {layer: conv2, show: filters, colormap: gray}\n")
    out = os.path.join(TMP, "viz_filters")
    shutil.rmtree(out, ignore_errors=True)
    run(["run", cfg, "--input", os.path.join(IMAGES, "0_tshirt.png"), "--out", out, "-q", "--no-report"])
    w = read_safetensors(WEIGHTS)["features.3.weight"]  # [32, 32, 3, 3]
    a = float(np.abs(w).max())
    files = load_manifest(out)
    grid = [e for e in files if e["kind"] == "filters" and e["role"] == "montage"][0]
    check(np.allclose(grid["range"], [-a, a], rtol=1e-6), "filters range %s vs +-%g" % (grid["range"], a))
    img = np.asarray(Image.open(os.path.join(out, grid["path"])))
    # Tiles: 3x3 enlarged to >= 24 px -> scale 8, 1-px separators, 32 columns.
    s = 8
    check(img.shape == (32 * 3 * s + 31, 32 * 3 * s + 31), "grid shape %s" % (img.shape,))
    want = levels(w, -a, a)
    got = np.zeros(w.shape, np.int64)
    for f in range(32):
        for c in range(32):
            y0, x0 = f * (3 * s + 1), c * (3 * s + 1)
            tile = img[y0:y0 + 3 * s, x0:x0 + 3 * s]
            got[f, c] = tile[::s, ::s]
            check(np.all(tile == np.repeat(np.repeat(tile[::s, ::s], s, 0), s, 1)),
                  "tile %d,%d is a nearest-neighbour enlargement" % (f, c))
    compare_levels(got, want, "conv2 filters")
    check(np.all(img[3 * s, :] == 255), "separator row is 255")


def test_scopes():
    three = [os.path.join(IMAGES, f) for f in sorted(os.listdir(IMAGES))[:3]]
    taps = ("  - {layer: conv3, show: activations, normalize: per-layer}\n"
            "  - {layer: pool1, show: activations, normalize: global}\n"
            "  - {layer: conv4, show: activations, normalize: global, clip: [1, 99]}\n"
            "  - {layer: pool2, show: activations, range: [-1, 2]}\n"
            "  - {layer: conv1, show: activations, clip: [0.5, 99.5], normalize: per-layer}\n"
            "  - {layer: conv2, show: activations, signed: true}\n")
    cfg = write_config("scopes", taps)
    out = os.path.join(TMP, "viz_scopes")
    shutil.rmtree(out, ignore_errors=True)
    args = ["run", cfg, "--out", out, "-q", "--npy"]
    for p in three:
        args += ["--input", p]
    run(args)
    files = load_manifest(out)
    stems = [os.path.splitext(os.path.basename(p))[0] for p in three]
    acts = {s: {} for s in stems}
    for s in stems:
        for layer in ["conv1", "conv2", "conv3", "conv4", "pool1", "pool2"]:
            acts[s][layer] = np.load(os.path.join(out, s, layer, "activations.npy"))

    def montage(layer, stem):
        return [e for e in files if e["kind"] == "activations" and e["role"] == "montage" and e["layer"] == layer
                and e["path"].startswith(stem + "/")][0]

    def channels(layer, stem):
        return [e for e in files if e["kind"] == "activations" and e["role"] == "channel" and e["layer"] == layer
                and e["path"].startswith(stem + "/")]

    for s in stems:
        a = acts[s]["conv3"]
        m = montage("conv3", s)
        check(m["normalize"] == "per-layer" and np.allclose(m["range"], [a.min(), a.max()], rtol=1e-6),
              "per-layer range %s" % m["range"])
        for e in channels("conv3", s)[::9]:
            compare_levels(np.asarray(Image.open(os.path.join(out, e["path"]))), levels(a[e["channel"]], a.min(), a.max()),
                           e["path"])
        m = montage("pool2", s)
        check(m["normalize"] == "fixed" and m["range"] == [-1, 2], "fixed range %s" % m["range"])
        a = acts[s]["conv2"]
        e = channels("conv2", s)[5]
        am = float(np.abs(a[5]).max())
        check(np.allclose(e["range"], [-am, am], rtol=1e-6), "signed per-channel range %s vs %g" % (e["range"], am))
        check(e["colormap"] == "rdbu", "signed activations default to rdbu")
        # clip per-layer: percentiles within one bin of numpy's.
        a = acts[s]["conv1"]
        m = montage("conv1", s)
        width = (a.max() - a.min()) / BINS
        want = np.percentile(a, [0.5, 99.5])
        check(abs(m["range"][0] - want[0]) <= 1.01 * width and abs(m["range"][1] - want[1]) <= 1.01 * width,
              "clip range %s vs numpy %s (bin %g)" % (m["range"], want, width))
    # global: one range across all inputs.
    allp = np.stack([acts[s]["pool1"] for s in stems])
    for s in stems:
        m = montage("pool1", s)
        check(np.allclose(m["range"], [allp.min(), allp.max()], rtol=1e-6), "global range %s vs %s" % (m["range"], [allp.min(), allp.max()]))
        for e in channels("pool1", s)[::11]:
            check(e["range"] == m["range"], "global: channel range equals the montage's")
    allc = np.stack([acts[s]["conv4"] for s in stems])
    width = (allc.max() - allc.min()) / BINS
    want = np.percentile(allc, [1, 99])
    for s in stems:
        m = montage("conv4", s)
        check(abs(m["range"][0] - want[0]) <= 1.01 * width and abs(m["range"][1] - want[1]) <= 1.01 * width,
              "global clip range %s vs numpy %s" % (m["range"], want))


def test_hostile_names_and_errors():
    # Layer names with '/' are refused by the config; '..' is a legal name
    # and must still not climb out of --out.
    cfg = write_config("evil", "  - {layer: .., show: activations}\n", ("{name: pool1,", "{name: ..,"))
    with open(cfg) as f:
        text = f.read()
    with open(cfg, "w") as f:
        f.write(text.replace("{name: conv3,", "{name: conv3, in: ..,"))
    base = os.path.join(TMP, "viz_evil")
    shutil.rmtree(base, ignore_errors=True)
    out = os.path.join(base, "out")
    run(["run", cfg, "--input", os.path.join(IMAGES, "1_trouser.png"), "--out", out, "-q"])
    check(sorted(os.listdir(base)) == ["out"], "nothing outside --out: %s" % os.listdir(base))
    paths = [e["path"] for e in load_manifest(out)]
    for p in paths:
        check(".." not in p.split("/"), "sanitised path: " + p)
    check("1_trouser/_../activations.png" in paths, "'..' becomes '_..': %s" % paths[:5])
    cfg = write_config("evil2", "", ("{name: pool1,", "{name: ../evil,"))
    p = run(["run", cfg, "--input", IMAGES, "--out", out, "-q"], expect=2)
    check("may only use letters" in p.stderr, "'/' in a layer name is refused: %r" % p.stderr)

    for taps, msg in [("  - {layer: fc1, show: filters}\n", "'filters' needs a conv2d layer"),
                      ("  - {layer: conv1, show: weights}\n", "'weights' needs a linear layer"),
                      ("  - {layer: fc2, show: weights, units: 4}\n", "'units' needs"),
                      ("  - {layer: conv1, show: occlusion}\n", "explains the input"),
                      ("  - {layer: input, show: gradcam}\n", "needs a layer with spatial maps"),
                      ("  - {layer: conv1, show: saliency}\n", "use layer: input"),
                      ("  - {layer: conv4, show: gradcam, reduce: paper}\n", "'reduce' applies to smoothgrad"),
                      ("  - {layer: input, show: smoothgrad, reduce: mean}\n", "unknown reduce 'mean'"),
                      ("  - {layers: [conv3, conv4], show: scorecam}\n", "'layers' (one map fused"),
                      ("  - {layers: [conv4, fc1], show: gradcam}\n", "needs layers with spatial maps"),
                      ("  - {layers: [conv4, conv4], show: gradcam}\n", "names conv4 twice"),
                      ("  - {layer: conv4, layers: [conv4], show: gradcam}\n", "not both"),
                      ("  - {layer: input, show: rise, keep: 1.5}\n", "'keep' must be in (0, 1]"),
                      ("  - {layer: input, show: rise, cells: 29}\n", "29 cells a side"),
                      ("  - {layer: input, show: lime, segments: 1}\n", "'segments'"),
                      ("  - {layer: input, show: lime, kernel_width: 0}\n", "'kernel_width' must be > 0"),
                      ("  - {layer: input, show: kernelshap, kernel_width: 0.5}\n", "applies to lime"),
                      ("  - {layer: input, show: occlusion, cells: 4}\n", "apply to rise")]:
        cfg = write_config("bad", taps)
        p = run(["run", cfg, "--input", IMAGES, "--out", os.path.join(TMP, "viz_bad"), "-q"], expect=2)
        check(msg in p.stderr and (cfg + ":") in p.stderr and p.stderr.count("\n") == 1,
              "error names the position: %r" % p.stderr)


def main():
    os.makedirs(TMP, exist_ok=True)
    for t in [test_shipped, test_filters_gray, test_scopes, test_hostile_names_and_errors]:
        t()
    print("test_viz: %d passed, %d failed" % (checks - len(failures), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
