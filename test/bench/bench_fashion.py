"""Benchmark (not a test): batch classification of Fashion-MNIST test images,
cnnviz-cl beside PyTorch on the same weights, same machine, same run.

  /usr/bin/python3 test/bench/bench_fashion.py [--bin build-release/cnnviz-cl] [--images 2000]
      [--batch 64] [--runs 3] [--threads 2] [--write]

Both sides start from the same PNG files and do the whole job: decode,
normalise, forward in batches, top-1.  cnnviz-cl: `run --no-taps
--no-report -q --batch N`, whole process (start-up included); PyTorch: PIL
decode + the sample's FashionCNN in eval mode, timed inside the process
after the model is loaded (its start-up is not counted: generous to it).
Median images/s of --runs runs after one warm-up each.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "samples", "fashion_mnist"))
import benchmd  # noqa: E402
from model import FashionCNN, load_safetensors, normalize_u8, read_idx  # noqa: E402

DATASET = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
CONFIG = os.path.join(ROOT, "configs", "fashion_mnist.yaml")
WEIGHTS = os.path.join(ROOT, "samples", "fashion_mnist", "fashion_mnist.safetensors")


def torch_run(files, batch):
    model = FashionCNN()
    sd = load_safetensors(WEIGHTS)
    model.load_state_dict(sd[0] if isinstance(sd, tuple) else sd)
    model.eval()
    t0 = time.perf_counter()
    top1 = []
    with torch.no_grad():
        for i in range(0, len(files), batch):
            u8 = np.stack([np.asarray(Image.open(f).convert("L")) for f in files[i:i + batch]])
            x = normalize_u8(u8)
            top1 += model(x).argmax(1).tolist()
    return time.perf_counter() - t0, top1


def fashion_pngs(tmp, images):
    """The first `images` Fashion-MNIST test images as PNG files in a folder
    under tmp (written once, kept for later runs); returns the folder."""
    folder = os.path.join(tmp, "fashion_%d" % images)
    if not os.path.isdir(folder) or len(os.listdir(folder)) != images:
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        for i, im in enumerate(read_idx(DATASET)[:images]):
            Image.fromarray(np.ascontiguousarray(im, dtype=np.uint8), mode="L").save(
                os.path.join(folder, "%05d.png" % i))
    return folder


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "cnnviz-cl"))
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tmp", default=os.path.join(ROOT, "build", "bench-tmp"))
    ap.add_argument("--write", action="store_true", help="write the section of BENCHMARKS.md")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    folder = fashion_pngs(a.tmp, a.images)
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    out = os.path.join(a.tmp, "fashion_out")
    cmd = [a.bin, "run", CONFIG, "--input", folder, "--out", out, "--no-taps", "--no-report", "-q",
           "--batch", str(a.batch)]
    ours, theirs = [], []
    for rep in range(a.runs + 1):
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        t_ours = time.perf_counter() - t0
        t_ref, _ = torch_run(files, a.batch)
        if rep:
            ours.append(a.images / t_ours)
            theirs.append(a.images / t_ref)
    o, t = float(np.median(ours)), float(np.median(theirs))
    text = "\n".join([
        "## Batch classification (Fashion-MNIST sample)", "",
        "%d test images as PNG, batch %d, median of %d runs after one warm-up, `test/bench/bench_fashion.py`; "
        "cnnviz-cl timed as a whole process (start-up included), PyTorch (%d threads) inside its process after "
        "loading the model." % (a.images, a.batch, a.runs, a.threads), "",
        "| | images/s |", "| --- | ---: |",
        "| cnnviz-cl | %.0f |" % o, "| PyTorch | %.0f |" % t, "",
        "Ratio cnnviz-cl / PyTorch throughput: %.2f× (higher is better)." % (o / t)]) + "\n"
    print(text)
    if a.write:
        benchmd.write_section("Batch classification", text)

if __name__ == "__main__":
    main()
