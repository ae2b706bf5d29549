"""Benchmark (not a test): the visualization job, whole process, beside the
script a PyTorch user writes (test/bench/torch_viz.py), same weights, same
image, same machine, same run.

  /usr/bin/python3 test/bench/bench_viz.py [--bin build-release/cnnviz-cl] [--runs 5] [--threads 2]

The job: VGG16 forward + the activations of all 13 conv layers as
per-channel PNGs (4224 files) + one montage per layer.  Each side runs once
to warm caches (PoCL kernels, our program cache, the page cache), then
--runs times; reported: median wall time and median peak RSS (wait4).
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "net"))
import netref  # noqa: E402
import benchmd  # noqa: E402

CONVS = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1", "conv4_2",
         "conv4_3", "conv5_1", "conv5_2", "conv5_3"]


def timed(cmd, env=None):
    """Wall time (s) and peak RSS (MiB) of one process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode()
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit("failed (%d): %s\n%s" % (p.returncode, " ".join(cmd), err))
    return wall, ru.ru_maxrss / 1024.0


def count_png(d):
    return sum(1 for _, _, fs in os.walk(d) for f in fs if f.endswith(".png"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "cnnviz-cl"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tmp", default=os.path.join(ROOT, "build", "bench-tmp"))
    ap.add_argument("--png-level", default=None, help="passed to cnnviz-cl --png-level")
    ap.add_argument("--write", action="store_true", help="write the section of BENCHMARKS.md")
    a = ap.parse_args()
    os.makedirs(a.tmp, exist_ok=True)
    image = os.path.join(a.tmp, "scene.png")
    if not os.path.exists(image):
        netref.save_png(netref.make_scene(256, seed=1), image)
    weights = os.path.join(a.tmp, "vgg16.safetensors")
    if not os.path.exists(weights):
        netref.save_safetensors(netref.make_model("vgg16", seed=0).state_dict(), weights)
    out_ours = os.path.join(a.tmp, "viz_ours")
    out_torch = os.path.join(a.tmp, "viz_torch")
    ours = [a.bin, "run", os.path.join(ROOT, "configs", "vgg16.yaml"), "--weights", weights, "--input", image,
            "--out", out_ours, "--no-taps", "--no-report", "-q"]
    for c in CONVS:
        ours += ["--tap", c]
    if a.png_level is not None:
        ours += ["--png-level", a.png_level]
    theirs = ["/usr/bin/python3", os.path.join(HERE, "torch_viz.py"), weights, image, out_torch, str(a.threads)]
    res = {"cnnviz-cl": [], "PyTorch script": []}
    # Every run writes into a new folder: deleting thousands of files on
    # this ext4 volume (mounted with discard) leaves the kernel busy for
    # seconds and slows whichever process creates files next.  The folders
    # are deleted at the end.
    made = []
    for rep in range(a.runs + 1):
        for name, cmd, out in [("cnnviz-cl", ours, out_ours), ("PyTorch script", theirs, out_torch)]:
            out = "%s_%d" % (out, rep)
            shutil.rmtree(out, ignore_errors=True)
            made.append(out)
            cmd = [out if c in (out_ours, out_torch) else c for c in cmd]
            os.sync()
            wall, rss = timed(cmd)
            if rep == 0:
                print("%-15s warm-up %.2f s, %d PNG files" % (name, wall, count_png(out)), flush=True)
            else:
                res[name].append((wall, rss))
    for d in made:
        shutil.rmtree(d, ignore_errors=True)
    rows = []
    for name, v in res.items():
        w = float(np.median([x[0] for x in v]))
        m = float(np.median([x[1] for x in v]))
        rows.append((name, w, m))
    t_ours, t_ref = rows[0][1], rows[1][1]
    lines = ["## Visualization job", "",
             "VGG16 forward + the activations of all 13 conv layers as per-channel PNGs (4224 files) + "
             "one montage per layer, whole process, against `test/bench/torch_viz.py` (forward hooks, "
             "per-channel min-max, PIL `save`, torchvision `make_grid`), same weights and image, "
             "median of %d runs after one warm-up each, measured by `test/bench/bench_viz.py`." % a.runs, "",
             "| job | wall s | peak RSS MiB |", "| --- | ---: | ---: |"]
    for name, w, m in rows:
        lines.append("| %s | %.2f | %.0f |" % (name, w, m))
    lines += ["", "Ratio cnnviz-cl / PyTorch script: time %.2f×, memory %.2f×." % (t_ours / t_ref,
                                                                                rows[0][2] / rows[1][2])]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.write:
        benchmd.write_section("Visualization job", text)

if __name__ == "__main__":
    main()
