#!/usr/bin/python3
"""Benchmark (not a test): what the Python package (python/cnnviz) costs
beyond the C calls it makes.

  CNNVIZ_LIBRARY=build/libcnnviz.so.0 PYTHONPATH=python \\
      /usr/bin/python3 test/bench/bench_python.py [--runs 30] [--act-runs 30] [--short]

1. Grad-CAM of ResNet-18 (seeded weights, as test/net/test_networks.py) on
   one 224 x 224 input, target 207: Model.attribute(x, "gradcam",
   layer="layer4", target=207) against the same two C calls made through
   ctypes directly (cnnviz_run_tensor + cnnviz_attribute into a
   preallocated map), interleaved, median of --runs after a warm-up.
   Reported: both medians and their difference (noisy: the call takes
   ~100 ms), the Python time measured inside each call (its wall time minus
   the time spent in the C functions it calls), and the Python work alone
   (the same call with the C functions replaced by stubs).  Target: <= 1 ms
   per call.
2. activations() of VGG16 conv1_2 (64 x 224 x 224 float32, 12.8 MB): the
   read part of Model.activations (its wall time minus its run:
   allocation, the C copy, Python) against a raw cnnviz_activations call
   into a preallocated buffer, each the first read after its own run,
   interleaved, medians of --act-runs.  The loop drops each result before
   the next call but one, as `a = m.activations(...)` in a loop does, so
   the package reuses its memory (python/cnnviz/_buffers.py).  Target:
   <= 1.2x.

The input is the float32 network input (the same for both sides), so no
image decoding is timed.  Prints the device and the instruction set PoCL
compiles for, and the 1-minute load average before and after: run it on an
otherwise idle machine.

Environment: CNNVIZ_LIBRARY (the library), CNNVIZ_TEST_TMP (where the
seeded weights are cached; default build/test-tmp, shared with the tests).
"""
import argparse
import ctypes
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
os.environ.setdefault("CNNVIZ_TEST_TMP", os.path.join(ROOT, "build", "test-tmp"))
sys.path.insert(0, os.path.join(ROOT, "test", "net"))
sys.path.insert(0, os.path.join(ROOT, "python"))
import netref  # noqa: E402
import test_networks as tn  # noqa: E402
from bench import cpu_name, isa_of  # noqa: E402

import cnnviz  # noqa: E402
from cnnviz._native import native  # noqa: E402

now = time.perf_counter


class TimedLib:
    """Stands in for the model's ctypes library: forwards each call and adds
    its duration to c_time, so a method's own Python time is its wall time
    minus c_time.  (The forwarding itself counts as Python time: the figure
    is an upper bound.)"""

    def __init__(self, lib):
        self._lib = lib
        self.c_time = 0.0
        self.by_name = {}

    def __getattr__(self, name):
        fn = getattr(self._lib, name)

        def call(*args):
            t0 = now()
            r = fn(*args)
            dt = now() - t0
            self.c_time += dt
            self.by_name[name] = self.by_name.get(name, 0.0) + dt
            return r

        setattr(self, name, call)
        return call


class StubLib:
    """Every C function returns 0 (success) at once."""

    def __getattr__(self, name):
        def call(*args):
            return 0

        setattr(self, name, call)
        return call


def ms(v):
    return "%.3f ms" % (v * 1e3)


def med(v):
    return statistics.median(v)


def weights(name):
    img = netref.make_scene(256, tn.SCENE_SEED)
    return tn.prepare(name, tn.work_dir(), img)[0], img


def bench_gradcam(runs):
    w, img = weights("resnet18")
    m = cnnviz.Model(os.path.join(ROOT, "configs", "resnet18.yaml"), weights=w)
    lib = native().lib
    x = np.ascontiguousarray(m.activations(img, "input"))          # [3, 224, 224] network units
    h = m._handle
    targets = (ctypes.c_int * 1)(207)
    shape = (ctypes.c_int64 * 3)()
    cam = m.attribute(x, "gradcam", layer="layer4", target=207)   # warm-up, and the map's size
    buf = np.empty_like(cam)

    def raw():
        if lib.cnnviz_run_tensor(h, x.ctypes.data, 1) < 0:
            raise RuntimeError(lib.cnnviz_last_error())
        if lib.cnnviz_attribute(h, b"gradcam", b"layer4", ctypes.addressof(targets), None, buf.ctypes.data,
                                buf.size, ctypes.addressof(shape)) < 0:
            raise RuntimeError(lib.cnnviz_last_error())

    def py():
        return m.attribute(x, "gradcam", layer="layer4", target=207)

    raw()
    if not np.array_equal(buf, cam):
        sys.exit("the raw calls and attribute() disagree")
    t_py, t_raw = [], []
    for i in range(runs):
        for which in ((py, raw) if i % 2 == 0 else (raw, py)):
            t0 = now()
            which()
            (t_py if which is py else t_raw).append(now() - t0)
    # Python's own time inside attribute(): wall time minus the C calls
    timed = TimedLib(m._lib)
    m._lib = timed
    own = []
    for _ in range(runs):
        c0 = timed.c_time
        t0 = now()
        py()
        own.append((now() - t0) - (timed.c_time - c0))
    m._lib = timed._lib
    calls = sorted(timed.by_name)
    # the same call with every C function a stub returning at once: the
    # Python work alone, without the device's noise
    m._lib = StubLib()
    n = 2000
    t0 = now()
    for _ in range(n):
        py()
    stub = (now() - t0) / n
    m._lib = timed._lib
    m.close()
    return {"py": med(t_py), "raw": med(t_raw), "own": med(own), "own_max": max(own), "calls": calls,
            "map": cam.shape, "stub": stub}


def bench_activations(runs):
    w, img = weights("vgg16")
    m = cnnviz.Model(os.path.join(ROOT, "configs", "vgg16.yaml"), weights=w, gradients=False)
    lib = native().lib
    x = np.ascontiguousarray(m.activations(img, "input"))
    layer = "conv1_2"
    name = layer.encode()
    shape_of = m.layer(layer).shape
    buf = np.empty(shape_of, np.float32)
    shp = (ctypes.c_int64 * 4)()
    h = m._handle
    ref = m.activations(x, layer)                                   # warm-up
    timed = TimedLib(m._lib)
    m._lib = timed
    read_py, run_t, read_raw = [], [], []
    a = None
    # Interleaved samples, each the first read after its own run (the
    # tensor is as cold or warm in the caches for both sides).
    for i in range(2 * (runs + 1)):
        if i % 2 == 0:
            r0 = timed.by_name.get("cnnviz_run_tensor", 0.0)
            t0 = now()
            a = m.activations(x, layer)     # the previous result is dropped after: its memory is reused
            total = now() - t0
            run = timed.by_name["cnnviz_run_tensor"] - r0
            if i >= 2:
                read_py.append(total - run)
                run_t.append(run)
        else:
            if lib.cnnviz_run_tensor(h, x.ctypes.data, 1) < 0:
                raise RuntimeError(lib.cnnviz_last_error())
            t0 = now()
            rc = lib.cnnviz_activations(h, name, buf.ctypes.data, buf.size, ctypes.addressof(shp))
            raw = now() - t0
            if rc < 0:
                raise RuntimeError(lib.cnnviz_last_error())
            if i >= 2:
                read_raw.append(raw)
    m._lib = timed._lib
    if not (np.array_equal(buf, ref) and np.array_equal(a, ref)):
        sys.exit("the raw read and activations() disagree")
    m.close()
    return {"read_py": med(read_py), "read_raw": med(read_raw), "run": med(run_t), "bytes": buf.nbytes,
            "shape": shape_of}


def main():
    ap = argparse.ArgumentParser(description="Python package overhead over the C calls")
    ap.add_argument("--runs", type=int, default=30, help="timed Grad-CAM calls per side (default 30)")
    ap.add_argument("--act-runs", type=int, default=30, help="timed VGG16 activations() calls (default 30)")
    ap.add_argument("--short", action="store_true", help="5 runs each: checks that the benchmark works")
    a = ap.parse_args()
    if a.short:
        a.runs = a.act_runs = 5
    load0 = os.getloadavg()[0]
    path, version = cnnviz.library()
    devs = cnnviz.devices()
    print("library: %s (%s); package %s" % (path, version, cnnviz.__version__))
    print("CPU: %s" % cpu_name())
    g = bench_gradcam(a.runs)
    act = bench_activations(a.act_runs)
    load1 = os.getloadavg()[0]
    dev = devs[0].name if devs else "?"
    print("device: %s (%s)" % (dev, isa_of(dev)))
    print()
    print("Grad-CAM, ResNet-18, one 224x224 input, layer4 -> %s map, median of %d:" % ("x".join(map(str, g["map"])),
                                                                                     a.runs))
    print("  Model.attribute()          %s" % ms(g["py"]))
    print("  the C calls through ctypes %s" % ms(g["raw"]))
    print("  difference                 %s  (target <= 1 ms)" % ms(g["py"] - g["raw"]))
    print("  Python time inside the call %s median, %s max (C calls: %s)" % (ms(g["own"]), ms(g["own_max"]),
                                                                          ", ".join(g["calls"])))
    print("  Python work alone (C functions stubbed) %s" % ms(g["stub"]))
    print()
    print("activations(), VGG16 conv1_2 %s = %.1f MB, median of %d:" % (list(act["shape"]), act["bytes"] / 1e6,
                                                                      a.act_runs))
    print("  its read (allocation, copy, Python) %s" % ms(act["read_py"]))
    print("  raw cnnviz_activations into a preallocated buffer %s" % ms(act["read_raw"]))
    print("  ratio %.2fx  (target <= 1.2x); the run before it: %s" % (act["read_py"] / act["read_raw"],
                                                                       ms(act["run"])))
    print()
    print("load average (1 min): %.2f before, %.2f after (2 cores: near 0 means idle)" % (load0, load1))


if __name__ == "__main__":
    main()
