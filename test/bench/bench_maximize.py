"""Benchmark (not a test): activation maximisation beside Lucent, same
network, same channels, steps, image size and kind of image and transforms,
same machine, same run.

  build-bench-venv/bin/python test/bench/bench_maximize.py [--bin build/cnnviz-cl] [--steps 256] [--threads 2]
      [--size 224]

Environment: a virtual environment over Debian's python3 (its torch 1.13 and
torchvision) with torch-lucent 0.1.8 and what it imports (tqdm 4.66.1,
decorator 5.1.1, kornia 0.4.1, ipython 8.18.1), installed --no-deps where
they would replace Debian's torch.

VGG16 with seeded random weights (the weights test_networks caches), conv4_3
(features.21), channels 0 to 15 as one batch of 16 images of 224 x 224
(--size: another side, `size:` here, param.image(side) in Lucent).
Lucent: render_vis with param.image(224, batch=16) (Fourier, decorrelated,
sigmoid), transform.standard_transforms, Adam at 0.05, the sum of
channel(features_21, k, batch=k); the time of render_vis.  This tool: `show:
maximize` with the same settings (its transforms fold Lucid's set into one
resampling to 224 x 224); the optimisation's own time from maximize.json
("seconds") and the whole process.  Lucent's image grows with its padding
(224 -> 240 before scaling); this tool's stays at 224.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "net"))
import netref  # noqa: E402
import test_networks as tn  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "cnnviz-cl"))
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=224, help="image side (224: the network's input; else size:)")
    ap.add_argument("--tmp", default=os.path.join(ROOT, "build", "bench-tmp"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.tmp, exist_ok=True)
    import lucent
    from lucent.optvis import objectives, param, render, transform

    work = tn.work_dir()
    _, img = tn.scene(work)
    wpath, _ = tn.prepare("vgg16", work, img)
    cfg = tn.load_config("vgg16")
    cfg["model"]["weights"] = wpath
    cfg["model"]["labels"] = os.path.join(ROOT, "configs", cfg["model"]["labels"])
    cfg["taps"] = [{"layer": "conv4_3", "show": "maximize", "channels": list(range(a.channels)), "steps": a.steps}]
    if a.size != 224:
        cfg["taps"][0]["size"] = a.size
    path = os.path.join(a.tmp, "maximize_vgg16.yaml")
    yaml.safe_dump(cfg, open(path, "w"))
    out = os.path.join(a.tmp, "maximize_vgg16")
    cmd = [a.bin, "run", path, "--out", out, "-q", "--no-report"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    ours_proc = time.perf_counter() - t0
    ours = json.load(open(os.path.join(out, "model", "conv4_3", "maximize.json")))["seconds"]

    model = netref.make_model("vgg16", seed=tn.seed_of("vgg16")).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    obj = objectives.channel("features_21", 0, batch=0)
    for k in range(1, a.channels):
        obj = obj + objectives.channel("features_21", k, batch=k)
    t0 = time.perf_counter()
    render.render_vis(model, obj, lambda: param.image(a.size, batch=a.channels),
                      transforms=transform.standard_transforms, thresholds=(a.steps,), show_image=False,
                      progress=False, fixed_image_size=None)
    theirs = time.perf_counter() - t0
    print("maximize VGG16 conv4_3, %d channels, %d steps, %d x %d, %d threads (torch %s, lucent %s):"
          % (a.channels, a.steps, a.size, a.size, a.threads, torch.__version__, getattr(lucent, "__version__", "0.1.8")))
    print("  cnnviz-cl %.1f s (process %.1f s), Lucent %.1f s: ratio %.2fx (process %.2fx)"
          % (ours, ours_proc, theirs, ours / theirs, ours_proc / theirs))


if __name__ == "__main__":
    main()
