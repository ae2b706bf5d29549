#!/usr/bin/python3
"""cnnviz-cl against PyTorch on the shipped ImageNet networks.

    /usr/bin/python3 test/net/test_networks.py [--models a,b] [--selfcheck]

For each configs/<name>.yaml (vgg16 vgg16_bn alexnet resnet18 resnet50
squeezenet1_1 mobilenet_v2):
  * seeded random torchvision weights -> $CNNVIZ_TEST_TMP/net/<name>.safetensors
    and the float64 PyTorch logits on a seeded 256x256 test picture (Resize(256)
    is the identity, CenterCrop(224) exact); both cached there, keyed by a
    stamp (this file, netref.py, seed, torch versions), so reruns only run
    the binary;
  * `$CNNVIZ_BIN info CONFIG --weights W` must exit 0 and name every layer;
  * `$CNNVIZ_BIN run CONFIG --weights W --input scene.png --out DIR --no-taps`
    must write DIR/scene/output.npy: float32 [1000] logits with relative L2
    error <= 1e-4 against PyTorch and the same top-5 indices, in order.
Nothing is skipped: a missing binary or a failing command fails the test.

--selfcheck checks the PyTorch side only (no binary): export -> reload is
bit exact and loads strictly into torchvision; the reloaded model gives the
same logits; the pipeline file, interpreted with PyTorch (netref.run_config),
matches torchvision to 1e-12 and binds every tensor; float32 PyTorch is well
inside the tolerance; the reference top-5 are separated well enough to
compare.

Environment: CNNVIZ_BIN, CNNVIZ_SOURCE_DIR (repo root; default: from this
file), CNNVIZ_TEST_TMP (scratch; default: a temporary folder).
"""
import argparse
import fcntl
import gc
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import netref  # noqa: E402

# Random-weights seed per network, picked so that the reference top-6 logits
# are >= 0.03 standard deviations apart (far above float32 error), which
# keeps the top-5 comparison meaningful.  Changing netref.random_init or the
# picture may need new picks (--selfcheck says so).
SEEDS = {"vgg16": 2, "vgg16_bn": 1, "alexnet": 8, "resnet18": 1, "resnet50": 1,
         "squeezenet1_1": 1, "mobilenet_v2": 1}
MIN_TOP_GAP = 0.02   # --selfcheck: smallest top-6 gap, in logit std units
SCENE_SEED = 7
RTOL = 1e-4          # relative L2 error allowed, float32 device vs float64 torch
MODELS = netref.IMAGENET_MODELS
RUN_TIMEOUT = 900


def source_dir():
    return os.environ.get("CNNVIZ_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))


def work_dir():
    base = os.environ.get("CNNVIZ_TEST_TMP")
    if not base:
        base = tempfile.mkdtemp(prefix="cnnviz-net-")
    d = os.path.join(base, "net")
    os.makedirs(d, exist_ok=True)
    return d


def config_path(name):
    return os.path.join(source_dir(), "configs", name + ".yaml")


def load_config(name):
    import yaml
    with open(config_path(name), encoding="utf-8") as f:
        return yaml.safe_load(f)


def seed_of(name):
    return SEEDS[name]


def log(msg):
    print(msg, flush=True)


# ---- cached weights and reference ------------------------------------------

def stamp_of(name):
    import torch
    import torchvision
    h = hashlib.sha256()
    for f in (os.path.join(HERE, "netref.py"), os.path.abspath(__file__)):
        with open(f, "rb") as fh:
            h.update(fh.read())
    h.update(("%s %d %d %s %s" % (name, seed_of(name), SCENE_SEED,
                                  torch.__version__, torchvision.__version__)).encode())
    return h.hexdigest()


def scene(work):
    """The test picture: written each run (cheap), returned as path, array."""
    img = netref.make_scene(256, SCENE_SEED)
    path = os.path.join(work, "scene.png")
    netref.save_png(img, path)
    return path, img


def prepare(name, work, img):
    """-> (weights path, float64 reference logits [1000]); cached.  A lock
    per model: test_gradients and this test run side by side and share the
    cache, so one writes the files while the other waits for them."""
    with open(os.path.join(work, name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return prepare_locked(name, work, img)


def prepare_locked(name, work, img):
    wpath = os.path.join(work, name + ".safetensors")
    rpath = os.path.join(work, name + ".ref.npy")
    spath = os.path.join(work, name + ".stamp")
    stamp = stamp_of(name)
    try:
        with open(spath) as f:
            if f.read().strip() == stamp and os.path.exists(wpath) and os.path.exists(rpath):
                return wpath, np.load(rpath)
    except OSError:
        pass
    if os.path.exists(spath):
        os.remove(spath)
    t0 = time.time()
    model = netref.make_model(name, seed=seed_of(name))
    netref.save_safetensors(model.state_dict(), wpath,
                            {"format": "pt", "model": name,
                             "weights": "random, seed %d" % seed_of(name)})
    ref = netref.reference_logits(model, netref.preprocess(img))[0]
    with netref.replaced_atomically(rpath) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, ref)
    with netref.replaced_atomically(spath) as tmp:
        with open(tmp, "w") as f:
            f.write(stamp + "\n")
    del model
    gc.collect()
    log("  %s: weights and reference written (%.1f s)" % (name, time.time() - t0))
    return wpath, ref


# ---- comparisons -----------------------------------------------------------

def top5(v):
    return [int(i) for i in np.argsort(-np.asarray(v, dtype=np.float64), kind="stable")[:5]]


def compare(got, ref, what):
    """-> list of failure messages (empty when got matches ref)."""
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    ref = np.asarray(ref, dtype=np.float64).reshape(-1)
    if got.shape != ref.shape:
        return ["%s: %d values, expected %d" % (what, got.size, ref.size)]
    if not np.all(np.isfinite(got)):
        bad = int(np.flatnonzero(~np.isfinite(got))[0])
        return ["%s: non-finite value %r at [%d]" % (what, got[bad], bad)]
    diff = got - ref
    rel = float(np.linalg.norm(diff) / max(np.linalg.norm(ref), 1e-30))
    fails = []
    worst = int(np.argmax(np.abs(diff)))
    detail = ("worst [%d]: got %.9g, expected %.9g (|diff| %.3g); |ref| rms %.4g"
              % (worst, got[worst], ref[worst], abs(diff[worst]),
                 float(np.sqrt(np.mean(ref ** 2)))))
    if not rel <= RTOL:
        fails.append("%s: relative L2 error %.3g > %.0e; %s" % (what, rel, RTOL, detail))
    tg, tr = top5(got), top5(ref)
    if tg != tr:
        fails.append("%s: top-5 %s, expected %s; %s" % (what, tg, tr, detail))
    if not fails:
        log("  %s: relative L2 error %.3g, top-5 %s" % (what, rel, tr))
    return fails


def layer_names(cfg):
    return [d["name"] for d in cfg["layers"]]


def check_info(binary, name, wpath):
    cfg = load_config(name)
    cmd = [binary, "info", config_path(name), "--weights", wpath]
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=300, universal_newlines=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        return ["%s: info: %s" % (name, e)]
    if r.returncode != 0:
        return ["%s: info exited %d: %s" % (name, r.returncode, r.stderr.strip()[-2000:])]
    missing = [n for n in layer_names(cfg)
               if not re.search(r"(?<![A-Za-z0-9_.\-])%s(?![A-Za-z0-9_.\-])" % re.escape(n),
                                r.stdout)]
    if missing:
        return ["%s: info does not list %d layer(s): %s" %
                (name, len(missing), ", ".join(missing[:10]))]
    log("  %s: info lists all %d layers" % (name, len(cfg["layers"])))
    return []


def check_run(binary, name, wpath, img_path, work, ref, copied=False):
    """copied: with CNNVIZ_NO_HOST_WEIGHTS set, the weights are copied to
    the device instead of used in place in the file (CPU devices)."""
    out = os.path.join(work, "out", name + ("-copied" if copied else ""))
    shutil.rmtree(out, ignore_errors=True)
    cmd = [binary, "run", config_path(name), "--weights", wpath, "--input", img_path,
           "--out", out, "--no-taps"]
    t0 = time.time()
    try:
        env = dict(os.environ, CNNVIZ_NO_HOST_WEIGHTS="1") if copied else None
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=RUN_TIMEOUT, universal_newlines=True, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return ["%s: run: %s" % (name, e)]
    dt = time.time() - t0
    if r.returncode != 0:
        return ["%s: run exited %d: %s" % (name, r.returncode,
                                           (r.stderr.strip() or r.stdout.strip())[-2000:])]
    npy = os.path.join(out, os.path.splitext(os.path.basename(img_path))[0], "output.npy")
    if not os.path.exists(npy):
        return ["%s: run wrote no %s" % (name, npy)]
    got = np.load(npy)
    if got.dtype != np.float32 or got.shape != (1000,):
        return ["%s: output.npy is %s %s, expected float32 (1000,)" %
                (name, got.dtype, got.shape)]
    log("  %s: run took %.1f s" % (name, dt))
    return compare(got, ref, name + (" (weights copied)" if copied else ""))


def run_tests(models):
    binary = os.environ.get("CNNVIZ_BIN")
    if not binary or not os.path.exists(binary):
        log("FAIL: CNNVIZ_BIN is not set or does not exist (%r)" % binary)
        return 1
    import torch
    torch.set_num_threads(max(1, min(os.cpu_count() or 1, 4)))
    work = work_dir()
    img_path, img = scene(work)
    failures = []
    for name in models:
        t0 = time.time()
        log("%s:" % name)
        wpath, ref = prepare(name, work, img)
        fails = check_info(binary, name, wpath)
        fails += check_run(binary, name, wpath, img_path, work, ref)
        if name in ("resnet18", "alexnet"):  # folded batch norms; linear layers
            fails += check_run(binary, name, wpath, img_path, work, ref, copied=True)
        for f in fails:
            log("  FAIL " + f)
        failures += fails
        log("  %s: %s (%.1f s)" % (name, "FAIL" if fails else "ok", time.time() - t0))
    log("%d of %d networks failed" % (len({f.split(":")[0] for f in failures}), len(models))
        if failures else "all %d networks match PyTorch" % len(models))
    return 1 if failures else 0


# ---- --selfcheck: the PyTorch side ------------------------------------------

def selfcheck(models):
    import torch
    import yaml  # noqa: F401  (load_config)
    torch.set_num_threads(max(1, min(os.cpu_count() or 1, 4)))
    work = tempfile.mkdtemp(prefix="cnnviz-selfcheck-")
    failures = []

    def check(cond, msg):
        if not cond:
            failures.append(msg)
            log("  FAIL " + msg)

    try:
        img_path, img = scene(work)
        from PIL import Image
        check(np.array_equal(np.asarray(Image.open(img_path).convert("RGB")), img),
              "scene.png does not read back exactly")
        x = netref.preprocess(img)
        check(tuple(x.shape) == (1, 3, 224, 224), "preprocess shape %s" % (tuple(x.shape),))
        # the crop is exact: pixel (16, 16) of the picture is x[..., 0, 0]
        m = np.array(netref.IMAGENET_INPUT["mean"])
        s = np.array(netref.IMAGENET_INPUT["std"])
        check(np.allclose(x[0, :, 0, 0].numpy(), (img[16, 16] / 255.0 - m) / s, rtol=0, atol=1e-15),
              "preprocess is not the centre crop")
        for name in models:
            t0 = time.time()
            log("%s:" % name)
            model = netref.make_model(name, seed=seed_of(name))
            sd = model.state_dict()
            path = os.path.join(work, name + ".safetensors")
            netref.save_safetensors(sd, path, {"model": name}, use_package=False)
            sd2, meta = netref.load_safetensors(path)
            check(meta == {"model": name}, "%s: metadata %r" % (name, meta))
            check(list(sd2) == list(sd), "%s: tensor names or order differ" % name)
            check(all(sd[k].dtype == sd2[k].dtype and torch.equal(sd[k], sd2[k]) for k in sd),
                  "%s: reloaded tensors differ" % name)
            with open(path, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
            check(n % 8 == 0, "%s: header length %d not a multiple of 8" % (name, n))
            os.remove(path)

            m2 = netref.build_model(name)
            m2.load_state_dict(sd2, strict=True)
            with torch.no_grad():
                lo32 = m2(x.float()).double().numpy()[0]
            ref = netref.reference_logits(model, x)[0]
            ref2 = netref.reference_logits(m2, x)[0]
            check(np.array_equal(ref, ref2), "%s: reloaded model gives other logits" % name)

            cfg = load_config(name)
            check(cfg["model"]["name"] == name and cfg["model"]["weights"] == name + ".safetensors"
                  and cfg["model"]["labels"] == "imagenet_classes.txt",
                  "%s: model name / weights / labels" % name)
            inp = cfg["model"]["input"]
            check(inp["shape"] == [3, 224, 224] and inp["color"] == "rgb"
                  and inp["resize"] == {"shorter": 256, "crop": 224}
                  and inp["mean"] == netref.IMAGENET_INPUT["mean"]
                  and inp["std"] == netref.IMAGENET_INPUT["std"]
                  and abs(inp["scale"] - 1 / 255.0) < 1e-15, "%s: model.input" % name)
            names = layer_names(cfg)
            check(all(re.fullmatch(r"[A-Za-z0-9_.\-]+", n) for n in names) and
                  len(set(names)) == len(names) and "input" not in names,
                  "%s: bad or duplicate layer names" % name)
            check(cfg["layers"][-1]["op"] not in ("softmax",), "%s: ends in softmax" % name)
            try:
                y, shapes = netref.run_config(cfg["layers"], sd2, x)
                y = y.numpy()[0]
                rel = np.linalg.norm(y - ref) / np.linalg.norm(ref)
                check(rel <= 1e-12, "%s: config vs torchvision relative error %.3g" % (name, rel))
                check(shapes[names[-1]] == [1000], "%s: output shape %s" % (name, shapes[names[-1]]))
                log("  config == torchvision: relative error %.2g over %d layers"
                    % (rel, len(names)))
            except netref.ConfigError as e:
                check(False, "%s: config: %s" % (name, e))

            rel32 = np.linalg.norm(lo32 - ref) / np.linalg.norm(ref)
            check(rel32 <= RTOL / 10, "%s: float32 torch relative error %.3g" % (name, rel32))
            check(top5(lo32) == top5(ref), "%s: float32 torch changes the top-5" % name)
            srt = np.sort(ref)[::-1]
            gap = float(np.min(srt[:5] - srt[1:6]))
            spread = float(np.std(ref))
            check(gap > MIN_TOP_GAP * spread,
                  "%s: top-6 logits too close (%.3g std): pick another seed" % (name, gap / spread))
            log("  float32 torch: relative error %.2g; logits std %.3g, top-5 %s, "
                "smallest top-6 gap %.3g std; %.1f s"
                % (rel32, spread, top5(ref), gap / spread, time.time() - t0))
            del model, m2, sd, sd2
            gc.collect()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log("selfcheck: %s" % ("%d failure(s)" % len(failures) if failures else "ok"))
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--models", default=",".join(MODELS),
                    help="comma-separated subset of " + ",".join(MODELS))
    ap.add_argument("--selfcheck", action="store_true",
                    help="check the PyTorch side (export, reload, configs) only")
    args = ap.parse_args()
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        ap.error("unknown model(s): %s" % ", ".join(unknown))
    return selfcheck(models) if args.selfcheck else run_tests(models)


if __name__ == "__main__":
    sys.exit(main())
