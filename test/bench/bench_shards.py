"""Benchmark (not a test): throughput of whole jobs over the Fashion-MNIST
test images, per device, per part count (issue: several devices, --shard,
merge).

  /usr/bin/python3 test/bench/bench_shards.py [--bin build/cnnviz-cl] [--images 10000]
      [--batch 64] [--runs 3] [--parts 4] [--write]

Two jobs, each a whole process (start-up included):
  classify  run --no-taps --no-report -q --batch N (predictions only)
  gradcam   run --no-taps --tap conv4:gradcam --curves 20 --no-report -q --batch N
            (a Grad-CAM map per input written as PNG, and its deletion and
            insertion curves)
Ways of running each:
  one       one process on PoCL's one pthread device
  parts     --shard I/P for I = 0..P-1, one after another (as P array tasks
            queued on one node would run), then `merge`; the figure is the
            total of all parts and the merge
  devices   --device all with POCL_DEVICES="pthread pthread" (two devices
            sharing the same 2 cores: no speed-up is expected, the cost of
            dealing batches out is what is shown)
Median images/s of --runs runs after one warm-up each.
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
sys.path.insert(0, HERE)
import benchmd  # noqa: E402
from bench_fashion import fashion_pngs  # noqa: E402

CONFIG = os.path.join(ROOT, "configs", "fashion_mnist.yaml")
JOBS = {
    "classify": ["--no-taps", "--no-report", "-q"],
    "gradcam": ["--no-taps", "--tap", "conv4:gradcam", "--curves", "20", "--no-report", "-q"],
}


def timed(cmds, env=None):
    t0 = time.perf_counter()
    for c in cmds:
        subprocess.run(c, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "cnnviz-cl"))
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--parts", type=int, default=4)
    ap.add_argument("--tmp", default=os.path.join(ROOT, "build", "bench-tmp"))
    ap.add_argument("--write", action="store_true", help="write the section of BENCHMARKS.md")
    a = ap.parse_args()
    folder = fashion_pngs(a.tmp, a.images)
    out = os.path.join(a.tmp, "shards_out")
    base = [a.bin, "run", CONFIG, "--input", folder, "--batch", str(a.batch)]
    two = dict(os.environ, POCL_DEVICES="pthread pthread")
    rows = []
    for job, opts in JOBS.items():
        res = {}
        for way in ("one", "parts", "devices"):
            if way == "one":
                cmds, env = [base + opts + ["--out", out + "/one"]], None
            elif way == "parts":
                parts = [out + "/part%d" % i for i in range(a.parts)]
                cmds = [base + opts + ["--out", p, "--shard", "%d/%d" % (i, a.parts)]
                        for i, p in enumerate(parts)]
                cmds.append([a.bin, "merge", out + "/merged"] + parts)
                env = None
            else:
                cmds, env = [base + opts + ["--out", out + "/two", "--device", "all"]], two
            rates = []
            for rep in range(a.runs + 1):
                shutil.rmtree(out, ignore_errors=True)
                t = timed(cmds, env)
                if rep:
                    rates.append(a.images / t)
            res[way] = float(np.median(rates))
            print(job, way, "%.0f images/s" % res[way], flush=True)
        rows.append((job, res))
    shutil.rmtree(out, ignore_errors=True)
    lines = [
        "## Throughput: parts and devices (Fashion-MNIST test set)", "",
        "%d test images as PNG, batch %d, whole processes (start-up included), %s after one "
        "warm-up, `test/bench/bench_shards.py`. classify = predictions only; gradcam = a Grad-CAM PNG of "
        "conv4 per input and its 20-step deletion/insertion curves. one = one process; %d parts = "
        "`--shard I/%d` one after another then `merge` (total time); two devices = `--device all` over "
        "`POCL_DEVICES=\"pthread pthread\"`, both on the same 2 cores." % (
            a.images, a.batch, "one run" if a.runs == 1 else "median of %d runs" % a.runs,
            a.parts, a.parts), "",
        "| job | one process images/s | %d parts + merge images/s | parts cost | two devices images/s |"
        % a.parts, "| --- | ---: | ---: | ---: | ---: |"]
    for job, r in rows:
        lines.append("| %s | %.0f | %.0f | %.2f× | %.0f |" % (
            job, r["one"], r["parts"], r["one"] / r["parts"], r["devices"]))
    text = "\n".join(lines) + "\n"
    print(text)
    if a.write:
        benchmd.write_section("Throughput: parts and devices", text)


if __name__ == "__main__":
    main()
