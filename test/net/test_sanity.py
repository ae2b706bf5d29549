#!/usr/bin/python3
"""--sanity N, the model randomisation check of Adebayo et al. 2018, against
a float64 reference written here:

  * the cascade: the top N conv / linear layers of the Fashion-MNIST model
    (fc2, fc1, conv4 for N = 3), top first, each step keeping the layers
    above it random;
  * random weights: N(0, sd^2), sd the layer's own weights' population
    standard deviation, from the tool's generator as pipeline/sanity.c
    documents it (Philox2x32-10 of (weight index, layer index), key
    0x5a17, Box-Muller), rounded to float32; biases kept;
  * the maps recomputed here in float64 for the same target class (the
    original model's top class): saliency max_c |dy/dx|, Grad-CAM on conv4
    upsampled bilinearly to the input;
  * Spearman's rho (ties share their mean rank) of each step's map with the
    original one: the tool's within 1e-3 of the reference (measured
    1.5e-5 at most: float32 maps reorder a few near-equal pixels).
Also: the maps drawn with --sanity are byte-identical to a run without it,
for every input of a run in batches of one (the weights are put back after
each batch); the manifest and the report carry the correlations; a network
with fewer conv / linear layers than asked, and --sanity without
attribution maps, exit 2 with one line.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import netref  # noqa: E402
from checks import check, failures  # noqa: E402
import checks  # noqa: E402
import test_attribution as ta  # noqa: E402
import test_networks as tn  # noqa: E402
import test_road as tr  # noqa: E402

BIN = ta.BIN
IMAGES = ["9_ankle_boot", "2_pullover", "7_sneaker"]
N = 3
TOL = 1e-3


def mean_ranks(v):
    v = np.asarray(v, dtype=np.float64).ravel()
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    sv = v[order]
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and sv[j + 1] == sv[i]:
            j += 1
        r[order[i:j + 1]] = 0.5 * (i + j) + 1
        i = j + 1
    return r


def spearman(a, b):
    return float(np.corrcoef(mean_ranks(a), mean_ranks(b))[0, 1])


def random_weights(w, li):
    """The tool's random replacement of weights w (float32, file layout) of
    graph layer li."""
    n = w.size
    sd = float(np.sqrt(max(np.mean(w.astype(np.float64) ** 2) - np.mean(w.astype(np.float64)) ** 2, 0.0)))
    i = np.arange(n, dtype=np.uint64)
    r0, r1 = ta.philox2x32_10(i, np.full(n, li, dtype=np.uint64), 0x5A17)
    u1 = ((r0 >> np.uint64(8)) + 1).astype(np.float64) / 2.0 ** 24
    u2 = (r1 >> np.uint64(8)).astype(np.float64) / 2.0 ** 24
    return (sd * np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32).reshape(w.shape)


def maps(cfg, sd, x, cls):
    """float64 saliency and Grad-CAM (conv4) maps at the input's size."""
    xi = x.clone().requires_grad_(True)
    outs = {}
    y, _ = netref.run_config(cfg["layers"], sd, xi, outs_out=outs)
    A = outs["conv4"]
    A.retain_grad()
    y[0, cls].backward()
    sal = xi.grad[0].abs().amax(0).numpy()
    a, g = A[0].detach(), A.grad[0]
    cam = torch.relu((g.mean((1, 2))[:, None, None] * a).sum(0))
    cam = F.interpolate(cam[None, None], size=x.shape[2:], mode="bilinear", align_corners=False)[0, 0].numpy()
    return {"saliency": sal, "gradcam": cam}


def main():
    work = tn.work_dir()
    src = tn.source_dir()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    cfg_path = os.path.join(src, "configs", "fashion_mnist.yaml")
    with open(cfg_path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    sd32, _ = netref.load_safetensors(os.path.join(src, "samples", "fashion_mnist", "fashion_mnist.safetensors"))
    imgs = [os.path.join(src, "samples", "fashion_mnist", "images", s + ".png") for s in IMAGES]
    base = [BIN, "run", cfg_path] + tr.inputs(imgs) + ["--no-taps", "--tap", "input:saliency", "--tap",
                                                      "conv4:gradcam", "--npy", "-q", "--batch", "1"]
    plain, sane = os.path.join(work, "sanity_plain"), os.path.join(work, "sanity_run")
    p = subprocess.run(base + ["--out", plain], capture_output=True, text=True)
    check(p.returncode == 0, "plain run: exit %d: %s" % (p.returncode, p.stderr))
    p = subprocess.run(base + ["--out", sane, "--sanity", str(N)], capture_output=True, text=True)
    check(p.returncode == 0, "--sanity run: exit %d: %s" % (p.returncode, p.stderr))
    if failures:
        sys.exit(1)
    # the cascade's layers, top first, and their graph indices
    wl = [(i, d) for i, d in enumerate(cfg["layers"]) if d["op"] in ("conv2d", "linear")][::-1][:N]
    with open(os.path.join(sane, "manifest.json")) as f:
        files = json.load(f)["files"]
    worst = 0.0
    for stem in IMAGES:
        for kind in ("saliency", "gradcam"):
            e = [f for f in files if f.get("kind") == kind and f.get("role") == "map" and
                 f["path"].startswith(stem + "/")]
            check(len(e) == 1 and "sanity" in e[0], "%s %s: a map entry with sanity" % (stem, kind))
            if len(e) != 1 or "sanity" not in e[0]:
                continue
            e = e[0]
            check([s["randomized"] for s in e["sanity"]] == [d["name"] for _, d in wl],
                  "%s %s: layers %s, want %s" % (stem, kind, e["sanity"], [d["name"] for _, d in wl]))
            cls = e["class"]
            npy = e["path"][:-4] + ".npy"
            a, b = np.load(os.path.join(plain, npy)), np.load(os.path.join(sane, npy))
            check(a.tobytes() == b.tobytes(), "%s %s: the map drawn with --sanity differs from the plain run's" %
                  (stem, kind))
            x = tr.load_input(cfg, stem)
            sd = {k: v.double() for k, v in sd32.items()}
            ref0 = maps(cfg, sd, x, cls)[kind]
            rhos = []
            for step, (li, d) in enumerate(wl):
                key = d["params"] + ".weight"
                sd[key] = torch.from_numpy(random_weights(sd32[key].numpy(), li)).double()
                rhos.append(spearman(ref0, maps(cfg, sd, x, cls)[kind]))
            got = [s["spearman"] for s in e["sanity"]]
            err = max(abs(g - r) for g, r in zip(got, rhos))
            worst = max(worst, err)
            tn.log("  %s %s (class %d): rho %s, reference %s" % (stem, kind, cls, [round(g, 4) for g in got],
                                                                 [round(r, 4) for r in rhos]))
            check(err <= TOL, "%s %s: rho %s, reference %s" % (stem, kind, got, rhos))
    tn.log("  worst |rho - reference| %.2e (tolerance %g)" % (worst, TOL))
    with open(os.path.join(sane, "index.html"), encoding="utf-8") as f:
        page = f.read()
    check(len(re.findall(r">randomised: fc2 ", page)) == 2 * len(IMAGES), "report: a randomised line per map")
    with open(os.path.join(sane, "manifest.json")) as f:
        check(json.load(f)["run"]["settings"]["sanity"] == N, "run record: sanity %d" % N)
    # refused with one line
    for args, what in ((["--sanity", "9"], "only 6 conv and linear layers"),
                       (["--no-taps", "--tap", "conv1:filters", "--sanity", "1"], "no attribution maps")):
        p = subprocess.run([BIN, "run", cfg_path, "--input", imgs[0], "--out", os.path.join(work, "sanity_bad")] +
                           args, capture_output=True, text=True)
        lines = p.stderr.strip().splitlines()
        check(p.returncode == 2 and len(lines) == 1 and what in lines[0],
              "%s: exit %d, %r" % (" ".join(args), p.returncode, p.stderr))
    checks.finish("test_sanity")


if __name__ == "__main__":
    main()
