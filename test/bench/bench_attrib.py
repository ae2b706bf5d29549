"""Benchmark (not a test): the forward-only attribution methods beside the
Python libraries people use for them, same weights, same image, same
machine, same run.

  build-bench-venv/bin/python test/bench/bench_attrib.py [--bin build/cnnviz-cl] [--runs 3] [--threads 2]
      [--only fashion|resnet18] [--methods ablationcam,scorecam,...]

(test/bench/setup-peers.sh makes the environment: Debian's torch with
pytorch-grad-cam 1.4.8 and Captum 0.6.0 from PyPI.)

Models: the shipped Fashion-MNIST model (layer conv4) and ResNet-18 with
seeded random weights (layer4) on the test scene; the class explained is
the top one.  Each method runs the same work on both sides:

  Score-CAM, Ablation-CAM, Eigen-CAM  pytorch-grad-cam at its defaults
      (ScoreCAM batches of 16, AblationCAM of 32, every channel)
  RISE      4000 masks of 7 x 7 cells, p = 0.5: NumPy masks (the paper's
      recipe) scored by PyTorch in batches of 64
  LIME      Captum's Lime, 1000 samples on this tool's 50 SLIC superpixels
      (its feature_mask), at its default perturbations_per_eval = 1 and
      with 64
  KernelSHAP  Captum's KernelShap, the same superpixels, as many samples as
      this tool draws (2 M + 2048), perturbations_per_eval 1 and 64

Timing: in-process on both sides after a warm-up: the libraries' median of
--runs calls; this tool's `--repeat` line for the method ("one run", after
a first run of the whole job that builds every kernel).  RISE's bound:
4000 x this tool's batched forward time per image (median of --repeat at
the batch RISE runs) x 1.1.  Whole-process times are printed too.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "net"))
sys.path.insert(0, os.path.join(ROOT, "samples", "fashion_mnist"))
import netref  # noqa: E402

METHODS = ["scorecam", "ablationcam", "eigencam", "rise", "lime", "kernelshap"]


def median_time(fn, runs):
    fn()  # warm-up
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def ours(binary, cfg, weights, image, layer, out, methods, extra=()):
    """{method: ms of one run} from --repeat, the whole process's seconds,
    and RISE's batch."""
    cmd = [binary, "run", cfg, "--input", image, "--out", out, "--no-taps", "--npy", "--repeat", "3", "-q",
           "--no-report"]
    if weights:
        cmd += ["--weights", weights]
    for m in methods:
        cmd += ["--tap", ("%s:%s" % (layer, m)) if "cam" in m else "input:" + m]
    cmd += list(extra)
    subprocess.run(cmd, check=True, capture_output=True)  # builds and caches every kernel
    t0 = time.perf_counter()
    p = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    got, batch = {}, None
    for line in (p.stdout + p.stderr).splitlines():
        m = re.search(r"gradient \S+?:(\w+): one run ([0-9.]+) ms .* in batches of up to (\d+)", line)
        if m:
            got[m.group(1)] = float(m.group(2))
            if m.group(1) == "rise":
                batch = int(m.group(3))
    return got, wall, batch


def forward_per_image(binary, cfg, weights, image, batch, tmp):
    """Median batched forward time per image (ms) at `batch` images."""
    d = os.path.join(tmp, "batch_inputs")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for i in range(batch):
        os.symlink(os.path.abspath(image), os.path.join(d, "img%03d%s" % (i, os.path.splitext(image)[1])))
    cmd = [binary, "run", cfg, "--input", d, "--out", os.path.join(tmp, "fwd"), "--no-taps", "--batch", str(batch),
           "--repeat", "5", "-q", "--no-report"]
    if weights:
        cmd += ["--weights", weights]
    p = subprocess.run(cmd, check=True, capture_output=True, text=True)
    m = re.search(r"forward: median ([0-9.]+) ms over \d+ runs \(batch (\d+)", p.stdout + p.stderr)
    return float(m.group(1)) / int(m.group(2))


def rise_numpy(model, x, cls, n=4000, s=7, p=0.5, batch=64, seed=0):
    """RISE as the paper's code does it: NumPy grids and shifts, bilinear
    upsampling, then the model in batches."""
    rng = np.random.default_rng(seed)
    H, W = x.shape[2:]
    ch, cw = -(-H // s), -(-W // s)
    grid = (rng.random((n, 1, s, s)) < p).astype(np.float32)
    up = F.interpolate(torch.from_numpy(grid), size=((s + 1) * ch, (s + 1) * cw), mode="bilinear",
                       align_corners=False)[:, 0].numpy()
    dy, dx = rng.integers(0, ch, n), rng.integers(0, cw, n)
    masks = np.stack([up[i, dy[i]:dy[i] + H, dx[i]:dx[i] + W] for i in range(n)])
    sal = np.zeros((H, W), np.float64)
    with torch.no_grad():
        for k in range(0, n, batch):
            m = torch.from_numpy(masks[k:k + batch])
            y = model(x * m[:, None])[:, cls].double().numpy()
            sal += np.tensordot(y, masks[k:k + batch], axes=1)
    return sal / (n * p)


def python_side(model, layer_module, x, cls, seg, n_shap, runs, methods):
    from pytorch_grad_cam import AblationCAM, EigenCAM, ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from captum.attr import KernelShap, Lime
    import tqdm
    from functools import partialmethod
    tqdm.tqdm.__init__ = partialmethod(tqdm.tqdm.__init__, disable=True)  # no progress bars in the timing
    targets = [ClassifierOutputTarget(cls)]
    res = {}
    for name, cls_ in (("scorecam", ScoreCAM), ("ablationcam", AblationCAM), ("eigencam", EigenCAM)):
        if name in methods:
            cam = cls_(model=model, target_layers=[layer_module])
            res[name] = median_time(lambda: cam(input_tensor=x, targets=targets), runs) * 1000
    if "rise" in methods:
        res["rise"] = median_time(lambda: rise_numpy(model, x, cls), max(1, runs - 1)) * 1000
    if seg is None:
        return res
    fmask = torch.from_numpy(seg.astype(np.int64))[None, None].expand_as(x[:, :1]).expand_as(x).contiguous()
    base = torch.zeros_like(x)
    for ppe in (1, 64):
        if "lime" not in methods:
            break
        lime = Lime(model)
        res["lime/%d" % ppe] = median_time(
            lambda: lime.attribute(x, target=cls, feature_mask=fmask, baselines=base, n_samples=1000,
                                   perturbations_per_eval=ppe), 1) * 1000
        shap = KernelShap(model)
        res["kernelshap/%d" % ppe] = median_time(
            lambda: shap.attribute(x, target=cls, feature_mask=fmask, baselines=base, n_samples=n_shap,
                                   perturbations_per_eval=ppe), 1) * 1000
    return res


def setup(name, tmp):
    """(pipeline, image, weights or None, PyTorch model, layer, its module,
    input tensor) of the shipped Fashion-MNIST model or the seeded
    ResNet-18 on the test scene."""
    if name == "fashion":
        from model import FashionCNN
        cfg = os.path.join(ROOT, "configs", "fashion_mnist.yaml")
        image = os.path.join(ROOT, "samples", "fashion_mnist", "images", "9_ankle_boot.png")
        weights = None
        model = FashionCNN()
        sd, _ = netref.load_safetensors(os.path.join(ROOT, "samples", "fashion_mnist",
                                                     "fashion_mnist.safetensors"))
        model.load_state_dict({k: v.float() for k, v in sd.items()})
        layer, module = "conv4", model.features[10]
        from PIL import Image
        img = np.asarray(Image.open(image).convert("L"), np.float32)
        x = ((torch.from_numpy(img) / 255.0 - 0.2860) / 0.3530)[None, None]
    else:
        cfg = os.path.join(ROOT, "configs", "resnet18.yaml")
        img = netref.make_scene(256, 1)
        image = os.path.join(tmp, "scene.png")
        netref.save_png(img, image)
        model = netref.make_model("resnet18", seed=18)
        weights = os.path.join(tmp, "resnet18_seeded.safetensors")
        netref.save_safetensors(model.state_dict(), weights, {"format": "pt"})
        layer, module = "layer4", model.layer4
        x = netref.preprocess(img).float()
    return cfg, image, weights, model, layer, module, x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "cnnviz-cl"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tmp", default=os.path.join(ROOT, "build", "bench-tmp"))
    ap.add_argument("--only", choices=["fashion", "resnet18"])
    ap.add_argument("--methods", default=",".join(METHODS), help="a comma-separated subset of %s" % ",".join(METHODS))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.tmp, exist_ok=True)
    for name in ("fashion", "resnet18"):
        if a.only and name != a.only:
            continue
        cfg, image, weights, model, layer, module, x = setup(name, a.tmp)
        model.eval()
        with torch.no_grad():
            cls = int(model(x)[0].argmax())
        out = os.path.join(a.tmp, "attrib_" + name)
        methods = a.methods.split(",")
        mine, wall, batch = ours(a.bin, cfg, weights, image, layer, out, methods)
        stem = os.path.join(out, os.path.splitext(os.path.basename(image))[0])
        sp = "lime" in methods and "kernelshap" in methods
        seg = np.load(os.path.join(stem, "lime_segments.npy")).astype(np.int64) if sp else None
        n_shap = np.load(os.path.join(stem, "kernelshap_samples.npy")).shape[0] if sp else 0
        per_img = forward_per_image(a.bin, cfg, weights, image, batch, a.tmp) if batch else float("nan")
        theirs = python_side(model, module, x, cls, seg, n_shap, a.runs, methods)
        print("%s (class %d): this tool's whole process with %s %.1f s; forward %.3f ms per image at batch %s"
              % (name, cls, ", ".join(methods), wall, per_img, batch), flush=True)
        for m in methods:
            peers = [k for k in theirs if k == m or k.startswith(m + "/")]
            for k in peers:
                r = mine[m] / theirs[k]
                print("  %-16s ours %9.1f ms  theirs %9.1f ms  ratio %.3f" % (k, mine[m], theirs[k], r), flush=True)
        if "rise" not in methods:
            continue
        bound = 4000 * per_img * 1.1
        print("  rise bound 4000 x %.3f ms x 1.1 = %.0f ms: ours %.0f ms (%s)" %
              (per_img, bound, mine["rise"], "within" if mine["rise"] <= bound else "over"), flush=True)



if __name__ == "__main__":
    main()
