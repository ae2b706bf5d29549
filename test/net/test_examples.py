#!/usr/bin/python3
"""show: examples (dataset examples) against a float64 PyTorch reference:

  * the Fashion-MNIST model over the first 2,000 test images of Debian's
    dataset-fashion-mnist, as 8-bit PNGs: for conv4 (all 64 channels, top 9
    by the channel's max), pool1 (top 5 by the channel's mean) and fc1 (a
    flat layer: its first 8 units, top 3), each channel's list in
    examples.json against the one ranked here from the layers' float64
    outputs: the value at every rank within VTOL of the reference's value
    at that rank, each chosen input's own reference value that close to it
    too (near ties may swap inputs; the count of exact matches is printed),
    and the position the value of the maximum (the reference's value there
    within VTOL of its maximum);
  * the crop box of every example equals the analytic receptive field:
    start = y * J - P, size R, from the conv / pool strides, pads, kernels
    and dilations written here as formulas (a flat layer: the whole image);
  * the crops: the montage's tile of each example of conv4 channel 0 is
    the input image cut to the box (grey outside it) and enlarged by the
    whole factor that brings it to 48 pixels; each channel's PNG is its row;
  * a small graph with a strided, padded conv, a padded max-pool, a dilated
    conv and a residual add of a 1x1 stride-2 shortcut: the boxes of the add
    equal the union of the two paths' analytic fields;
  * the manifest lists the files, the report has a Features section;
  * hostile keys (top: 0, top: 65, by: median) and examples with --shard
    exit 2 with one line.
VTOL: 1e-4 * (1 + |v|) (float32 activations; measured at most 2.0e-5 on
fc1, whose values reach 20, 4.6e-6 on conv4).
"""
import gzip
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import yaml
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import netref  # noqa: E402
from checks import check, failures  # noqa: E402
import checks  # noqa: E402
import test_networks as tn  # noqa: E402

SRC = tn.source_dir()
BIN = os.environ.get("CNNVIZ_BIN") or os.path.join(SRC, "build", "cnnviz-cl")
DATASET = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
N_IMAGES = 2000


def vtol(v):
    return 1e-4 * (1 + abs(v))


def work_dir():
    d = os.path.join(os.environ.get("TMPDIR", "/tmp"), "cnnviz_test_examples_%d" % os.getpid())
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def run(args, expect=0):
    p = subprocess.run([BIN] + args, capture_output=True, text=True)
    if p.returncode != expect:
        print(p.stdout[-3000:], p.stderr[-3000:], file=sys.stderr)
    return p


def analytic_field(stack, y, x):
    """The receptive field of (y, x) through a chain of (kernel, stride, pad,
    dilation) layers, first layer first: size R = 1 + sum (k-1) d J_before,
    jump J = prod s, start = y J - sum p J_before."""
    J, R, P = 1, 1, 0
    for k, s, p, d in stack:
        R += (k - 1) * d * J
        P += p * J
        J *= s
    return [y * J - P, x * J - P, y * J - P + R - 1, x * J - P + R - 1]


def geometry(spec):
    """(kernel, stride, pad, dilation) of a conv or pool layer's keys."""
    k = spec.get("kernel", 1)
    s = spec.get("stride", 1 if spec["op"] == "conv2d" else k)
    return (k, s, spec.get("pad", 0), spec.get("dilation", 1))


def ranked(values, top):
    """[(value, index)] best first: larger values, then the earlier input."""
    order = sorted(range(len(values)), key=lambda i: (-values[i], i))
    return [(float(values[i]), i) for i in order[:top]]


def check_lists(name, got, acts, by, top, n_ch, stacks, whole):
    """got: examples.json; acts: float64 [N, C, H, W] or [N, C]."""
    N = acts.shape[0]
    flat = acts.ndim == 2
    a = acts.reshape(N, acts.shape[1], -1)
    vals = a.mean(axis=2) if by == "mean" else a.max(axis=2)
    check(got["inputs"] == N and got["top"] == top and got["by"] == by and len(got["channels"]) == n_ch,
          "%s: header %s" % (name, {k: got[k] for k in ("inputs", "top", "by")}))
    exact = total = worst = 0
    H, W = (1, 1) if flat else acts.shape[2:]
    for c in range(n_ch):
        ref = ranked(vals[:, c], top)
        ex = got["channels"][c]["examples"]
        check(got["channels"][c]["channel"] == c and len(ex) == len(ref), "%s c%d: %d examples" % (name, c, len(ex)))
        seen = set()
        for r, (e, (rv, ri)) in enumerate(zip(ex, ref)):
            total += 1
            exact += e["index"] == ri
            k = e["index"]
            worst = max(worst, abs(e["value"] - rv), abs(vals[k, c] - rv))
            check(abs(e["value"] - rv) <= vtol(rv) and abs(vals[k, c] - rv) <= vtol(rv) and k not in seen,
                  "%s c%d rank %d: input %d value %.7g (its reference %.7g); reference rank: input %d %.7g"
                  % (name, c, r, k, e["value"], vals[k, c], ri, rv))
            seen.add(k)
            check(os.path.basename(e["input"]) == "t%05d.png" % k or not e["input"].endswith(".png"),
                  "%s: input path %s for index %d" % (name, e["input"], k))
            y, x = e["y"], e["x"]
            check(0 <= y < H and 0 <= x < W, "%s c%d rank %d: position %d,%d" % (name, c, r, y, x))
            if not flat:
                mx = a[k, c].max()
                check(abs(acts[k, c, y, x] - mx) <= vtol(mx),
                      "%s c%d rank %d: value at (%d, %d) %.7g, maximum %.7g" % (name, c, r, y, x,
                                                                                 acts[k, c, y, x], mx))
            box = whole if flat else analytic_field(stacks, y, x)
            check(e["box"] == box, "%s c%d rank %d: box %s, analytic %s" % (name, c, r, e["box"], box))
    print("%s: %d of %d examples the reference's input at their rank, worst value difference %.2g"
          % (name, exact, total, worst))
    check(exact >= 0.95 * total, "%s: only %d of %d examples match the reference's input" % (name, exact, total))


def tile_of(mont, th, tw, c, r):
    y0, x0 = c * (th + 2), r * (tw + 2)
    return mont[y0:y0 + th, x0:x0 + tw]


def expected_tile(img, box, f):
    h, w = img.shape
    bh, bw = box[2] - box[0] + 1, box[3] - box[1] + 1
    t = np.full((bh, bw), 128, np.uint8)
    for yy in range(bh):
        for xx in range(bw):
            sy, sx = box[0] + yy, box[1] + xx
            if 0 <= sy < h and 0 <= sx < w:
                t[yy, xx] = img[sy, sx]
    return np.kron(t, np.ones((f, f), np.uint8))


def fashion(work):
    with gzip.open(DATASET) as f:
        imgs = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:N_IMAGES]
    png = os.path.join(work, "png")
    os.makedirs(png)
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(os.path.join(png, "t%05d.png" % i))
    src = os.path.join(SRC, "configs", "fashion_mnist.yaml")
    cfg = yaml.safe_load(open(src))
    cfg["model"]["weights"] = os.path.join(SRC, "configs", cfg["model"]["weights"])
    cfg["model"]["labels"] = os.path.join(SRC, "configs", cfg["model"]["labels"])
    cfg["taps"] = [{"layer": "conv4", "show": "examples", "max_channels": 64},
                   {"layer": "pool1", "show": "examples", "by": "mean", "top": 5, "max_channels": 32},
                   {"layer": "fc1", "show": "examples", "top": 3, "max_channels": 8}]
    cfg_path = os.path.join(work, "fashion.yaml")
    yaml.safe_dump(cfg, open(cfg_path, "w"))
    out = os.path.join(work, "out")
    p = run(["run", cfg_path, "--input", png, "--batch", "50", "--out", out, "-q"])
    check(p.returncode == 0, "fashion run: exit %d" % p.returncode)
    if p.returncode:
        return

    sd = {k: v.double() for k, v in netref.load_safetensors(cfg["model"]["weights"])[0].items()}
    x = ((torch.from_numpy(imgs.astype(np.float64)) / 255.0 - 0.2860) / 0.3530)[:, None]
    outs = {"conv4": [], "pool1": [], "fc1": []}
    with torch.no_grad():
        for i in range(0, N_IMAGES, 250):
            o = {}
            netref.run_config(cfg["layers"], sd, x[i:i + 250], outs_out=o)
            for k in outs:
                outs[k].append(o[k].numpy())
    acts = {k: np.concatenate(v) for k, v in outs.items()}
    layers = {l["name"]: l for l in cfg["layers"]}
    chain = ["conv1", "conv2", "pool1", "conv3", "conv4"]
    stacks = {"conv4": [geometry(layers[n]) for n in chain], "pool1": [geometry(layers[n]) for n in chain[:3]]}
    whole = [0, 0, 27, 27]
    ex = {}
    for name, by, top, n_ch in (("conv4", "max", 9, 64), ("pool1", "mean", 5, 32), ("fc1", "max", 3, 8)):
        path = os.path.join(out, "model", name, "examples.json")
        check(os.path.isfile(path), "%s missing" % path)
        if not os.path.isfile(path):
            continue
        ex[name] = json.load(open(path))
        check_lists(name, ex[name], acts[name], by, top, n_ch, stacks.get(name), whole)

    # the crops of conv4's channel 0, and each channel's PNG is its row
    if "conv4" in ex:
        mont = np.asarray(Image.open(os.path.join(out, "model", "conv4", "examples.png")))
        f = -(-48 // 14)
        th = tw = 14 * f
        check(mont.shape == (64 * th + 63 * 2, 9 * tw + 8 * 2), "conv4 montage shape %s" % (mont.shape,))
        for r, e in enumerate(ex["conv4"]["channels"][0]["examples"]):
            want = expected_tile(imgs[e["index"]], e["box"], f)
            got = tile_of(mont, th, tw, 0, r)
            check(got.shape == want.shape and np.array_equal(got, want),
                  "conv4 c0 rank %d: crop differs from the image cut to %s (%d pixels)"
                  % (r, e["box"], int((got != want).sum()) if got.shape == want.shape else -1))
        for c in (0, 17, 63):
            row = np.asarray(Image.open(os.path.join(out, "model", "conv4", "examples", "c%03d.png" % c)))
            check(np.array_equal(row, mont[c * (th + 2):c * (th + 2) + th]), "conv4 c%03d.png is not row %d" % (c, c))

    man = json.load(open(os.path.join(out, "manifest.json")))
    kinds = {}
    for e in man["files"]:
        if e.get("kind") == "examples":
            kinds.setdefault((e["layer"], e.get("role")), []).append(e)
    check(len(kinds.get(("conv4", "montage"), [])) == 1 and len(kinds.get(("conv4", "channel"), [])) == 64 and
          len(kinds.get(("conv4", "values"), [])) == 1 and len(kinds.get(("fc1", "channel"), [])) == 8,
          "manifest examples entries: %s" % {k: len(v) for k, v in kinds.items()})
    html = open(os.path.join(out, "index.html")).read()
    check('id="features"' in html and "model/conv4/examples.png" in html, "report: no Features section")


DAG = """
version: 1
model:
  name: dag
  weights: dag.safetensors
  input: {shape: [1, 32, 32], color: gray, resize: none, scale: 0.00392156862745098, mean: [0.5], std: [0.25]}
layers:
  - {name: c1, op: conv2d, out: 4, kernel: 5, stride: 2, pad: 2, params: c1}
  - {name: r1, op: relu}
  - {name: p1, op: maxpool, kernel: 3, stride: 2, pad: 1}
  - {name: c2, op: conv2d, out: 4, kernel: 3, pad: 2, dilation: 2, params: c2}
  - {name: c3, op: conv2d, out: 4, kernel: 3, stride: 2, pad: 1, params: c3}
  - {name: sc, op: conv2d, in: p1, out: 4, kernel: 1, stride: 2, params: sc}
  - {name: add, op: add, in: [c3, sc]}
  - {name: relu, op: relu}
  - {name: gap, op: global_avgpool}
  - {name: flatten, op: flatten}
  - {name: fc, op: linear, out: 3, params: fc}
taps:
  - {layer: add, show: examples, top: 4, max_channels: 4}
  - {layer: c2, show: examples, top: 2}
"""


def dag(work):
    d = os.path.join(work, "dag")
    os.makedirs(os.path.join(d, "png"))
    g = torch.Generator().manual_seed(7)
    sd = {}
    for n, shape in (("c1", (4, 1, 5, 5)), ("c2", (4, 4, 3, 3)), ("c3", (4, 4, 3, 3)), ("sc", (4, 4, 1, 1)),
                     ("fc", (3, 4))):
        sd[n + ".weight"] = torch.randn(shape, generator=g) * 0.5
        sd[n + ".bias"] = torch.randn(shape[0], generator=g) * 0.1
    netref.save_safetensors(sd, os.path.join(d, "dag.safetensors"))
    open(os.path.join(d, "dag.yaml"), "w").write(DAG)
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, (40, 32, 32), dtype=np.uint8)
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(os.path.join(d, "png", "t%05d.png" % i))
    out = os.path.join(d, "out")
    p = run(["run", os.path.join(d, "dag.yaml"), "--input", os.path.join(d, "png"), "--out", out, "-q",
             "--batch", "8"])
    check(p.returncode == 0, "dag run: exit %d" % p.returncode)
    if p.returncode:
        return
    cfg = yaml.safe_load(DAG)
    layers = {l["name"]: l for l in cfg["layers"]}
    x = ((torch.from_numpy(imgs.astype(np.float64)) / 255.0 - 0.5) / 0.25)[:, None]
    o = {}
    with torch.no_grad():
        netref.run_config(cfg["layers"], {k: v.double() for k, v in sd.items()}, x, outs_out=o)
    main = [geometry(layers[n]) for n in ("c1", "p1", "c2", "c3")]
    short = [geometry(layers[n]) for n in ("c1", "p1", "sc")]
    for name, top, n_ch in (("add", 4, 4), ("c2", 2, 4)):
        got = json.load(open(os.path.join(out, "model", name, "examples.json")))
        acts = o[name].numpy()
        if name == "c2":
            check_lists(name, got, acts, "max", top, n_ch, main[:3], None)
            continue
        # the union of the two paths' fields
        for c in range(n_ch):
            for e in got["channels"][c]["examples"]:
                a = analytic_field(main, e["y"], e["x"])
                b = analytic_field(short, e["y"], e["x"])
                want = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                if want[0] <= 0 and want[2] >= 31:
                    want[0], want[2] = 0, 31
                if want[1] <= 0 and want[3] >= 31:
                    want[1], want[3] = 0, 31
                check(e["box"] == want, "add c%d: box %s, analytic union %s" % (c, e["box"], want))
        vals = acts.reshape(40, 4, -1).max(axis=2)
        for c in range(n_ch):
            ref = ranked(vals[:, c], top)
            for e, (rv, ri) in zip(got["channels"][c]["examples"], ref):
                check(abs(e["value"] - rv) <= vtol(rv), "add c%d: value %.7g, reference %.7g" % (c, e["value"], rv))


def hostile(work):
    d = os.path.join(work, "dag")
    base = open(os.path.join(d, "dag.yaml")).read().split("taps:")[0]
    for bad, words in (("{layer: add, show: examples, top: 0}", "'top'"),
                       ("{layer: add, show: examples, top: 65}", "'top' must be 1 to 64"),
                       ("{layer: add, show: examples, by: median}", "by")):
        path = os.path.join(d, "bad.yaml")
        open(path, "w").write(base + "taps:\n  - " + bad + "\n")
        p = run(["run", path, "--input", os.path.join(d, "png", "t00000.png"), "--out", os.path.join(d, "bad")], 2)
        lines = p.stderr.strip().splitlines()
        check(p.returncode == 2 and len(lines) == 1 and "bad.yaml:" in p.stderr and words in p.stderr,
              "%s: exit %d, %r" % (bad, p.returncode, p.stderr))
    p = run(["run", os.path.join(d, "dag.yaml"), "--input", os.path.join(d, "png"), "--shard", "0/2", "--out",
             os.path.join(d, "shard")], 2)
    check(p.returncode == 2 and "--shard" in p.stderr and len(p.stderr.strip().splitlines()) == 1,
          "examples with --shard: exit %d, %r" % (p.returncode, p.stderr))
    check(not os.path.exists(os.path.join(d, "shard", "manifest.json")), "a refused run wrote a manifest")


def main():
    if not os.path.isfile(DATASET):
        raise SystemExit("test_examples: %s not found (Debian's dataset-fashion-mnist)" % DATASET)
    work = work_dir()
    fashion(work)
    dag(work)
    hostile(work)
    if not failures:
        shutil.rmtree(work, ignore_errors=True)
    checks.finish("test_examples")


if __name__ == "__main__":
    main()
