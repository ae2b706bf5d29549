"""ONNX side of the import checks (test_onnx_models*.py, samples/export_onnx.py).

  export(model, path, opset, size, dynamic)   torch.onnx.export as users run it:
                                               evaluation mode, constant folding
  prepared(name, opset, dynamic)               a seeded random torchvision model
                                               exported once into the cache
                                               folder, with its float64 logits
                                               on the test picture
  check_model(...)                             import + run through the binary,
                                               logits against PyTorch

The cache folder is $CNNVIZ_TEST_CACHE/onnx (shared by the builds of one CI
run), else $CNNVIZ_TEST_TMP/onnx; entries are keyed by a stamp (these files,
the seed, the opset, torch versions) and written atomically under a lock, so
tests running side by side export each model once.
"""
import fcntl
import gc
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
import netref  # noqa: E402  (the caller puts HERE on sys.path)

# Random-weights seed per network, picked (as in test_networks.py) so that the
# reference top-6 logits are >= 0.02 standard deviations apart.
SEEDS = {"vgg16": 2, "vgg16_bn": 1, "alexnet": 8, "resnet18": 1, "resnet50": 1,
         "squeezenet1_1": 1, "mobilenet_v2": 1, "densenet121": 5, "googlenet": 1,
         "inception_v3": 3, "efficientnet_b0": 2, "mobilenet_v3_large": 3, "convnext_tiny": 3,
         "shufflenet_v2_x1_0": 1, "regnet_y_400mf": 4}
SCENE_SEED = 7
RTOL = 1e-4          # relative L2 error allowed, float32 device vs float64 torch
RUN_TIMEOUT = 900


def log(msg):
    print(msg, flush=True)


def input_size(name):
    return 299 if name == "inception_v3" else 224


def scene_size(name):
    """The test picture's side: the pipeline's resize (shorter side =
    size * 256 / 224) is then the identity and the centre crop exact."""
    return 342 if name == "inception_v3" else 256


def input_spec(name):
    s = input_size(name)
    return dict(netref.IMAGENET_INPUT, shape=[3, s, s],
                resize={"shorter": scene_size(name), "crop": s})


def make_model(name, seed):
    """netref.make_model, and for the networks with layer norms and layer
    scales (ConvNeXt) those randomised too (PyTorch starts them at 1, 0 and
    1e-6: the blocks would add nearly nothing and the test see little):
    LayerNorm weight U(0.5, 1.5), bias N(0, 0.1); layer_scale U(0.1, 0.3)."""
    import torch
    model = netref.make_model(name, seed=seed)
    g = torch.Generator().manual_seed(1000 + int(seed))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm) and m.elementwise_affine:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            if isinstance(getattr(m, "layer_scale", None), torch.nn.Parameter):
                m.layer_scale.copy_(torch.rand(m.layer_scale.shape, generator=g) * 0.2 + 0.1)
    return model


def cache_dir():
    base = os.environ.get("CNNVIZ_TEST_CACHE") or os.environ.get("CNNVIZ_TEST_TMP")
    if not base:
        base = tempfile.mkdtemp(prefix="cnnviz-onnx-")
    d = os.path.join(base, "onnx")
    os.makedirs(d, exist_ok=True)
    return d


def scene(name, work):
    img = netref.make_scene(scene_size(name), SCENE_SEED)
    path = os.path.join(work, "scene%d.png" % scene_size(name))
    netref.save_png(img, path)
    return path, img


def export(model, path, opset, size, dynamic=False):
    """torch.onnx.export of `model` (evaluation mode) for one [1, 3, size,
    size] image, constant folding on; `dynamic`: a symbolic batch axis."""
    import torch
    x = torch.zeros(1, 3, size, size)
    kw = {}
    if dynamic:
        kw["dynamic_axes"] = {"input": {0: "batch"}, "logits": {0: "batch"}}
    with netref.replaced_atomically(path) as tmp:
        torch.onnx.export(model.eval(), x, tmp, opset_version=opset, do_constant_folding=True,
                          input_names=["input"], output_names=["logits"], **kw)


def _stamp(name, opset, dynamic):
    import torch
    import torchvision
    h = hashlib.sha256()
    for f in (os.path.join(HERE, "netref.py"), os.path.abspath(__file__)):
        with open(f, "rb") as fh:
            h.update(fh.read())
    h.update(("%s %d %d %s %d %s %s" % (name, SEEDS[name], opset, dynamic, SCENE_SEED,
                                        torch.__version__, torchvision.__version__)).encode())
    return h.hexdigest()


def prepared(name, opset, dynamic=False):
    """-> (model.onnx path, float64 reference logits [1000]), from the cache
    or exported now (under a lock per model and opset)."""
    d = cache_dir()
    key = "%s-op%d%s" % (name, opset, "-dyn" if dynamic else "")
    with open(os.path.join(d, key + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        mpath = os.path.join(d, key + ".onnx")
        rpath = os.path.join(d, key + ".ref.npy")
        spath = os.path.join(d, key + ".stamp")
        stamp = _stamp(name, opset, dynamic)
        try:
            with open(spath) as f:
                if f.read().strip() == stamp and os.path.exists(mpath) and os.path.exists(rpath):
                    return mpath, np.load(rpath)
        except OSError:
            pass
        if os.path.exists(spath):
            os.remove(spath)
        t0 = time.time()
        model = make_model(name, SEEDS[name])
        export(model, mpath, opset, input_size(name), dynamic)
        img = netref.make_scene(scene_size(name), SCENE_SEED)
        ref = netref.reference_logits(model, netref.preprocess(img, input_spec(name)))[0]
        with netref.replaced_atomically(rpath) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, ref)
        with netref.replaced_atomically(spath) as tmp:
            with open(tmp, "w") as f:
                f.write(stamp + "\n")
        del model
        gc.collect()
        log("  %s: exported and referenced (%.1f s)" % (key, time.time() - t0))
        return mpath, ref


def top5(v):
    return [int(i) for i in np.argsort(-np.asarray(v, dtype=np.float64), kind="stable")[:5]]


def compare(got, ref, what, rtol=RTOL):
    """-> failure messages (empty when got matches ref to rtol, same top-5)."""
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    if got.shape != ref.shape:
        return ["%s: %d values, expected %d" % (what, got.size, ref.size)]
    if not np.all(np.isfinite(got)):
        return ["%s: non-finite values" % what]
    rel = float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30))
    fails = []
    if not rel <= rtol:
        w = int(np.argmax(np.abs(got - ref)))
        fails.append("%s: relative L2 error %.3g > %.0e (worst [%d]: %.7g vs %.7g)"
                     % (what, rel, rtol, w, got[w], ref[w]))
    if got.size >= 5 and top5(got) != top5(ref):
        fails.append("%s: top-5 %s, expected %s" % (what, top5(got), top5(ref)))
    if not fails:
        log("  %s: relative L2 error %.3g" % (what, rel))
    return fails


def run(cmd, timeout=RUN_TIMEOUT):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        class R:
            returncode = -1
            stdout = ""
            stderr = "timeout: %s" % e
        return R()


def check_model(binary, name, opset, work, dynamic=False):
    """import + run of one export -> (failures, ctx); ctx (None when the
    binary failed) holds key, got (logits), ypath (the imported pipeline),
    weights (its safetensors header), img_path, model path."""
    key = "%s-op%d%s" % (name, opset, "-dyn" if dynamic else "")
    mpath, ref = prepared(name, opset, dynamic)
    img_path, _ = scene(name, work)
    fails = []
    # import: a pipeline file and its weights, layer names a person can tap
    ydir = os.path.join(work, key)
    shutil.rmtree(ydir, ignore_errors=True)
    os.makedirs(ydir)
    ypath = os.path.join(ydir, name + ".yaml")
    t0 = time.time()
    r = run([binary, "import", mpath, "-o", ypath])
    if r.returncode != 0:
        return ["%s: import exited %d: %s" % (key, r.returncode, r.stderr.strip()[-1500:])], None
    log("  %s: import %.2f s" % (key, time.time() - t0))
    import yaml
    with open(ypath) as f:
        cfg = yaml.safe_load(f)
    names = [layer["name"] for layer in cfg["layers"]]
    if len(set(names)) != len(names) or not all(re.fullmatch(r"[A-Za-z0-9_.\-]+", n) for n in names):
        fails.append("%s: layer names not unique or not tappable" % key)
    inp = cfg["model"]["input"]
    s = input_size(name)
    if inp["shape"] != [3, s, s] or inp["resize"] != {"shorter": scene_size(name), "crop": s} \
            or inp["mean"] != netref.IMAGENET_INPUT["mean"] or inp["std"] != netref.IMAGENET_INPUT["std"]:
        fails.append("%s: model.input is not ImageNet's defaults: %r" % (key, inp))
    st = read_safetensors_header(os.path.join(ydir, name + ".safetensors"))
    for layer in cfg["layers"]:
        p = layer.get("params")
        if p is not None and p + ".weight" not in st:
            fails.append("%s: layer %s binds %s.weight, which the weights file lacks" % (key, layer["name"], p))
    # run MODEL.onnx: imported in memory
    out = os.path.join(work, "out-" + key)
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    r = run([binary, "run", mpath, "--input", img_path, "--out", out, "--no-taps", "--no-report"])
    if r.returncode != 0:
        return fails + ["%s: run exited %d: %s" % (key, r.returncode, r.stderr.strip()[-1500:])], None
    if "preprocessing is not part of an ONNX model; assumed ImageNet preprocessing" not in r.stderr:
        fails.append("%s: run did not say which preprocessing it assumed: %s" % (key, r.stderr[-500:]))
    stem = os.path.splitext(os.path.basename(img_path))[0]
    got = np.load(os.path.join(out, stem, "output.npy"))
    log("  %s: %d layers, %d tensors; run %.1f s" % (key, len(names), len(st), time.time() - t0))
    fails += compare(got, ref, key)
    return fails, {"key": key, "got": got, "ypath": ypath, "cfg": cfg, "weights": st, "img": img_path,
                   "model": mpath, "work": work}


def read_safetensors_header(path):
    import json
    import struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header


def run_models(binary, plan, extra=None):
    """plan: [(name, opset, dynamic)]; extra(binary, name, opset, ctx) ->
    more failures, for the checks of one test file."""
    import torch
    torch.set_num_threads(max(1, min(os.cpu_count() or 1, 4)))
    work = os.path.join(os.environ.get("CNNVIZ_TEST_TMP") or tempfile.mkdtemp(), "onnx-models")
    os.makedirs(work, exist_ok=True)
    failures = []
    for name, opset, dynamic in plan:
        t0 = time.time()
        key = "%s-op%d%s" % (name, opset, "-dyn" if dynamic else "")
        log("%s:" % key)
        fails, ctx = check_model(binary, name, opset, work, dynamic)
        if ctx and extra:
            fails += extra(binary, name, opset, ctx)
        for f in fails:
            log("  FAIL " + f)
        failures += fails
        if not fails:
            # the imported weights and outputs: as large as the model, not needed any more
            for d in os.listdir(work):
                if d == key or d.endswith("-" + key):
                    shutil.rmtree(os.path.join(work, d), ignore_errors=True)
        log("  %s: %s (%.1f s)" % (key, "FAIL" if fails else "ok", time.time() - t0))
        gc.collect()
    log("%d failure(s)" % len(failures) if failures else "all %d exports match PyTorch" % len(plan))
    return 1 if failures else 0
