#!/usr/bin/python3
"""show: maximize (activation maximisation) on the Fashion-MNIST model:

  * the objective values in maximize.json against PyTorch in float64 on the
    images the run wrote (maximize.npy): a channel's mean (conv4), the
    centre position with sign -1 (objective: neuron), a unit (fc2), within
    1e-4 * (1 + |v|) (the tool measures in float32);
  * each channel's PNG is its .npy image rounded to 8 bits, and the montage
    holds every tile;
  * the same seed gives byte-identical PNGs and .npy twice; another seed
    other images;
  * the objective rises: the mean of the curve's last quarter above its
    first quarter for every channel, and the final value above the first
    step's;
  * blur every k steps (Fourier and pixel parameters) in the runs above;
  * class images: the 10 units of fc2 (the logits), 256 steps: the model
    gives each PNG its class with probability >= 0.9 (PyTorch, float64);
    `class: Sneaker` makes that class's image alone (64 steps, >= 0.9 too);
  * diversity: K images per channel: the gradient of the channel means minus
    the weighted Gram similarities exact (the sign of one Adam step against
    PyTorch's float64 gradient, for >= 99.9 % of the pixels whose gradient
    is above 1e-3 of the largest), values and similarity against PyTorch
    on the images, and the term lowers the similarity;
  * the fast gradient mode of a maximize run (Winograd forward, a 3x3
    stride-1 conv's input gradient as a forward convolution where that
    input has no other reader) on a residual net with padding 0, 1 and 2
    and a strided conv: the same sign test;
  * size: [40, 36]: the layers up to conv4 built at that size beside a tap
    at the network's size in the same run: the images' shape, the values
    against PyTorch on them (the layers up to the tap), the PNGs' size;
  * decorrelate: inputs on a seeded RGB net: the colour matrix against
    numpy's eigen-decomposition of the input PNGs' colour covariance
    (1e-5), and the colours of the image after one tiny step correlated as
    the matrix says (within 0.1), for the inputs' matrix and ImageNet's;
    without --input it exits 2;
  * a run of maximize taps needs no --input; the report has a Features
    section, with a row per channel that has both an optimised image and
    dataset examples (and `channels:` picks the examples' channels); the
    manifest lists the files;
  * hostile keys and maximize with --shard exit 2 with one line.
The gradients of the steps themselves are checked in test/unit/test_featvis.c.
"""
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
from checks import check  # noqa: E402
import checks  # noqa: E402
import test_networks as tn  # noqa: E402

SRC = tn.source_dir()
BIN = os.environ.get("CNNVIZ_BIN") or os.path.join(SRC, "build", "cnnviz-cl")


def work_dir():
    d = os.path.join(os.environ.get("TMPDIR", "/tmp"), "cnnviz_test_maximize_%d" % os.getpid())
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def fashion_config(work, taps, name="mx.yaml"):
    cfg = yaml.safe_load(open(os.path.join(SRC, "configs", "fashion_mnist.yaml")))
    cfg["model"]["weights"] = os.path.join(SRC, "configs", cfg["model"]["weights"])
    cfg["model"]["labels"] = os.path.join(SRC, "configs", cfg["model"]["labels"])
    cfg["taps"] = taps
    path = os.path.join(work, name)
    yaml.safe_dump(cfg, open(path, "w"))
    return cfg, path


def run(args, expect=0):
    p = subprocess.run([BIN] + args, capture_output=True, text=True)
    if p.returncode != expect:
        print(p.stdout[-3000:], p.stderr[-3000:], file=sys.stderr)
    return p


def fashion_weights():
    path = os.path.join(SRC, "samples", "fashion_mnist", "fashion_mnist.safetensors")
    return {k: v.double() for k, v in netref.load_safetensors(path)[0].items()}


def reference(cfg, img):
    """Every layer's float64 output for images [N, 1, 28, 28] in [0, 1]."""
    x = (torch.from_numpy(img.astype(np.float64)) - 0.2860) / 0.3530
    o = {}
    with torch.no_grad():
        netref.run_config(cfg["layers"], fashion_weights(), x, outs_out=o)
    return o


def read_run(out, layer):
    d = json.load(open(os.path.join(out, "model", layer, "maximize.json")))
    img = np.load(os.path.join(out, "model", layer, "maximize.npy"))
    return d, img


def objectives(work):
    taps = [{"layer": "conv4", "show": "maximize", "channels": [0, 5, 17], "steps": 64, "seed": 3,
             "blur_every": 16, "blur_sigma": 0.7},
            {"layer": "conv3", "show": "maximize", "channels": [2, 40], "steps": 32, "objective": "neuron",
             "sign": -1, "param": "pixel", "blur_every": 8}]
    cfg, path = fashion_config(work, taps)
    outs = []
    for i, seed_note in enumerate(("a", "b")):
        out = os.path.join(work, "obj_" + seed_note)
        p = run(["run", path, "--out", out, "--npy"])
        check(p.returncode == 0, "maximize run %s: exit %d" % (seed_note, p.returncode))
        outs.append(out)
    if any(not os.path.exists(os.path.join(o, "manifest.json")) for o in outs):
        return
    for layer, chans in (("conv4", [0, 5, 17]), ("conv3", [2, 40])):
        d, img = read_run(outs[0], layer)
        check(d["blur_every"] == (16 if layer == "conv4" else 8) and
              abs(d["blur_sigma"] - (0.7 if layer == "conv4" else 0.5)) < 1e-6,
              "%s: blur settings %s %s" % (layer, d["blur_every"], d["blur_sigma"]))
        check(img.shape == (len(chans), 1, 28, 28) and img.dtype == np.float32 and img.min() >= 0 and img.max() <= 1,
              "%s: maximize.npy %s %s" % (layer, img.shape, img.dtype))
        ref = reference(cfg, img)[layer].numpy()
        for n, c in enumerate(d["channels"]):
            check(c["channel"] == chans[n], "%s: channel %d listed as %d" % (layer, chans[n], c["channel"]))
            if layer == "conv4":
                want = ref[n, chans[n]].mean()
            else:
                want = -ref[n, chans[n], 7, 7]
            check(abs(c["value"] - want) <= 1e-4 * (1 + abs(want)),
                  "%s c%d: value %.7g, PyTorch %.7g" % (layer, chans[n], c["value"], want))
            curve = c["curve"]
            q = max(1, len(curve) // 4)
            check(np.mean(curve[-q:]) > np.mean(curve[:q]) and c["value"] > curve[0],
                  "%s c%d: the objective did not rise: %s -> %.4g" % (layer, chans[n], curve, c["value"]))
            png = np.asarray(Image.open(os.path.join(outs[0], "model", layer, "maximize", "c%03d.png" % chans[n])))
            want8 = np.clip(np.rint(img[n, 0] * 255), 0, 255).astype(np.uint8)
            check(png.shape == (28, 28) and int(np.abs(png.astype(int) - want8).max()) <= 1,
                  "%s c%d: PNG is not the image in 8 bits" % (layer, chans[n]))
        mont = np.asarray(Image.open(os.path.join(outs[0], "model", layer, "maximize.png")))
        cols = int(np.ceil(np.sqrt(len(chans))))
        rows = -(-len(chans) // cols)
        check(mont.shape == (rows * 56 + (rows - 1) * 2, cols * 56 + (cols - 1) * 2),
              "%s: montage shape %s" % (layer, mont.shape))
    # the same seed: the same bytes
    for rel in ("model/conv4/maximize/c005.png", "model/conv4/maximize.npy", "model/conv3/maximize.png"):
        a = open(os.path.join(outs[0], rel), "rb").read()
        b = open(os.path.join(outs[1], rel), "rb").read()
        check(a == b, "%s differs between two runs with the same seed" % rel)
    taps[0]["seed"] = 4
    _, path2 = fashion_config(work, taps, "mx_seed4.yaml")
    out = os.path.join(work, "obj_seed4")
    p = run(["run", path2, "--out", out, "--npy"])
    check(p.returncode == 0, "seed 4 run: exit %d" % p.returncode)
    if p.returncode == 0:
        a = np.load(os.path.join(outs[0], "model", "conv4", "maximize.npy"))
        b = np.load(os.path.join(out, "model", "conv4", "maximize.npy"))
        check(np.abs(a - b).max() > 0.05, "another seed gave the same images")

    man = json.load(open(os.path.join(outs[0], "manifest.json")))
    roles = {}
    for e in man["files"]:
        if e.get("kind") == "maximize":
            roles.setdefault((e["layer"], e.get("role")), 0)
            roles[(e["layer"], e.get("role"))] += 1
    check(roles.get(("conv4", "channel")) == 3 and roles.get(("conv4", "montage")) == 1 and
          roles.get(("conv4", "values")) == 1 and roles.get(("conv4", "tensor")) == 1,
          "manifest maximize entries: %s" % roles)
    html = open(os.path.join(outs[0], "index.html")).read()
    check('id="features"' in html and "model/conv4/maximize.png" in html, "report: no Features section")
    check(not any(os.path.isdir(os.path.join(outs[0], x)) for x in os.listdir(outs[0]) if x != "model"),
          "a run without inputs wrote input folders: %s" % os.listdir(outs[0]))


def sized(work):
    """size: an image of another size than the network's input: the layers
    up to the tap at that size (a non-square one), beside a tap at the
    network's size in the same run; values against PyTorch on the images."""
    taps = [{"layer": "conv4", "show": "maximize", "channels": [0, 9], "steps": 32, "seed": 5, "size": [40, 36]},
            {"layer": "conv3", "show": "maximize", "channels": [1], "steps": 16}]
    cfg, path = fashion_config(work, taps, "sized.yaml")
    out = os.path.join(work, "sized")
    p = run(["run", path, "--out", out, "--npy"])
    check(p.returncode == 0, "sized run: exit %d" % p.returncode)
    if p.returncode:
        return
    names = [ly["name"] for ly in cfg["layers"]]
    for layer, chans, hw in (("conv4", [0, 9], (40, 36)), ("conv3", [1], (28, 28))):
        d, img = read_run(out, layer)
        check(d["size"] == list(hw), "%s: size %s in maximize.json" % (layer, d["size"]))
        check(img.shape == (len(chans), 1) + hw and img.min() >= 0 and img.max() <= 1,
              "%s: maximize.npy %s" % (layer, img.shape))
        if img.shape != (len(chans), 1) + hw:
            continue
        x = (torch.from_numpy(img.astype(np.float64)) - 0.2860) / 0.3530
        o = {}
        part = cfg["layers"][:names.index(layer) + 1]
        pre = tuple(ly["params"] + "." for ly in part if "params" in ly)
        sd = {k: v for k, v in fashion_weights().items() if k.startswith(pre)}
        with torch.no_grad():
            netref.run_config(part, sd, x, outs_out=o)
        ref = o[layer].numpy()
        for n, c in enumerate(d["channels"]):
            want = ref[n, chans[n]].mean()
            check(abs(c["value"] - want) <= 1e-4 * (1 + abs(want)),
                  "sized %s c%d: value %.7g, PyTorch %.7g" % (layer, chans[n], c["value"], want))
            check(c["value"] > c["curve"][0], "sized %s c%d: the objective did not rise: %s -> %.4g" %
                  (layer, chans[n], c["curve"], c["value"]))
            png = np.asarray(Image.open(os.path.join(out, "model", layer, "maximize", "c%03d.png" % chans[n])))
            check(png.shape == hw, "sized %s c%d: PNG %s" % (layer, chans[n], png.shape))


def colour(work):
    """decorrelate: inputs: the colour matrix from the run's images (R and B
    anti-correlated, unlike ImageNet's) against numpy's eigen-decomposition
    of their covariance, and the image's colours after one tiny step (pixel
    parameters N(0, 0.01^2) through the matrix) correlated as the inputs'."""
    torch.manual_seed(4)
    sd = {"c1.weight": torch.randn(16, 3, 3, 3) * 0.3, "c1.bias": torch.randn(16) * 0.1}
    wpath = os.path.join(work, "rgb.safetensors")
    netref.save_safetensors(sd, wpath)
    rng = np.random.default_rng(8)
    cov = np.array([[1.0, 0.3, -0.8], [0.3, 1.0, -0.2], [-0.8, -0.2, 1.0]]) * 0.02
    pix = []
    inputs = []
    for i in range(3):
        x = rng.multivariate_normal([0.5, 0.45, 0.5], cov, size=(32, 32))
        q = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
        pix.append(q.reshape(-1, 3).astype(np.float64) / 255)
        inputs.append(os.path.join(work, "rgb%d.png" % i))
        Image.fromarray(q).save(inputs[-1])
    pix = np.concatenate(pix)
    c = np.cov(pix.T)
    lam, U = np.linalg.eigh(c)
    order = np.argsort(lam)[::-1]
    M = U[:, order] * np.sqrt(np.maximum(lam[order], 0))
    M *= np.where(M.sum(0) < 0, -1, 1)
    M /= np.sqrt((M ** 2).sum(0)).max()
    corr = lambda a: a / np.sqrt(np.outer(np.diag(a), np.diag(a)))  # noqa: E731
    cfg = {"version": 1,
           "model": {"name": "rgb", "weights": wpath,
                     "input": {"shape": [3, 32, 32], "color": "rgb", "resize": "none", "scale": 1 / 255.0,
                               "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}},
           "layers": [{"name": "conv1", "op": "conv2d", "out": 16, "kernel": 3, "pad": 1, "params": "c1"},
                      {"name": "relu1", "op": "relu"}],
           "taps": []}
    want = {"inputs": corr(c)}
    got = {}
    for mode in ("inputs", "imagenet"):
        cfg["taps"] = [{"layer": "relu1", "show": "maximize", "channels": [0, 1, 2, 3], "steps": 1, "lr": 1e-4,
                        "param": "pixel", "transforms": False, "decorrelate": mode}]
        path = os.path.join(work, "rgb_%s.yaml" % mode)
        yaml.safe_dump(cfg, open(path, "w"))
        out = os.path.join(work, "rgb_" + mode)
        p = run(["run", path, "--out", out, "--npy"] + [a for i in inputs for a in ("--input", i)])
        check(p.returncode == 0, "decorrelate %s: exit %d" % (mode, p.returncode))
        if p.returncode:
            return
        d, img = read_run(out, "relu1")
        check(d["colour"] == mode, "decorrelate %s: colour %s in maximize.json" % (mode, d.get("colour")))
        got_m = np.array(d["colour_matrix"])
        if mode == "inputs":
            check(d["colour_pixels"] == len(pix), "colour_pixels %s, want %d" % (d["colour_pixels"], len(pix)))
            err = np.abs(got_m - M).max()
            check(err <= 1e-5, "decorrelate inputs: matrix %s, numpy %s (max error %.3g, bound 1e-5)" %
                  (got_m.tolist(), M.tolist(), err))
        else:
            want["imagenet"] = corr(got_m @ got_m.T)
        mean = np.array([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
        u = np.log(img / (1 - img)) - np.log(mean / (1 - mean))
        got[mode] = corr(np.cov(u.transpose(1, 0, 2, 3).reshape(3, -1)))
    for mode in ("inputs", "imagenet"):
        err = np.abs(got[mode] - want[mode]).max()
        check(err <= 0.1, "decorrelate %s: the image's colour correlations %s, want %s (bound 0.1)" %
              (mode, np.round(got[mode], 3).tolist(), np.round(want[mode], 3).tolist()))
    check(np.abs(want["inputs"] - want["imagenet"]).max() > 0.5, "the test's inputs correlate as ImageNet's")
    cfg["taps"][0]["decorrelate"] = "inputs"
    yaml.safe_dump(cfg, open(path, "w"))
    p = run(["run", path, "--out", os.path.join(work, "rgb_noinput")], 2)
    check(p.returncode == 2 and "--input" in p.stderr and len(p.stderr.strip().splitlines()) == 1,
          "decorrelate: inputs without inputs: exit %d, %r" % (p.returncode, p.stderr))


def grams_cos(a, k):
    """Per image, the sum of the cosine similarities of its Gram matrix to
    those of the other images of its channel (groups of k), from the
    layer's output a [N, C, H, W] (float64)."""
    f = a.reshape(a.shape[0], a.shape[1], -1)
    g = f @ f.transpose(1, 2)
    g = g / g.flatten(1).norm(dim=1).view(-1, 1, 1)
    sims = []
    for n in range(a.shape[0]):
        g0 = (n // k) * k
        sims.append(sum((g[n] * g[j]).sum() for j in range(g0, g0 + k) if j != n))
    return torch.stack(sims)


def diversity(work):
    """diversity: K images per channel.  The gradient, exactly: one Adam
    step from the same start at two learning rates gives the start and the
    sign of d objective / d pixel parameter (Adam's first step is
    lr * g / (|g| + 1e-8)), compared with PyTorch's float64 gradient of
    sum of channel means - w * sum over pairs of Gram cosine similarities.
    Then a longer run: values and similarity against PyTorch on the images,
    and the similarity lower than with diversity_weight: 0."""
    chans, K, w = [5, 17], 3, 50.0
    base = {"layer": "conv4", "show": "maximize", "channels": chans, "diversity": K, "diversity_weight": w,
            "steps": 1, "param": "pixel", "transforms": False, "seed": 9}
    imgs = {}
    for lr in (0.01, 0.02):
        cfg, path = fashion_config(work, [dict(base, lr=lr)], "div_%g.yaml" % lr)
        out = os.path.join(work, "div_%g" % lr)
        p = run(["run", path, "--out", out, "--npy"])
        check(p.returncode == 0, "diversity lr %g: exit %d" % (lr, p.returncode))
        if p.returncode:
            return
        imgs[lr] = np.load(os.path.join(out, "model", "conv4", "maximize.npy")).astype(np.float64)
    check(imgs[0.01].shape == (2 * K, 1, 28, 28), "diversity npy shape %s" % (imgs[0.01].shape,))
    d = json.load(open(os.path.join(work, "div_0.01", "model", "conv4", "maximize.json")))
    check(d["diversity"] == K and abs(d["diversity_weight"] - w) < 1e-6 and
          all(len(c["values"]) == K for c in d["channels"]), "diversity json: %s" % d["channels"][0])
    strip = np.asarray(Image.open(os.path.join(work, "div_0.01", "model", "conv4", "maximize", "c017.png")))
    check(strip.shape == (28, K * 28 + (K - 1) * 2), "channel strip shape %s" % (strip.shape,))
    u0 = np.log(0.2860 / (1 - 0.2860))
    logit = lambda v: np.log(v / (1 - v))  # noqa: E731
    ua, ub = logit(imgs[0.01]) - u0, logit(imgs[0.02]) - u0
    sgn = (ua - ub) / (0.01 - 0.02)
    p0 = torch.from_numpy((ua - 0.01 * sgn).reshape(2 * K, 1, 28, 28)).requires_grad_(True)
    x = (torch.sigmoid(p0 + u0) - 0.2860) / 0.3530
    o = {}
    netref.run_config(cfg["layers"], fashion_weights(), x, outs_out=o)
    a = o["conv4"]
    act = sum(a[n, chans[n // K]].mean() for n in range(2 * K))
    g_act = torch.autograd.grad(act, p0, retain_graph=True)[0].numpy()
    total = act - w * grams_cos(a, K).sum()
    g = torch.autograd.grad(total, p0)[0].numpy().reshape(sgn.shape)
    g_act = g_act.reshape(sgn.shape)
    big = np.abs(g) > 1e-3 * np.abs(g).max()
    agree = float((np.sign(g[big]) == np.sign(sgn[big])).mean())
    agree_act = float((np.sign(g_act[big]) == np.sign(sgn[big])).mean())
    print("diversity gradient: sign agreement %.5f over %d pixels (without the diversity term: %.3f)" %
          (agree, int(big.sum()), agree_act))
    check(agree >= 0.999 and float(np.abs(np.abs(sgn[big]) - 1).max()) < 1e-2,
          "diversity gradient: sign agreement %.5f" % agree)
    check(agree_act < 0.9, "the diversity term moved too few signs to test (%.3f)" % agree_act)

    # a longer run: values, similarity, and the term at work
    sims = {}
    for ww in (0.0, 100.0):
        cfg, path = fashion_config(work, [dict(base, steps=48, lr=0.05, diversity_weight=ww, transforms=True,
                                               param="fourier")], "div_w%g.yaml" % ww)
        out = os.path.join(work, "div_w%g" % ww)
        p = run(["run", path, "--out", out, "--npy"])
        check(p.returncode == 0, "diversity weight %g: exit %d" % (ww, p.returncode))
        if p.returncode:
            return
        img = np.load(os.path.join(out, "model", "conv4", "maximize.npy")).reshape(2 * K, 1, 28, 28)
        d = json.load(open(os.path.join(out, "model", "conv4", "maximize.json")))
        a = reference(cfg, img)["conv4"]
        ref_sim = grams_cos(a, K).numpy()
        for i, c in enumerate(d["channels"]):
            want = [float(a[i * K + k, chans[i]].mean()) for k in range(K)]
            check(all(abs(v - r) <= 1e-4 * (1 + abs(r)) for v, r in zip(c["values"], want)) and
                  abs(c["value"] - max(want)) <= 1e-4 * (1 + max(want)),
                  "diversity c%d values %s, PyTorch %s" % (chans[i], c["values"], want))
            rs = ref_sim[i * K:(i + 1) * K].sum() / (K * (K - 1))
            check(abs(c["similarity"] - rs) <= 1e-4, "c%d similarity %.6f, PyTorch %.6f" % (chans[i], c["similarity"], rs))
        sims[ww] = [c["similarity"] for c in d["channels"]]
    print("diversity: mean pairwise Gram similarity %s without the term, %s with weight 100" % (sims[0.0], sims[100.0]))
    check(all(b < a - 0.05 for a, b in zip(sims[0.0], sims[100.0])),
          "diversity did not lower the similarity: %s -> %s" % (sims[0.0], sims[100.0]))


def fast_backward(work):
    """A maximize run's network takes Winograd in its forward and runs a 3x3
    stride-1 conv's input gradient as a forward convolution where no other
    layer reads that input.  On a small residual net (a fan-out into a conv
    and an add, a strided conv, padding 0, 1 and 2), the sign of one Adam
    step against PyTorch's float64 gradient, as in diversity()."""
    torch.manual_seed(21)
    sd = {"c1.weight": torch.randn(32, 3, 3, 3) * 0.3, "c1.bias": torch.randn(32) * 0.1,
          "c2.weight": torch.randn(32, 32, 3, 3) * 0.1, "c2.bias": torch.randn(32) * 0.1,
          "c3.weight": torch.randn(48, 32, 3, 3) * 0.1, "c3.bias": torch.randn(48) * 0.1,
          "c4.weight": torch.randn(64, 48, 3, 3) * 0.1, "c4.bias": torch.randn(64) * 0.1,
          "c5.weight": torch.randn(64, 64, 3, 3) * 0.1, "c5.bias": torch.randn(64) * 0.1,
          "fc.weight": torch.randn(5, 64) * 0.1, "fc.bias": torch.randn(5) * 0.1}
    wpath = os.path.join(work, "res.safetensors")
    netref.save_safetensors(sd, wpath)
    cfg = {"version": 1,
           "model": {"name": "res_fast", "weights": wpath,
                     "input": {"shape": [3, 32, 32], "color": "rgb", "resize": "none", "scale": 1 / 255.0,
                               "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}},
           "layers": [{"name": "conv1", "op": "conv2d", "out": 32, "kernel": 3, "pad": 1, "params": "c1"},
                      {"name": "relu1", "op": "relu"},
                      {"name": "conv2", "op": "conv2d", "out": 32, "kernel": 3, "pad": 1, "params": "c2"},
                      {"name": "add", "op": "add", "in": ["conv2", "relu1"]},
                      {"name": "relu2", "op": "relu"},
                      {"name": "conv3", "op": "conv2d", "out": 48, "kernel": 3, "pad": 2, "params": "c3"},
                      {"name": "relu3", "op": "relu"},
                      {"name": "conv4", "op": "conv2d", "out": 64, "kernel": 3, "pad": 0, "params": "c4"},
                      {"name": "relu4", "op": "relu"},
                      {"name": "conv5", "op": "conv2d", "out": 64, "kernel": 3, "pad": 1, "stride": 2,
                       "params": "c5"},
                      {"name": "relu5", "op": "relu"},
                      {"name": "gap", "op": "global_avgpool"},
                      {"name": "flatten", "op": "flatten"},
                      {"name": "fc", "op": "linear", "out": 5, "params": "fc"}],
           "taps": []}
    chans = [3, 40]
    imgs = {}
    rgb = os.path.join(work, "res_in.png")
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(rgb)
    # "exact": a saliency tap in the run makes its network the exact kind
    for lr, exact in ((0.01, False), (0.02, False), (0.01, True)):
        cfg["taps"] = [{"layer": "relu5", "show": "maximize", "channels": chans, "steps": 1, "param": "pixel",
                        "transforms": False, "decorrelate": False, "lr": lr, "seed": 5}]
        if exact:
            cfg["taps"].append({"layer": "input", "show": "saliency"})
        path = os.path.join(work, "res_%g_%s.yaml" % (lr, exact))
        yaml.safe_dump(cfg, open(path, "w"))
        out = os.path.join(work, "res_%g_%s" % (lr, exact))
        p = run(["run", path, "--out", out, "--npy"] + (["--input", rgb] if exact else []))
        check(p.returncode == 0, "residual maximize lr %g %s: exit %d" % (lr, exact, p.returncode))
        if p.returncode:
            return
        imgs[lr, exact] = np.load(os.path.join(out, "model", "relu5", "maximize.npy")).astype(np.float64)
    imgs[0.01], imgs[0.02] = imgs[0.01, False], imgs[0.02, False]
    mean = np.array([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    u0 = np.log(mean / (1 - mean))
    logit = lambda v: np.log(v / (1 - v))  # noqa: E731
    ua, ub = logit(imgs[0.01]) - u0, logit(imgs[0.02]) - u0
    sgn = (ua - ub) / (0.01 - 0.02)
    p0 = torch.from_numpy(ua - 0.01 * sgn).requires_grad_(True)
    x = (torch.sigmoid(p0 + torch.from_numpy(u0)) - torch.tensor(mean)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1).double()
    o = {}
    netref.run_config(cfg["layers"], {k: v.double() for k, v in sd.items()}, x, outs_out=o)
    a = o["relu5"]
    g = torch.autograd.grad(sum(a[n, c].mean() for n, c in enumerate(chans)), p0)[0].numpy()
    big = np.abs(g) > 1e-3 * np.abs(g).max()
    agree = float((np.sign(g[big]) == np.sign(sgn[big])).mean())
    # the exact network's step from the same start: its signs
    sgn_exact = (logit(imgs[0.01, True]) - u0 - (ua - 0.01 * sgn)) / 0.01
    same = float((np.sign(sgn_exact[big]) == np.sign(sgn[big])).mean())
    print("fast backward (residual net): sign agreement %.5f with PyTorch over %d pixels, %.5f with the exact "
          "network" % (agree, int(big.sum()), same))
    check(agree >= 0.999 and same >= 0.999, "fast backward on a residual net: sign agreement %.5f with PyTorch, "
          "%.5f with the exact network" % (agree, same))


def classes(work):
    _, path = fashion_config(work, [{"layer": "fc2", "show": "maximize"}], "cls.yaml")
    out = os.path.join(work, "cls")
    p = run(["run", path, "--out", out, "-q"])
    check(p.returncode == 0, "class images: exit %d" % p.returncode)
    if p.returncode:
        return
    cfg = yaml.safe_load(open(path))
    imgs = np.stack([np.asarray(Image.open(os.path.join(out, "model", "fc2", "maximize", "c%03d.png" % k)))
                     for k in range(10)])[:, None] / 255.0
    prob = torch.softmax(reference(cfg, imgs)["fc2"], 1).numpy()
    for k in range(10):
        check(prob[k, k] >= 0.9, "class %d image: probability %.4f" % (k, prob[k, k]))
    print("class images: probabilities of their class %s" % np.round(np.diag(prob), 4).tolist())
    # class: a label picks one unit of the last layer
    _, path = fashion_config(work, [{"layer": "fc2", "show": "maximize", "class": "Sneaker", "steps": 64}],
                             "cls1.yaml")
    out = os.path.join(work, "cls1")
    p = run(["run", path, "--out", out, "-q"])
    check(p.returncode == 0, "class: Sneaker: exit %d" % p.returncode)
    if p.returncode == 0:
        d = json.load(open(os.path.join(out, "model", "fc2", "maximize.json")))
        check([c["channel"] for c in d["channels"]] == [7] and
              os.listdir(os.path.join(out, "model", "fc2", "maximize")) == ["c007.png"],
              "class: Sneaker made %s" % [c["channel"] for c in d["channels"]])
        img = np.asarray(Image.open(os.path.join(out, "model", "fc2", "maximize", "c007.png")))[None, None] / 255.0
        pr = torch.softmax(reference(cfg, img)["fc2"], 1).numpy()[0, 7]
        check(pr >= 0.9, "class: Sneaker image: probability %.4f" % pr)


def pages(work):
    """The report's per-channel rows: the optimised image beside the examples."""
    _, path = fashion_config(work, [{"layer": "conv4", "show": "maximize", "channels": [1, 9], "steps": 8},
                                    {"layer": "conv4", "show": "examples", "channels": [9, 1, 30], "top": 3}],
                             "pages.yaml")
    out = os.path.join(work, "pages")
    img = os.path.join(SRC, "samples", "fashion_mnist", "images")
    p = run(["run", path, "--input", img, "--out", out, "-q"])
    check(p.returncode == 0, "pages run: exit %d" % p.returncode)
    if p.returncode:
        return
    html = open(os.path.join(out, "index.html")).read()
    table = html[html.find('<table class="feat">'):]
    table = table[:table.find("</table>")]
    rows = table.split("<tr>")[2:]
    check(len(rows) == 2, "feature rows: %d, expected 2 (channels 1 and 9 have both)" % len(rows))
    for ch, row in zip((1, 9), rows):
        check("model/conv4/maximize/c%03d.png" % ch in row and "model/conv4/examples/c%03d.png" % ch in row,
              "channel %d row: %s" % (ch, row[:300]))
    ex = json.load(open(os.path.join(out, "model", "conv4", "examples.json")))
    check([c["channel"] for c in ex["channels"]] == [9, 1, 30], "examples channels: %s" %
          [c["channel"] for c in ex["channels"]])
    check(os.path.isfile(os.path.join(out, "model", "conv4", "examples", "c030.png")), "examples c030.png")


def hostile(work):
    for bad, words in (("{layer: conv4, show: maximize, sign: 2}", "'sign' must be 1 or -1"),
                       ("{layer: conv4, show: maximize, param: fft}", "param"),
                       ("{layer: conv4, show: maximize, lr: 0}", "'lr' must be > 0"),
                       ("{layer: conv4, show: maximize, channels: [3, 3]}", "twice"),
                       ("{layer: conv4, show: maximize, channels: [64]}", "has 64"),
                       ("{layer: conv4, show: maximize, steps: 0}", "'steps'"),
                       ("{layer: conv4, show: maximize, blur_sigma: 0}", "'blur_sigma' must be > 0"),
                       ("{layer: conv4, show: maximize, diversity: 17}", "'diversity' must be 1 to 16"),
                       ("{layer: conv4, show: maximize, class: Sneaker}", "needs the network's last layer ('fc2')"),
                       ("{layer: fc2, show: maximize, class: top3}", "not 'top3'"),
                       ("{layer: fc2, show: maximize, class: Boot}", "class 'Boot' is not"),
                       ("{layer: conv4, show: maximize, diversity_weight: -1}", "'diversity_weight'"),
                       ("{layer: conv4, show: maximize, size: 4}", "'size' must be >= 8"),
                       ("{layer: conv4, show: maximize, decorrelate: yes}", "'decorrelate' must be true, false"),
                       ("{layer: conv4, show: maximize, size: [40]}", "'size' must be an integer or [h, w]"),
                       ("{layer: conv4, show: maximize, size: 5000}", "'size' must be 8 to 4096"),
                       ("{layer: conv4, show: activations, size: 40}", "'size' applies to maximize"),
                       ("{layer: fc2, show: maximize, class: Sneaker, size: 40}",
                        "size [40, 40]: the layers up to 'fc2' do not take that input")):
        path = os.path.join(work, "bad.yaml")
        cfg, _ = fashion_config(work, [], "bad.yaml")
        text = open(path).read().replace("taps: []", "taps:\n- " + bad)
        open(path, "w").write(text)
        p = run(["run", path, "--out", os.path.join(work, "bad")], 2)
        lines = p.stderr.strip().splitlines()
        check(p.returncode == 2 and len(lines) == 1 and "bad.yaml:" in p.stderr and words in p.stderr,
              "%s: exit %d, %r" % (bad, p.returncode, p.stderr))
    _, path = fashion_config(work, [{"layer": "conv4", "show": "maximize", "steps": 2}], "shard.yaml")
    img = os.path.join(SRC, "samples", "fashion_mnist", "images")
    p = run(["run", path, "--input", img, "--shard", "0/2", "--out", os.path.join(work, "shard")], 2)
    check(p.returncode == 2 and "--shard" in p.stderr and len(p.stderr.strip().splitlines()) == 1,
          "maximize with --shard: exit %d, %r" % (p.returncode, p.stderr))


def main():
    work = work_dir()
    objectives(work)
    diversity(work)
    fast_backward(work)
    sized(work)
    colour(work)
    classes(work)
    pages(work)
    hostile(work)
    if not checks.failures:
        shutil.rmtree(work, ignore_errors=True)
    checks.finish("test_maximize")


if __name__ == "__main__":
    main()
