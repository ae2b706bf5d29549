"""Benchmark worker (not a test): one CPU inference runtime in a process of
its own, timed on request, so that bench.py can interleave its rounds with
cnnviz-cl's and PyTorch's.

  VENV/bin/python test/bench/peers.py ort|openvino MODEL.onnx INPUT.npy [--threads 2] [--profile DIR]

It loads the model (float32, `threads` intra-op threads, latency settings,
no spinning where the runtime has the switch), runs the input once and
prints one JSON line {"name", "version", "output": [...]}.  Then it reads
commands on stdin:  "N" runs N timed inferences and prints their times in
ms as a JSON list; "quit" (or end of input) stops.

Runs under the virtual environment that test/bench/setup-peers.sh makes
(ONNX Runtime and OpenVINO from PyPI, pinned, over Debian's python).
"""
import argparse
import json
import os
import sys
import time

import numpy as np


def ort_session(model, threads, profile):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads would keep both cores busy between calls and slow
    # whichever runtime is timed next.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile:
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(profile, "ort")
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name

    def run(x):
        return s.run(None, {name: x})[0]

    def finish():
        if profile:
            print(json.dumps({"profile": s.end_profiling()}), flush=True)

    return "ONNX Runtime", ort.__version__, run, finish


def openvino_session(model, threads, profile):
    import openvino as ov
    core = ov.Core()
    cfg = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
           "INFERENCE_PRECISION_HINT": "f32"}
    if profile:
        cfg["PERF_COUNT"] = True
    compiled = core.compile_model(model, "CPU", cfg)
    req = compiled.create_infer_request()

    def run(x):
        req.infer({0: x})
        return req.get_output_tensor(0).data.copy()

    def finish():
        if profile:
            rows = [(p.node_name, p.node_type, p.exec_type, p.real_time.total_seconds() * 1e3)
                    for p in req.profiling_info]
            with open(os.path.join(profile, "openvino.json"), "w") as f:
                json.dump(rows, f)

    return "OpenVINO", ov.__version__, run, finish


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runtime", choices=["ort", "openvino"])
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--profile", help="folder for the runtime's per-node profile")
    a = ap.parse_args()
    x = np.load(a.input).astype(np.float32)
    make = ort_session if a.runtime == "ort" else openvino_session
    name, version, run, finish = make(a.model, a.threads, a.profile)
    y = run(x)  # warm-up, and the output bench.py checks
    print(json.dumps({"name": name, "version": version, "output": y.ravel().tolist()}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        times = []
        for _ in range(int(cmd)):
            t0 = time.perf_counter()
            run(x)
            times.append((time.perf_counter() - t0) * 1e3)
        print(json.dumps(times), flush=True)
    finish()


if __name__ == "__main__":
    main()
