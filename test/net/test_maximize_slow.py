#!/usr/bin/python3
"""show: maximize against the data (label slow):

  * Fashion-MNIST, all 64 channels of conv4, objective the channel's mean,
    512 steps at lr 0.2 (the defaults, 256 at 0.05, leave a few channels of
    this small gray model in a local optimum near the start colour: channel
    30 reaches 0.5 where an all-black image gives 0.97): every optimised
    image reaches at least the largest channel mean over the 10,000 test
    images.  Those maxima come from an examples tap (by: mean, top: 1) of the
    same run over the test set as 8-bit PNGs, and are checked against
    PyTorch's float64 maxima (1e-4 * (1 + |v|)), input and value;
  * a seeded VGG16 (the weights test_networks caches): two channels of
    conv4_3, 16 steps, twice with one seed: byte-identical PNGs, and the
    objective's curve rises on average.
"""
import gzip
import json
import os
import shutil
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
import test_maximize as tm  # noqa: E402
import test_networks as tn  # noqa: E402

DATASET = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def fashion(work):
    with gzip.open(DATASET) as f:
        imgs = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    png = os.path.join(work, "png")
    os.makedirs(png)
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(os.path.join(png, "t%05d.png" % i))
    cfg, path = tm.fashion_config(work, [
        {"layer": "conv4", "show": "maximize", "max_channels": 64, "steps": 512, "lr": 0.2},
        {"layer": "conv4", "show": "examples", "max_channels": 64, "by": "mean", "top": 1}])
    out = os.path.join(work, "out")
    p = tm.run(["run", path, "--input", png, "--batch", "100", "--no-report", "--out", out, "-q"])
    check(p.returncode == 0, "fashion run: exit %d" % p.returncode)
    if p.returncode:
        return
    mx = json.load(open(os.path.join(out, "model", "conv4", "maximize.json")))
    ex = json.load(open(os.path.join(out, "model", "conv4", "examples.json")))
    # the dataset maxima against PyTorch
    sd = tm.fashion_weights()
    x = (torch.from_numpy(imgs.astype(np.float64)) / 255.0 - 0.2860) / 0.3530
    means = []
    with torch.no_grad():
        for i in range(0, len(imgs), 500):
            o = {}
            netref.run_config(cfg["layers"], sd, x[i:i + 500, None], outs_out=o)
            means.append(o["conv4"].mean(dim=(2, 3)).numpy())
    means = np.concatenate(means)
    short = []
    for c in range(64):
        e = ex["channels"][c]["examples"][0]
        ref = means[:, c].max()
        check(abs(e["value"] - ref) <= 1e-4 * (1 + abs(ref)) and abs(means[e["index"], c] - ref) <= 1e-4 * (1 + abs(ref)),
              "c%d: dataset maximum %.7g (input %d), PyTorch %.7g (input %d)" % (c, e["value"], e["index"], ref,
                                                                                  int(means[:, c].argmax())))
        m = mx["channels"][c]
        check(m["channel"] == c and m["best_example"] is not None and abs(m["best_example"] - e["value"]) < 1e-6,
              "c%d: best_example %s, examples.json %.7g" % (c, m["best_example"], e["value"]))
        check(m["value"] >= ref, "c%d: optimised image %.4f below the dataset's %.4f" % (c, m["value"], ref))
        short.append(m["value"] / ref if ref > 0 else float("nan"))
    print("conv4: optimised / dataset maximum: min %.3f, median %.3f" % (np.nanmin(short), np.nanmedian(short)))


def vgg(work):
    name = "vgg16"
    net = tn.work_dir()
    img_path, img = tn.scene(net)
    wpath, _ = tn.prepare(name, net, img)
    cfg = tn.load_config(name)
    cfg["model"]["weights"] = wpath
    cfg["model"]["labels"] = os.path.join(tn.source_dir(), "configs", cfg["model"]["labels"])
    cfg["taps"] = [{"layer": "conv4_3", "show": "maximize", "channels": [0, 7], "steps": 16, "seed": 9}]
    path = os.path.join(work, "vgg.yaml")
    yaml.safe_dump(cfg, open(path, "w"))
    outs = []
    for k in range(2):
        out = os.path.join(work, "vgg%d" % k)
        p = tm.run(["run", path, "--out", out, "-q", "--no-report"])
        check(p.returncode == 0, "vgg16 run %d: exit %d" % (k, p.returncode))
        outs.append(out)
    if any(not os.path.exists(os.path.join(o, "manifest.json")) for o in outs):
        return
    for rel in ("model/conv4_3/maximize.png", "model/conv4_3/maximize/c000.png", "model/conv4_3/maximize/c007.png"):
        a = open(os.path.join(outs[0], rel), "rb").read()
        b = open(os.path.join(outs[1], rel), "rb").read()
        check(a == b, "vgg16: %s differs between two runs with one seed" % rel)
    d = json.load(open(os.path.join(outs[0], "model", "conv4_3", "maximize.json")))
    for c in d["channels"]:
        curve = c["curve"]
        check(c["value"] > curve[0], "vgg16 c%d: objective %.4g after, %.4g at the first step" %
              (c["channel"], c["value"], curve[0]))
    print("vgg16 conv4_3: %s in %.1f s" % ([(c["channel"], c["curve"], round(c["value"], 4)) for c in d["channels"]],
                                           d["seconds"]))


def main():
    work = tm.work_dir()
    fashion(work)
    vgg(work)
    if not checks.failures:
        shutil.rmtree(work, ignore_errors=True)
    checks.finish("test_maximize_slow")


if __name__ == "__main__":
    main()
