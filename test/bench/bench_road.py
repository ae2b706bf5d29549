"""Benchmark (not a test): ROAD of one map beside pytorch-grad-cam's
ROADCombined, same weights, same image, same map, same machine, same run.

  build-bench-venv/bin/python test/bench/bench_road.py [--bin build/cnnviz-cl] [--runs 3] [--threads 2]

(test/bench/setup-peers.sh makes the environment: Debian's torch with
pytorch-grad-cam 1.4.8, whose ROAD needs SciPy.)

ResNet-18 with seeded random weights on the test scene (224 x 224), the
Grad-CAM of layer4 for the top class; the Fashion-MNIST model (28 x 28),
Grad-CAM of conv4.  Both sides: percentiles 10, 20, ..., 90, MoRF and LeRF,
noisy linear imputation (noise 0.01), the softmax probability of the class.
pytorch-grad-cam: ROADCombined(percentiles)(x, cam, [ClassifierOutputSoftmaxTarget(c)], model),
its map the tool's Grad-CAM at the input's size; median of --runs after a
warm-up.  This tool: the whole process with `--road` minus the same run
without it (median of --runs each, after a first run that builds every
kernel): what ROAD adds.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "net"))
sys.path.insert(0, os.path.join(ROOT, "samples", "fashion_mnist"))
sys.path.insert(0, HERE)
import bench_attrib  # noqa: E402

PCTS = [10, 20, 30, 40, 50, 60, 70, 80, 90]


def wall(cmd, runs):
    subprocess.run(cmd, check=True, capture_output=True)
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "cnnviz-cl"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tmp", default=os.path.join(ROOT, "build", "bench-tmp"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.tmp, exist_ok=True)
    from pytorch_grad_cam.metrics.road import ROADCombined
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    for name in ("fashion", "resnet18"):
        cfg, image, weights, model, layer, _, x = bench_attrib.setup(name, a.tmp)
        model.eval()
        with torch.no_grad():
            cls = int(model(x)[0].argmax())
        out = os.path.join(a.tmp, "road_" + name)
        cmd = [a.bin, "run", cfg, "--input", image, "--out", out, "--no-taps", "--tap", layer + ":gradcam",
               "--npy", "-q", "--no-report", "--class", str(cls)] + (["--weights", weights] if weights else [])
        t_plain = wall(cmd, a.runs)
        t_road = wall(cmd + ["--road"], a.runs)
        # the tool's map at the input's size: the CAM .npy upsampled as the tool draws it
        stem = os.path.join(out, os.path.splitext(os.path.basename(image))[0])
        cam = np.load(os.path.join(stem, "gradcam_%s_c%d.npy" % (layer, cls)))
        cam = torch.nn.functional.interpolate(torch.from_numpy(cam)[None, None].float(), size=x.shape[2:],
                                              mode="bilinear", align_corners=False)[0, 0].numpy()
        cam = (cam - cam.min()) / (cam.max() - cam.min() + 1e-7)
        metric = ROADCombined(percentiles=PCTS)
        targets = [ClassifierOutputSoftmaxTarget(cls)]
        metric(x, cam[None], targets, model)
        ts = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            v = metric(x, cam[None], targets, model)
            ts.append(time.perf_counter() - t0)
        theirs = statistics.median(ts)
        ours = t_road - t_plain
        import json
        with open(os.path.join(out, "manifest.json")) as f:
            road = [e["road"] for e in json.load(f)["files"] if "road" in e][0]
        print("%s (class %d, %dx%d): ROAD of one Grad-CAM map: ours %.3f s (run %.3f s with, %.3f s without), "
              "pytorch-grad-cam %.3f s, ratio %.3f; values %.4f vs %.4f (noise differs)" %
              (name, cls, x.shape[2], x.shape[3], ours, t_road, t_plain, theirs, ours / theirs, road,
               float(np.ravel(v)[0])), flush=True)


if __name__ == "__main__":
    main()
