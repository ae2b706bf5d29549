#!/usr/bin/python3
"""Benchmark (not a test): how long the ONNX import takes.

    /usr/bin/python3 test/bench/bench_import.py --bin BUILD/cnnviz-cl [--runs N] [NAME:OPSET ...]

For each torchvision export (seeded random weights, cached like the tests'
in $CNNVIZ_TEST_CACHE/onnx, else a temporary folder): the model file's
size, then the wall time of
  * `cnnviz-cl import MODEL.onnx -o DIR/x.yaml` (read, decode, fold, write
    the pipeline and its safetensors), and
  * `cnnviz-cl info MODEL.onnx` (the same import in memory, the pipeline
    parsed and its graph built over the weights; no device),
warm (the file in the page cache: one run first, not counted), the median
of N runs (default 5), with the throughput in MB/s of model file.  The
target: a 100 MB model imports in 1 s or less, warm.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "net"))
import onnxref  # noqa: E402


def timed(cmd, runs):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t.append(time.perf_counter() - t0)
    return statistics.median(t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("models", nargs="*", default=["resnet50:13", "inception_v3:13", "vgg16:13"])
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cnnviz-bench-import-")
    print("| model | file MB | import s | MB/s | info (in memory) s | MB/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for m in args.models:
        name, opset = m.split(":")
        path, _ = onnxref.prepared(name, int(opset))
        mb = os.path.getsize(path) / 1e6
        ti = timed([args.bin, "import", path, "-o", os.path.join(work, "x.yaml")], args.runs)
        tm = timed([args.bin, "info", path], args.runs)
        print("| %s (opset %s) | %.1f | %.3f | %.0f | %.3f | %.0f |" % (name, opset, mb, ti, mb / ti, tm, mb / tm),
              flush=True)


if __name__ == "__main__":
    main()
