"""Benchmark (not a test): cnnviz-cl beside PyTorch CPU on the same machine,
same weights, same run.  Batch-1 forward, median of N timed runs after one
warm-up on each side.

  /usr/bin/python3 test/bench/bench.py [--bin build-release/cnnviz-cl] [--runs 10] [NET ...]

Writes a markdown table to stdout (and BENCHMARKS.md with --write).
"""
import argparse
import os
import platform
import re
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "net"))
import netref  # noqa: E402


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def torch_median(model, x, runs):
    with torch.no_grad():
        model(x)  # warm-up
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def ours_median(binary, config, weights, image, runs, out):
    cmd = [binary, "run", config, "--weights", weights, "--input", image, "--out", out,
           "--no-taps", "-q", "--repeat", str(runs)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("cnnviz-cl failed: %s\n%s" % (" ".join(cmd), r.stderr))
    m = re.search(r"forward: median ([0-9.]+) ms", r.stdout)
    if not m:
        sys.exit("no 'forward: median' line in:\n" + r.stdout)
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "cnnviz-cl"))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tmp", default=os.path.join(ROOT, "build", "bench-tmp"))
    ap.add_argument("--write", action="store_true", help="write BENCHMARKS.md")
    ap.add_argument("nets", nargs="*", default=["vgg16", "resnet18", "mobilenet_v2"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.tmp, exist_ok=True)
    img = netref.make_scene(256, seed=1)
    image = os.path.join(a.tmp, "scene.png")
    netref.save_png(img, image)
    x = netref.preprocess(img).float()
    rows = []
    for name in a.nets:
        weights = os.path.join(a.tmp, name + ".safetensors")
        model = netref.make_model(name, seed=0)
        if not os.path.exists(weights):
            netref.save_safetensors(model.state_dict(), weights)
        model = model.float().eval()
        config = os.path.join(ROOT, "configs", name + ".yaml")
        ours = ours_median(a.bin, config, weights, image, a.runs, os.path.join(a.tmp, "out"))
        ref = torch_median(model, x, a.runs)
        rows.append((name, ours, ref))
        print("%-14s cnnviz-cl %9.1f ms   PyTorch %9.1f ms   ratio %.2f" % (name, ours, ref, ours / ref),
              flush=True)
    dev = subprocess.run([a.bin, "devices"], capture_output=True, text=True).stdout
    sel = [l for l in dev.splitlines() if l.startswith("selected:")]
    text = ["# Benchmarks", "",
            "Batch-1 forward, median of %d runs after one warm-up, measured in one run of "
            "`test/bench/bench.py` on the same machine and the same random weights." % a.runs, "",
            "- CPU: %s, %d cores; PyTorch %s CPU with %d threads" % (cpu_name(), os.cpu_count(),
                                                                    torch.__version__, a.threads),
            "- cnnviz-cl device: %s" % (sel[0].split(":", 2)[-1].strip() if sel else "?"), "",
            "| network | cnnviz-cl ms | PyTorch ms | ratio (lower is better) |",
            "| --- | ---: | ---: | ---: |"]
    for name, ours, ref in rows:
        text.append("| %s | %.1f | %.1f | %.2f× |" % (name, ours, ref, ours / ref))
    out = "\n".join(text) + "\n"
    print(out)
    if a.write:
        path = os.path.join(ROOT, "BENCHMARKS.md")
        rest = ""
        if os.path.exists(path):  # keep the sections other benchmarks write
            with open(path) as f:
                old = f.read()
            i = old.find("\n## ")
            rest = old[i:] if i >= 0 else ""
        with open(path, "w") as f:
            f.write(out + rest)


if __name__ == "__main__":
    main()
