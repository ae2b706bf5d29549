"""Benchmark (not a test): cnnviz-cl beside PyTorch on the same machine,
same weights, same run.  Batch-1 forward, median of N timed runs after one
warm-up on each side; with --grad also saliency and Grad-CAM (forward +
backward + map), PyTorch's done with autograd the way pytorch-grad-cam
does it (a hook keeps the layer's output; torch.autograd.grad of the
target logit).

  /usr/bin/python3 test/bench/bench.py [--bin build-release/cnnviz-cl] [--runs 10] [--grad] [NET ...]
  python3 test/bench/bench.py --torch-device cuda --cl-arg=--platform --cl-arg=0 ...   (a GPU)
  /usr/bin/python3 test/bench/bench.py --peers "$(test/bench/setup-peers.sh)" [--rounds 5] ...

With --peers PYTHON, ONNX Runtime and OpenVINO join (each in its own
process, test/bench/peers.py, on the model torch.onnx.export writes from
the same weights): the forward is timed in rounds, each round runs every
framework `runs` times in turn, and each figure is the median of its round
medians, so that a slow phase of the machine hits all four alike.

NET is a shipped pipeline (configs/NET.yaml, weights written from the seeded
model) or any other torchvision network (efficientnet_b0, convnext_tiny,
...), which cnnviz-cl runs from the seeded model's ONNX export (opset 13),
imported by the run itself.

Writes a markdown table to stdout (and BENCHMARKS.md with --write, or the
file given by --md).
"""
import argparse
import json
import os
import platform
import re
import shutil
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


# Grad-CAM layer per network: (our layer name, torchvision module path)
CAM_LAYER = {"vgg16": ("relu5_3", "features.29"), "resnet18": ("layer4", "layer4"),
             "mobilenet_v2": ("features.18", "features.18")}


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, runs, dev):
    fn()  # warm-up
    sync(dev)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync(dev)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def torch_median(model, x, runs):
    with torch.no_grad():
        return timed(lambda: model(x), runs, x.device)


def torch_grad_medians(model, x, runs, module_path):
    """Saliency and Grad-CAM with autograd, as hooking libraries do it."""
    for p in model.parameters():
        p.requires_grad_(False)
    module = model.get_submodule(module_path)
    kept = {}
    module.register_forward_hook(lambda m, i, o: kept.__setitem__("a", o))
    cls = int(model(x).argmax())

    def saliency():
        xi = x.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(xi)[0, cls], xi)
        return g.abs().amax(1)

    def gradcam():
        xi = x.detach().clone().requires_grad_(True)  # as the libraries do
        y = model(xi)
        a = kept["a"]
        (g,) = torch.autograd.grad(y[0, cls], a)
        w = g.mean((2, 3), keepdim=True)
        cam = torch.relu((w * a).sum(1, keepdim=True))
        cam = torch.nn.functional.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)
        return cam

    return timed(saliency, runs, x.device), timed(gradcam, runs, x.device)


# Start-up figures are medians, each field on its own: one whole process is
# a single sample, and a busy moment of the machine moves it by 100 ms.
COLD_RUNS = 3
WARM_RUNS = 5


def field_medians(samples):
    return tuple(float(np.median([s[i] for s in samples])) for i in range(len(samples[0])))


def weights_arg(weights):
    """--weights for a pipeline; an ONNX model holds its own (None)."""
    return ["--weights", weights] if weights else []


def start_times(binary, config, weights, image, out, extra, caches):
    """One whole run (one image, no taps): (wall s, first output ms, peak
    RSS MiB) with the kernel caches under `caches` (empty: a cold start)."""
    env = dict(os.environ, POCL_CACHE_DIR=os.path.join(caches, "pocl"),
               CNNVIZ_CACHE_DIR=os.path.join(caches, "cnnviz"))
    cmd = [binary, "run", config] + weights_arg(weights) + ["--input", image, "--out", out, "--no-taps",
                                                            "--no-report"] + extra
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = p.stderr.read()
    _, status, _ = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        sys.exit("cnnviz-cl failed: %s\n%s" % (" ".join(cmd), err))
    m = re.search(r"first output after ([0-9.]+) ms", err)
    # the run's own VmHWM: wait4's ru_maxrss would count this (PyTorch)
    # process's memory, which the child holds between fork and exec
    r = re.search(r"peak memory ([0-9.]+) MiB", err)
    return wall, float(m.group(1)) if m else float("nan"), float(r.group(1)) if r else float("nan")


def run_ours(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("cnnviz-cl failed (exit %d): %s\n%s" % (r.returncode, " ".join(cmd), r.stderr))
    return r.stdout


def ours_median(binary, config, weights, image, runs, out, extra):
    out = run_ours([binary, "run", config] + weights_arg(weights) + ["--input", image, "--out", out,
                                                                     "--no-taps", "--no-report", "-q", "--repeat",
                                                                     str(runs)] + extra)
    m = re.search(r"forward: median ([0-9.]+) ms", out)
    if not m:
        sys.exit("no 'forward: median' line in:\n" + out)
    return float(m.group(1))


def ours_grad_medians(binary, config, weights, image, runs, out, extra, layer):
    out = run_ours([binary, "run", config] + weights_arg(weights) + ["--input", image, "--out", out,
                                                                     "--no-report", "-q", "--repeat", str(runs),
                                                                     "--tap", "input:saliency",
                                                                     "--tap", layer + ":gradcam"] + extra)
    got = {}
    for m in re.finditer(r"gradient [^:]+:(\w+): median ([0-9.]+) ms", out):
        got[m.group(1)] = float(m.group(2))
    if set(got) != {"saliency", "gradcam"}:
        sys.exit("no gradient timings in:\n" + out)
    return got["saliency"], got["gradcam"]


def isa_of(device_name):
    """The instruction set PoCL compiles for, from its device name
    ("pthread-skylake-avx512-...", "pthread-haswell-...")."""
    n = device_name.lower()
    if "avx512" in n:
        return "AVX-512"
    if any(k in n for k in ("haswell", "broadwell", "skylake", "znver", "alderlake", "zen")):
        return "AVX2"
    return "unknown ISA"


class Peer:
    """A runtime in its own process (peers.py), timed on request."""

    def __init__(self, python, runtime, model, inp, threads):
        self.p = subprocess.Popen([python, os.path.join(HERE, "peers.py"), runtime, model, inp, "--threads",
                                   str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        head = self.p.stdout.readline()
        if not head:
            sys.exit("peers.py %s failed on %s" % (runtime, model))
        info = json.loads(head)
        self.name, self.version, self.output = info["name"], info["version"].split("-")[0], np.array(info["output"])

    def times(self, n):
        self.p.stdin.write("%d\n" % n)
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
        except OSError:
            pass
        self.p.wait()


def peers_row(a, name, model, x, config, weights, image, out):
    """Interleaved rounds of cnnviz-cl, PyTorch, ONNX Runtime and OpenVINO:
    (ours, torch, ort, openvino) medians of round medians, plus the peers'
    output error against PyTorch."""
    onnx_path = os.path.join(a.tmp, name + ".onnx")
    if not os.path.exists(onnx_path):
        torch.onnx.export(model.cpu(), x.cpu(), onnx_path, opset_version=13, input_names=["input"],
                          output_names=["logits"])
    inp = os.path.join(a.tmp, name + "_input.npy")
    np.save(inp, x.cpu().numpy())
    with torch.no_grad():
        ref = model(x).cpu().numpy().ravel()
    peers = [Peer(a.peers, r, onnx_path, inp, a.threads) for r in ("ort", "openvino")]
    errs = [float(np.linalg.norm(p.output - ref) / np.linalg.norm(ref)) for p in peers]
    rounds = {k: [] for k in ("ours", "torch", "ort", "openvino")}
    for _ in range(a.rounds):
        rounds["ours"].append(ours_median(a.bin, config, weights, image, a.runs, out, a.cl_arg))
        rounds["torch"].append(torch_median(model, x, a.runs))
        for key, p in zip(("ort", "openvino"), peers):
            rounds[key].append(float(np.median(p.times(a.runs))))
    versions = [(p.name, p.version) for p in peers]
    for p in peers:
        p.close()
    med = {k: float(np.median(v)) for k, v in rounds.items()}
    return med, errs, versions


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "cnnviz-cl"))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tmp", default=os.path.join(ROOT, "build", "bench-tmp"))
    ap.add_argument("--write", action="store_true", help="write BENCHMARKS.md")
    ap.add_argument("--md", help="write the table to this file instead")
    ap.add_argument("--grad", action="store_true", help="also saliency and Grad-CAM")
    ap.add_argument("--start", action="store_true",
                    help="also cold start (empty kernel caches) and warm start: whole process, time to "
                         "first output, peak RSS")
    ap.add_argument("--torch-device", default="cpu", help="cpu or cuda")
    ap.add_argument("--cl-arg", action="append", default=[],
                    help="argument for cnnviz-cl (repeat: --cl-arg=--platform --cl-arg=1)")
    ap.add_argument("--peers", metavar="PYTHON",
                    help="also ONNX Runtime and OpenVINO, run by this python (test/bench/setup-peers.sh)")
    ap.add_argument("--rounds", type=int, default=5, help="with --peers: interleaved rounds")
    ap.add_argument("nets", nargs="*", default=["vgg16", "resnet18", "mobilenet_v2"])
    a = ap.parse_args()
    load_before = os.getloadavg()[0]
    torch.set_num_threads(a.threads)
    dev = torch.device(a.torch_device)
    if dev.type == "cuda":  # float32 as we compute it: no TF32 shortcuts
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
    os.makedirs(a.tmp, exist_ok=True)
    img = netref.make_scene(256, seed=1)
    image = os.path.join(a.tmp, "scene.png")
    netref.save_png(img, image)
    x = netref.preprocess(img).float().to(dev)
    rows, grows, srows, prows = [], [], [], []
    peer_versions = []
    for name in a.nets:
        weights = os.path.join(a.tmp, name + ".safetensors")
        model = netref.make_model(name, seed=0)
        config = os.path.join(ROOT, "configs", name + ".yaml")
        if not os.path.exists(config):
            # no shipped pipeline: the network's ONNX export, imported by
            # the run itself (weights inside)
            config, weights = os.path.join(a.tmp, name + "_model.onnx"), None
            if not os.path.exists(config):
                torch.onnx.export(model.float().eval(), x.cpu(), config, opset_version=13,
                                  input_names=["input"], output_names=["logits"])
        elif not os.path.exists(weights):
            netref.save_safetensors(model.state_dict(), weights)
        model = model.float().eval().to(dev)
        out = os.path.join(a.tmp, "out")
        if a.peers:
            med, errs, peer_versions = peers_row(a, name, model, x, config, weights, image, out)
            prows.append((name, med, errs))
            ours, ref = med["ours"], med["torch"]
            print("%-14s cnnviz-cl %.1f  PyTorch %.1f  ONNX Runtime %.1f  OpenVINO %.1f ms  (peer output error "
                  "%.1e, %.1e)" % (name, ours, ref, med["ort"], med["openvino"], errs[0], errs[1]), flush=True)
        else:
            ours = ours_median(a.bin, config, weights, image, a.runs, out, a.cl_arg)
            ref = torch_median(model, x, a.runs)
        rows.append((name, ours, ref))
        print("%-14s cnnviz-cl %9.1f ms   PyTorch %9.1f ms   ratio %.2f" % (name, ours, ref, ours / ref),
              flush=True)
        if a.start:
            caches = os.path.join(a.tmp, "caches-" + name)
            colds, warms = [], []
            for _ in range(COLD_RUNS):
                shutil.rmtree(caches, ignore_errors=True)
                colds.append(start_times(a.bin, config, weights, image, out, a.cl_arg, caches))
            for _ in range(WARM_RUNS):
                warms.append(start_times(a.bin, config, weights, image, out, a.cl_arg, caches))
            shutil.rmtree(caches, ignore_errors=True)
            cold, warm = field_medians(colds), field_medians(warms)
            srows.append((name, ours, cold, warm))
            print("%-14s cold start %.1f s (first output %.0f ms), warm %.2f s (first output %.0f ms), "
                  "peak RSS %.0f MiB" % (name, cold[0], cold[1], warm[0], warm[1], warm[2]), flush=True)
        if a.grad and name in CAM_LAYER:
            osal, ocam = ours_grad_medians(a.bin, config, weights, image, a.runs, out, a.cl_arg,
                                           CAM_LAYER[name][0])
            tsal, tcam = torch_grad_medians(model, x, a.runs, CAM_LAYER[name][1])
            grows.append((name, ours, osal, ocam, ref, tsal, tcam))
            print("%-14s saliency %.1f / %.1f ms, Grad-CAM %.1f / %.1f ms (cnnviz-cl / PyTorch)"
                  % (name, osal, tsal, ocam, tcam), flush=True)
    devs = subprocess.run([a.bin, "devices"] + a.cl_arg, capture_output=True, text=True).stdout
    sel = [l for l in devs.splitlines() if l.startswith("selected:")]
    if dev.type == "cuda":
        tdesc = "PyTorch %s CUDA on %s (float32, TF32 off)" % (torch.__version__, torch.cuda.get_device_name())
    else:
        tdesc = "PyTorch %s CPU with %d threads" % (torch.__version__, a.threads)
    load_after = os.getloadavg()[0]
    device_name = sel[0].split(":", 2)[-1].strip() if sel else "?"
    text = ["# Benchmarks", "",
            "Batch-1 forward, median of %d runs after one warm-up, measured in one run of "
            "`test/bench/bench.py` on the same machine and the same random weights." % a.runs, "",
            "- CPU: %s, %d cores; %s" % (cpu_name(), os.cpu_count(), tdesc),
            "- cnnviz-cl device: %s (%s)" % (device_name, isa_of(device_name)),
            "- machine state: 1-minute load average %.2f before the run, %.2f after (2 cores: near 0 "
            "is quiet)" % (load_before, load_after), "",
            "| network | cnnviz-cl ms | PyTorch ms | ratio (lower is better) |",
            "| --- | ---: | ---: | ---: |"]
    for name, ours, ref in rows:
        text.append("| %s | %.1f | %.1f | %.2f× |" % (name, ours, ref, ours / ref))
    if prows:
        text += ["", "CPU inference runtimes on the same weights (torch.onnx.export, opset 13), each in its "
                 "own process, %d interleaved rounds of %d runs, medians of the round medians; %d threads "
                 "each, float32, latency settings, no spinning: %s." % (
                     a.rounds, a.runs, a.threads, ", ".join("%s %s" % v for v in peer_versions)), "",
                 "| network | cnnviz-cl ms | PyTorch ms | ONNX Runtime ms | OpenVINO ms | ratio to the faster "
                 "peer | peers' output vs PyTorch (rel. L2) |", "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for name, med, errs in prows:
            best = min(med["ort"], med["openvino"])
            text.append("| %s | %.1f | %.1f | %.1f | %.1f | %.2f× | %.1e, %.1e |" % (
                name, med["ours"], med["torch"], med["ort"], med["openvino"], med["ours"] / best, errs[0],
                errs[1]))
    if srows:
        text += ["", "Start-up, one image, no taps, whole process (`--start`), medians of %d cold and %d warm "
                 "runs: cold = empty PoCL and program caches (every kernel compiled), warm = the same command "
                 "again; first output = from process "
                 "start to the first input's predictions, as the run reports it; overhead = warm first "
                 "output minus the forward median." % (COLD_RUNS, WARM_RUNS), "",
                 "| network | cold s | cold first output ms | warm s | warm first output ms | warm overhead ms "
                 "| peak RSS MiB |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, fw, cold, warm in srows:
            text.append("| %s | %.1f | %.0f | %.2f | %.0f | %.0f | %.0f |"
                        % (name, cold[0], cold[1], warm[0], warm[1], warm[1] - fw, warm[2]))
    if grows:
        text += ["", "Gradient maps, batch 1, target = top-1 logit, forward + backward + map on the device "
                 "(no files); ours in gradient mode (every tensor kept, nothing fused); ratios to each side's "
                 "own forward in brackets.", "",
                 "| network | cnnviz-cl saliency ms | cnnviz-cl Grad-CAM ms | PyTorch saliency ms | "
                 "PyTorch Grad-CAM ms | saliency ratio | Grad-CAM ratio |",
                 "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, fw, osal, ocam, tfw, tsal, tcam in grows:
            text.append("| %s | %.1f (%.2f×) | %.1f (%.2f×) | %.1f (%.2f×) | %.1f (%.2f×) | %.2f× | %.2f× |"
                        % (name, osal, osal / fw, ocam, ocam / fw, tsal, tsal / tfw, tcam, tcam / tfw,
                           osal / tsal, ocam / tcam))
    out = "\n".join(text) + "\n"
    print(out)
    if a.md:
        with open(a.md, "w") as f:
            f.write(out)
    elif a.write:
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
