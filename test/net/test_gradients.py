#!/usr/bin/python3
"""Gradient maps of cnnviz-cl against PyTorch autograd (float64), same
seeded random weights, same image.

    /usr/bin/python3 test/net/test_gradients.py

  * ResNet-18 and VGG16 (configs/*.yaml, seeded random weights as in
    test_networks.py): saliency, guided backprop, Integrated Gradients (50
    midpoint steps, black baseline) and Grad-CAM (ResNet-18: layer4, VGG16:
    relu5_3) for the class ranked SECOND by the reference (not the top-1),
    read from the .npy maps (--npy); relative L2 error <= RTOL against the
    autograd maps computed through netref.run_config (the same YAML
    interpreted in PyTorch);
  * Fashion-MNIST (trained weights): Integrated Gradients completeness
    (sum of attributions vs score difference, the run's own note) on all
    ten sample images within IG_BOUND (4 % at 50 steps, 0.5 % at 400, and
    smaller at 400 than at 50); the model-randomisation check (Adebayo et al. 2018): re-randomising
    conv4 and the classifier changes the saliency map substantially
    (Spearman rank correlation with the original < 0.5) while the trained
    model's map is reproducible (a second run equals the first);
  * Fashion-MNIST attribution without gradients, against float64 PyTorch
    recomputed here: occlusion (`--tap input:occlusion --class top2`, the
    default window 2 / stride 1 / 0 in network units, and a YAML tap with
    window 5, step 3: 9 x 9 windows, the last clamped flush with the edge;
    one with window 2, step 3: 384 pixels in no window, exactly 0), logit
    drops averaged over the covering windows, relative L2 <= 1e-4;
    deletion / insertion curves (`--curves 16`, and `curves: 16` in the
    window-2 step-3 tap, whose block of equal zeros tests ties) of the
    saliency and occlusion maps, recomputed from the run's own .npy maps
    (pixels ranked by value, ties by index; deletion to 0, insertion into
    the Gaussian-blurred input), every point and both AUCs within 1e-4
    absolute;
    Integrated Gradients with `baseline: blur` (50 midpoint steps, float64
    autograd), relative L2 <= 1e-3.
Nothing is skipped.
"""
import json
import math
import os
import re
import subprocess
import sys
import time

import numpy as np
import torch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import netref  # noqa: E402
import test_networks as tn  # noqa: E402

BIN = os.environ.get("CNNVIZ_BIN") or os.path.join(tn.source_dir(), "build", "cnnviz-cl")
RTOL = 1e-3
# Measured (PoCL and NVIDIA, float32 device vs float64 autograd): saliency,
# guided and Grad-CAM 1e-7..8e-7 on ResNet-18, guided and Grad-CAM ~1e-7 on
# VGG16, but VGG16 saliency 3.6e-3, VGG16 Integrated Gradients 6.7e-3 and
# ResNet-18 Integrated Gradients 1.8e-3.  Cause (found by tapping every
# max-pool and ReLU input): a VGG16 pool3 window whose two largest values
# differ by less than float32 rounding picks the other maximum than float64
# does, and two pre-activations within rounding of 0 take the other sign;
# each such decision reroutes a whole gradient (the error sits in ~10 x 10
# pixel patches of the map).  PyTorch's float32 happens not to flip there
# (6.5e-5).  So the saliency check below is twofold: against plain float64
# autograd at LOOSE (any real mistake -- transposition, routing, class --
# gives O(1)), and at RTOL against float64 autograd whose max-pools and
# ReLUs take OUR decisions, after checking that every decision that differs
# from float64's is a float32 near-tie (5.8e-7 measured).  Integrated
# Gradients runs 50 forward passes whose decisions cannot be tapped: held to
# LOOSE.
LOOSE = 1e-2
NEAR_TIE = 1e-5  # a flipped window's two values differ by less than this x the layer's largest value
RTOL_OF = {("vgg16", "saliency"): LOOSE, ("vgg16", "integrated"): LOOSE, ("resnet18", "integrated"): LOOSE}
CAM_LAYER = {"resnet18": "layer4", "vgg16": "relu5_3"}
STEPS = 50

failures = []
checks = 0


def check(cond, msg):
    global checks
    checks += 1
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, file=sys.stderr, flush=True)


class GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0).to(g.dtype) * (g > 0).to(g.dtype)


def reference_maps(layers, sd, x, cls, cam_layer, in_spec):
    """float64 autograd maps: saliency, guided, integrated, gradcam."""
    out = {}
    xi = x.clone().requires_grad_(True)
    y, _ = netref.run_config(layers, sd, xi)
    y[0, cls].backward()
    out["saliency"] = xi.grad[0].abs().amax(0).numpy()
    xg = x.clone().requires_grad_(True)
    y, _ = netref.run_config(layers, sd, xg, relu=GuidedReLU.apply)
    y[0, cls].backward()
    out["guided"] = xg.grad[0].abs().amax(0).numpy()
    # Integrated gradients: black baseline in network units, midpoint rule.
    mean = torch.tensor(in_spec["mean"], dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(in_spec["std"], dtype=x.dtype).view(1, -1, 1, 1)
    base = ((0.0 - mean) / std).expand_as(x)
    # The 50 path points run in float32 batches of 10: a float64 pass per
    # point costs minutes on VGG16, and float32 sums (rel. error ~1e-6) are
    # far inside RTOL.
    sd32 = {k: v.float() for k, v in sd.items()}
    total = torch.zeros_like(x)
    for k0 in range(0, STEPS, 10):
        a = torch.tensor([(k + 0.5) / STEPS for k in range(k0, min(k0 + 10, STEPS))],
                         dtype=x.dtype).view(-1, 1, 1, 1)
        xk = (base + a * (x - base)).float().requires_grad_(True)
        y, _ = netref.run_config(layers, sd32, xk)
        y[:, cls].sum().backward()
        total += xk.grad.double().sum(0, keepdim=True)
    out["integrated"] = ((x - base) * total / STEPS)[0].sum(0).numpy()
    outs = {}
    y, _ = netref.run_config(layers, sd, x.clone().requires_grad_(True), outs_out=outs)
    act = outs[cam_layer]
    act.retain_grad()
    y[0, cls].backward()
    w = act.grad.mean(dim=(2, 3), keepdim=True)
    out["gradcam"] = torch.relu((w * act).sum(1))[0].detach().numpy()
    return out


def rel_l2(got, ref):
    return float(np.linalg.norm(got.astype(np.float64) - ref) / max(np.linalg.norm(ref), 1e-30))


def test_network(name, work, img_path, img):
    wpath, ref_logits = tn.prepare(name, work, img)
    cls = int(np.argsort(-ref_logits, kind="stable")[1])  # the second class
    cfg = tn.load_config(name)
    sd, _ = netref.load_safetensors(wpath)
    sd = {k: v.double() for k, v in sd.items()}
    spec = cfg["model"]["input"]
    x = netref.preprocess(img)
    tn.log("%s: reference gradients for class %d" % (name, cls))
    ref = reference_maps(cfg["layers"], sd, x, cls, CAM_LAYER[name], spec)
    out = os.path.join(work, name + "_grad")
    # every max-pool's and ReLU's input is tapped: our forward's decisions
    pools = pool_inputs(cfg["layers"])
    relus = relu_inputs(cfg["layers"])
    cmd = [BIN, "run", tn.config_path(name), "--weights", wpath, "--input", img_path, "--out", out, "--no-taps",
           "--tap", "input:saliency", "--tap", "input:guided", "--tap", "input:integrated",
           "--tap", CAM_LAYER[name] + ":gradcam", "--class", str(cls), "--npy", "-q", "--png-level", "0"]
    for src in sorted(set(pools.values()) | set(relus.values())):
        cmd += ["--tap", src]
    p = subprocess.run(cmd, capture_output=True, text=True)
    check(p.returncode == 0, "%s: exit %d: %s" % (name, p.returncode, p.stderr))
    if p.returncode != 0:
        return
    stem = os.path.splitext(os.path.basename(img_path))[0]
    for method, fname in [("saliency", "saliency"), ("guided", "guided"), ("integrated", "integrated"),
                          ("gradcam", "gradcam_" + CAM_LAYER[name])]:
        path = os.path.join(out, stem, "%s_c%d.npy" % (fname, cls))
        check(os.path.exists(path), "%s: no %s" % (name, path))
        if not os.path.exists(path):
            continue
        got = np.load(path)
        check(got.shape == ref[method].shape, "%s %s: shape %s vs %s" % (name, method, got.shape, ref[method].shape))
        if got.shape == ref[method].shape:
            e = rel_l2(got, ref[method])
            tn.log("  %s %s: rel. L2 %.2e" % (name, method, e))
            tol = RTOL_OF.get((name, method), RTOL)
            check(e <= tol, "%s %s: rel. L2 %.3e > %g" % (name, method, e, tol))
    check_routed_saliency(name, cfg, sd, x, cls, pools, relus, os.path.join(out, stem))
    with open(os.path.join(out, "manifest.json")) as f:
        files = json.load(f)["files"]
    kinds = {(e["kind"], e.get("role")) for e in files if e.get("class") == cls}
    for m in ["saliency", "guided", "integrated", "gradcam"]:
        check((m, "map") in kinds and (m, "overlay") in kinds, "%s: manifest lists %s map and overlay" % (name, m))


def op_inputs(layers, op):
    """{layer name: the name of its input layer} for the layers of `op`."""
    out, prev = {}, "input"
    for d in layers:
        if d["op"] == op:
            src = d.get("in", prev)
            out[d["name"]] = src if isinstance(src, str) else src[0]
        prev = d["name"]
    return out


def pool_inputs(layers):
    return op_inputs(layers, "maxpool")


def relu_inputs(layers):
    return op_inputs(layers, "relu")


def check_routed_saliency(name, cfg, sd, x, cls, pools, relus, stem_dir):
    """Saliency against float64 autograd whose max-pools and ReLUs take our
    forward's decisions (from the tapped inputs: argmax per window, sign per
    value), after checking that each decision that differs from float64's
    own is a float32 near-tie."""
    by_name = {d["name"]: d for d in cfg["layers"]}
    ref_outs = {}
    with torch.no_grad():
        netref.run_config(cfg["layers"], sd, x, outs_out=ref_outs)
    def tapped(src, what):
        path = os.path.join(stem_dir, src.replace("/", "_"), "activations.npy")
        check(os.path.exists(path), "%s: no tapped %s input %s" % (name, what, path))
        return torch.from_numpy(np.load(path).astype(np.float64))[None] if os.path.exists(path) else None

    masks, sign_flips = {}, 0
    for relu, src in relus.items():
        ours = tapped(src, "ReLU")
        if ours is None:
            return
        ref = ref_outs[src]
        m = ours > 0
        diff = m != (ref > 0)
        sign_flips += int(diff.sum())
        if diff.any():
            gap = float(ref[diff].abs().max() / ref.abs().max())
            check(gap < NEAR_TIE, "%s %s: a value changes sign at %.2e of the layer's largest value "
                  "(not a float32 near-zero)" % (name, relu, gap))
        masks[relu] = m
    idx, flips = {}, 0
    for pool, src in pools.items():
        ours = tapped(src, "pool")
        if ours is None:
            return
        d = by_name[pool]
        k = d["kernel"] if isinstance(d["kernel"], list) else [d["kernel"]] * 2
        st = d.get("stride", k)
        st = st if isinstance(st, list) else [st] * 2
        pad = d.get("pad", 0)
        pad = pad if isinstance(pad, list) else [pad] * 2
        ref = ref_outs[src]
        kw = dict(kernel_size=k, stride=st, padding=pad[:2], ceil_mode=bool(d.get("ceil_mode", False)),
                  return_indices=True)
        _, i_ours = torch.nn.functional.max_pool2d(ours, **kw)
        _, i_ref = torch.nn.functional.max_pool2d(ref, **kw)
        diff = i_ours != i_ref
        flips += int(diff.sum())
        if diff.any():
            flat = ref.flatten(2)
            a = flat.gather(2, i_ours.flatten(2)).view(i_ours.shape)[diff]
            b = flat.gather(2, i_ref.flatten(2)).view(i_ref.shape)[diff]
            gap = float((b - a).abs().max() / ref.abs().max())
            check(gap < NEAR_TIE, "%s %s: a window picks another maximum than float64 with a gap of %.2e "
                  "of the layer's largest value (not a float32 near-tie)" % (name, pool, gap))
        idx[pool] = i_ours
    xi = x.clone().requires_grad_(True)
    y, _ = netref.run_config(cfg["layers"], sd, xi, pool_idx=idx, relu_mask=masks)
    y[0, cls].backward()
    routed = xi.grad[0].abs().amax(0).numpy()
    got = np.load(os.path.join(stem_dir, "saliency_c%d.npy" % cls))
    e = rel_l2(got, routed)
    tn.log("  %s saliency with our max-pool and ReLU decisions (%d near-tie windows, %d near-zero signs "
           "differ from float64): rel. L2 %.2e" % (name, flips, sign_flips, e))
    check(e <= RTOL, "%s saliency with our max-pool and ReLU decisions: rel. L2 %.3e > %g" % (name, e, RTOL))


def spearman(a, b):
    ra = np.argsort(np.argsort(a.ravel())).astype(np.float64)
    rb = np.argsort(np.argsort(b.ravel())).astype(np.float64)
    return float(np.corrcoef(ra, rb)[0, 1])


# Integrated Gradients completeness on all ten sample images: the midpoint
# rule's error, measured (PoCL, AVX-512) 0.18 % to 3.01 % at 50 steps and at
# most 0.39 % at 400; a real mistake (a wrong baseline, class or scale) is
# far off and does not shrink with more steps.
IG_BOUND = {50: 4.0, 400: 0.5}


def completeness(out):
    """{input: the run's completeness error in %} of its integrated maps."""
    with open(os.path.join(out, "manifest.json")) as f:
        files = json.load(f)["files"]
    res = {}
    for e in files:
        if e["kind"] == "integrated" and e.get("role") == "map":
            m = re.search(r"\(([0-9.]+)%\)", e.get("note") or "")
            res[os.path.basename(e["input"])] = float(m.group(1)) if m else float("inf")
    return res


def check_completeness(work, cfg):
    src = tn.source_dir()
    images = os.path.join(src, "samples", "fashion_mnist", "images")
    with open(cfg, encoding="utf-8") as f:
        pipe = yaml.safe_load(f)
    for key in ("weights", "labels"):
        pipe["model"][key] = os.path.join(os.path.dirname(cfg), pipe["model"][key])
    errs = {}
    for steps, bound in IG_BOUND.items():
        pipe["taps"] = [{"layer": "input", "show": "integrated", "samples": steps}]
        path = os.path.join(work, "fashion_ig%d.yaml" % steps)
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(pipe, f)
        out = os.path.join(work, "fashion_ig%d" % steps)
        p = subprocess.run([BIN, "run", path, "--input", images, "--out", out, "-q", "--no-report"],
                           capture_output=True, text=True)
        check(p.returncode == 0, "fashion IG %d steps: exit %d: %s" % (steps, p.returncode, p.stderr))
        if p.returncode != 0:
            return
        errs[steps] = completeness(out)
        check(len(errs[steps]) == 10, "fashion IG %d steps: 10 maps, got %d" % (steps, len(errs[steps])))
        worst = max(errs[steps].values()) if errs[steps] else float("inf")
        tn.log("  fashion: IG completeness at %d steps: worst %.2f %% of 10 images" % (steps, worst))
        check(worst <= bound, "IG completeness at %d steps: %.2f %% > %g %%: %r" % (steps, worst, bound, errs[steps]))
    # the error is the rule's: more steps shrink it on every image with a visible error
    for k, e50 in errs.get(50, {}).items():
        e400 = errs.get(400, {}).get(k, float("inf"))
        check(e50 < 0.05 or e400 < e50, "IG completeness of %s does not shrink with steps: %.2f %% at 50, %.2f %% at "
              "400" % (k, e50, e400))


def test_fashion(work):
    src = tn.source_dir()
    cfg = os.path.join(src, "configs", "fashion_mnist.yaml")
    img = os.path.join(src, "samples", "fashion_mnist", "images", "9_ankle_boot.png")
    runs = []
    for k in range(2):
        out = os.path.join(work, "fashion_grad_%d" % k)
        p = subprocess.run([BIN, "run", cfg, "--input", img, "--out", out, "--no-taps", "--tap", "input:saliency",
                            "--tap", "input:integrated", "--npy", "-q"], capture_output=True, text=True)
        check(p.returncode == 0, "fashion: exit %d: %s" % (p.returncode, p.stderr))
        runs.append(out)
    check_completeness(work, cfg)
    a = np.load(os.path.join(runs[0], "9_ankle_boot", "saliency_c9.npy"))
    b = np.load(os.path.join(runs[1], "9_ankle_boot", "saliency_c9.npy"))
    check(np.array_equal(a, b), "saliency is reproducible")
    # Re-randomise the top layers (conv4 and the classifier).
    wsrc = os.path.join(src, "samples", "fashion_mnist", "fashion_mnist.safetensors")
    sd, meta = netref.load_safetensors(wsrc)
    g = torch.Generator().manual_seed(7)
    for k in list(sd):
        if k.startswith("features.10.") or k.startswith("classifier."):
            if sd[k].dtype.is_floating_point and k.endswith("weight"):
                sd[k] = torch.randn(sd[k].shape, generator=g, dtype=sd[k].dtype) * sd[k].std()
    wrand = os.path.join(work, "fashion_random_top.safetensors")
    netref.save_safetensors(sd, wrand, meta)
    out = os.path.join(work, "fashion_grad_rand")
    p = subprocess.run([BIN, "run", cfg, "--weights", wrand, "--input", img, "--out", out, "--no-taps",
                        "--tap", "input:saliency", "--class", "9", "--npy", "-q"], capture_output=True, text=True)
    check(p.returncode == 0, "fashion randomised: exit %d: %s" % (p.returncode, p.stderr))
    if p.returncode == 0:
        c = np.load(os.path.join(out, "9_ankle_boot", "saliency_c9.npy"))
        rho = spearman(a, c)
        tn.log("  fashion: saliency rank correlation after re-randomising the top layers %.3f" % rho)
        check(rho < 0.5, "randomised top layers: rank correlation %.3f should be < 0.5" % rho)


# ---- occlusion, blurred baselines, deletion / insertion curves --------------

CURVE_STEPS = 16
ATTR_IMAGE = "9_ankle_boot"


def fashion_ref():
    """(pipeline dict, float64 state dict, float64 input [1, 1, 28, 28]) of the
    sample model and ATTR_IMAGE, preprocessed as model.input says."""
    from PIL import Image
    src = tn.source_dir()
    with open(os.path.join(src, "configs", "fashion_mnist.yaml"), encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    sd, _ = netref.load_safetensors(os.path.join(src, "samples", "fashion_mnist", "fashion_mnist.safetensors"))
    sd = {k: v.double() for k, v in sd.items()}
    spec = cfg["model"]["input"]
    img = np.asarray(Image.open(os.path.join(src, "samples", "fashion_mnist", "images", ATTR_IMAGE + ".png"))
                     .convert("L"), dtype=np.float64)
    x = torch.from_numpy(img).view(1, 1, *img.shape) * float(spec["scale"])
    mean = torch.tensor(spec["mean"], dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(spec["std"], dtype=torch.float64).view(1, -1, 1, 1)
    return cfg, sd, ((x - mean) / std).contiguous()


@torch.no_grad()
def logits_of(cfg, sd, xs, chunk=256):
    """float64 logits [n, classes] of the images xs [n, C, H, W]."""
    out = [netref.run_config(cfg["layers"], sd, xs[i:i + chunk])[0] for i in range(0, xs.shape[0], chunk)]
    return torch.cat(out).numpy()


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def positions(side, window, stride):
    """Window starts along an axis, one by one: i * stride while the window
    ends inside, then one flush with the edge."""
    out, p = [], 0
    while p + window < side:
        out.append(p)
        p += stride
    return out + [side - window]


def occlusion_ref(cfg, sd, x, classes, window, stride):
    """{class: float64 map}: mean over the windows covering each pixel of
    logit(x) - logit(x with the window set to 0 in network units); 0 where
    no window covers a pixel."""
    _, C, H, W = x.shape
    wins = [(y0, x0) for y0 in positions(H, window, stride) for x0 in positions(W, window, stride)]
    xs = x.repeat(len(wins), 1, 1, 1)
    for k, (y0, x0) in enumerate(wins):
        xs[k, :, y0:y0 + window, x0:x0 + window] = 0.0
    l0 = logits_of(cfg, sd, x)[0]
    lw = logits_of(cfg, sd, xs)
    out = {}
    for c in classes:
        s, n = np.zeros((H, W)), np.zeros((H, W))
        for k, (y0, x0) in enumerate(wins):
            s[y0:y0 + window, x0:x0 + window] += l0[c] - lw[k, c]
            n[y0:y0 + window, x0:x0 + window] += 1
        out[c] = np.where(n > 0, s / np.maximum(n, 1), 0.0)
    return out


def blur_ref(x):
    """Gaussian blur of [1, C, H, W] (float64): sigma = max(1, min(H, W) / 32),
    taps exp(-j^2 / 2 sigma^2) for |j| <= ceil(3 sigma) normalised to sum 1,
    edge pixels repeated, along rows then columns."""
    a = x[0].numpy()
    _, H, W = a.shape
    sigma = max(1.0, min(H, W) / 32.0)
    r = int(math.ceil(3 * sigma))
    wt = np.exp(-np.arange(-r, r + 1, dtype=np.float64) ** 2 / (2 * sigma * sigma))
    wt /= wt.sum()
    p = np.pad(a, ((0, 0), (0, 0), (r, r)), mode="edge")
    t = sum(wt[j] * p[:, :, j:j + W] for j in range(2 * r + 1))
    p = np.pad(t, ((0, 0), (r, r), (0, 0)), mode="edge")
    t = sum(wt[j] * p[:, j:j + H, :] for j in range(2 * r + 1))
    return torch.from_numpy(t[None].copy())


def curves_ref(cfg, sd, x, xblur, m, cls, n):
    """float64 deletion and insertion curves (n + 1 points each) of map m for
    class cls: pixels ranked by value, largest first, NaN last, ties by the
    lower flat index; at step i the first floor(i * px / n) are replaced."""
    v = m.astype(np.float64).ravel()
    px = v.size
    key = np.where(np.isnan(v), np.inf, -v)        # NaN after every number
    order = np.lexsort((np.arange(px), key))       # by key, then by index
    _, C, H, W = x.shape
    dele, ins = [], []
    for i in range(n + 1):
        mask = np.zeros(px, dtype=bool)
        mask[order[:i * px // n]] = True
        mk = torch.from_numpy(mask.reshape(1, 1, H, W)).expand(1, C, H, W)
        dele.append(torch.where(mk, torch.zeros_like(x), x))
        ins.append(torch.where(mk, x, xblur))
    p = softmax(logits_of(cfg, sd, torch.cat(dele + ins)))[:, cls]
    return p[:n + 1], p[n + 1:]


def auc(c):
    c = np.asarray(c, dtype=np.float64)
    n = c.size - 1
    return float(sum((c[j] + c[j + 1]) / 2 / n for j in range(n)))


def integrated_ref(cfg, sd, x, base, cls, steps=STEPS):
    """float64 autograd Integrated Gradients, midpoint rule, summed over
    channels."""
    a = torch.tensor([(k + 0.5) / steps for k in range(steps)], dtype=torch.float64).view(-1, 1, 1, 1)
    xk = (base + a * (x - base)).requires_grad_(True)
    y, _ = netref.run_config(cfg["layers"], sd, xk)
    y[:, cls].sum().backward()
    return ((x - base) * xk.grad.sum(0, keepdim=True) / steps)[0].sum(0).numpy()


def map_entries(out):
    with open(os.path.join(out, "manifest.json")) as f:
        files = json.load(f)["files"]
    return {(e["kind"], e["class"]): e for e in files if e.get("role") == "map"}


def load_map(out, kind, cls):
    path = os.path.join(out, ATTR_IMAGE, "%s_c%d.npy" % (kind, cls))
    check(os.path.exists(path), "attribution: no %s" % path)
    return np.load(path) if os.path.exists(path) else None


def check_curves(cfg, sd, x, xblur, out, kind, cls, labels):
    """The manifest's curves of map (kind, cls) against float64 curves
    recomputed from the run's own .npy map."""
    e = map_entries(out).get((kind, cls))
    m = load_map(out, kind, cls)
    check(e is not None, "curves: no manifest map entry for %s class %d" % (kind, cls))
    if e is None or m is None:
        return
    what = "%s c%d curves" % (kind, cls)
    keys = ["deletion", "insertion", "deletion_auc", "insertion_auc", "label"]
    check(all(k in e for k in keys), "%s: manifest entry lacks %s" % (what, [k for k in keys if k not in e]))
    if not all(k in e for k in keys):
        return
    check(e["label"] == labels[cls], "%s: label %r, expected %r" % (what, e["label"], labels[cls]))
    dref, iref = curves_ref(cfg, sd, x, xblur, m, cls, CURVE_STEPS)
    for name, got, ref, a in [("deletion", e["deletion"], dref, e["deletion_auc"]),
                              ("insertion", e["insertion"], iref, e["insertion_auc"])]:
        check(len(got) == CURVE_STEPS + 1, "%s: %s has %d points, expected %d" %
              (what, name, len(got), CURVE_STEPS + 1))
        if len(got) != CURVE_STEPS + 1:
            continue
        err = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - ref)))
        aerr = abs(a - auc(ref))
        tn.log("  %s %s: max |err| %.1e, AUC %.4f (ref %.4f, err %.1e)" % (what, name, err, a, auc(ref), aerr))
        check(err <= 1e-4, "%s: %s points differ by up to %.3e > 1e-4 (got %s, ref %s)" %
              (what, name, err, np.round(got, 6).tolist(), np.round(ref, 6).tolist()))
        check(aerr <= 1e-4, "%s: %s AUC %.6f vs %.6f" % (what, name, a, auc(ref)))
        check(abs(a - auc(got)) <= 1e-6, "%s: %s AUC %.6f is not the trapezoid of its points %.6f" %
              (what, name, a, auc(got)))


def run_bin(args, what):
    t0 = time.time()
    p = subprocess.run([BIN, "run"] + args + ["--npy", "-q"], capture_output=True, text=True)
    tn.log("  %s: %.1f s" % (what, time.time() - t0))
    check(p.returncode == 0, "%s: exit %d: %s" % (what, p.returncode, p.stderr))
    return p.returncode == 0


def test_attribution(work):
    """Occlusion (default and configured windows), deletion / insertion
    curves and Integrated Gradients from a blurred baseline on the sample
    Fashion-MNIST model, against float64 PyTorch."""
    src = tn.source_dir()
    cfg, sd, x = fashion_ref()
    with open(os.path.join(src, "samples", "fashion_mnist", "classes.txt"), encoding="utf-8") as f:
        labels = [s.strip() for s in f if s.strip()]
    img = os.path.join(src, "samples", "fashion_mnist", "images", ATTR_IMAGE + ".png")
    l0 = logits_of(cfg, sd, x)[0]
    top = [int(c) for c in np.argsort(-l0, kind="stable")[:2]]
    xblur = blur_ref(x)

    # (a) default occlusion (window max(1, (28 + 7) // 14) = 2, stride 1,
    # 0 in network units) for the top 2 classes, and (b) curves of every map.
    out = os.path.join(work, "fashion_attr")
    if run_bin([os.path.join(src, "configs", "fashion_mnist.yaml"),
                "--input", img, "--out", out, "--no-taps", "--tap", "input:occlusion", "--tap", "input:saliency",
                "--class", "top2", "--curves", str(CURVE_STEPS)], "fashion occlusion + saliency, top2, curves"):
        ents = map_entries(out)
        check({c for k, c in ents if k == "occlusion"} == set(top),
              "occlusion maps for classes %s, expected the top 2 %s" % (sorted(c for k, c in ents), top))
        ref = occlusion_ref(cfg, sd, x, top, 2, 1)
        for c in top:
            m = load_map(out, "occlusion", c)
            if m is None:
                continue
            e = rel_l2(m, ref[c])
            tn.log("  fashion occlusion c%d (window 2, stride 1): rel. L2 %.2e" % (c, e))
            check(m.shape == ref[c].shape and e <= 1e-4, "occlusion c%d: rel. L2 %.3e > 1e-4" % (c, e))
            note = ents.get(("occlusion", c), {}).get("note", "")
            check("27 x 27 windows of 2 px, stride 1" in note, "occlusion c%d note: %r" % (c, note))
        for kind in ["saliency", "occlusion"]:
            for c in top:
                check_curves(cfg, sd, x, xblur, out, kind, c, labels)

    # (c) a config copy: occlusion with window 5, step 3 (9 x 9 windows, the
    # last one clamped from 24 to 23), and Integrated Gradients from the
    # blurred input.
    with open(os.path.join(src, "configs", "fashion_mnist.yaml"), encoding="utf-8") as f:
        c2 = yaml.safe_load(f)
    for k in ["weights", "labels"]:
        c2["model"][k] = os.path.normpath(os.path.join(src, "configs", c2["model"][k]))
    c2["taps"] = [{"layer": "input", "show": "occlusion", "window": 5, "step": 3},
                  {"layer": "input", "show": "integrated", "baseline": "blur"}]
    c2["output"]["report"] = False
    cpath = os.path.join(work, "fashion_attr.yaml")
    with open(cpath, "w", encoding="utf-8") as f:
        yaml.safe_dump(c2, f, sort_keys=False)
    out = os.path.join(work, "fashion_attr_cfg")
    if run_bin([cpath, "--input", img, "--out", out], "fashion occlusion window 5 step 3, integrated blur"):
        c = top[0]
        ents = map_entries(out)
        m = load_map(out, "occlusion", c)
        if m is not None:
            ref = occlusion_ref(cfg, sd, x, [c], 5, 3)[c]
            e = rel_l2(m, ref)
            tn.log("  fashion occlusion c%d (window 5, step 3): rel. L2 %.2e" % (c, e))
            check(m.shape == ref.shape and e <= 1e-4, "occlusion window 5 step 3: rel. L2 %.3e > 1e-4" % e)
            note = ents.get(("occlusion", c), {}).get("note", "")
            check("9 x 9 windows of 5 px, stride 3" in note, "occlusion window 5 step 3 note: %r" % note)
        m = load_map(out, "integrated", c)
        if m is not None:
            ref = integrated_ref(cfg, sd, x, xblur, c)
            e = rel_l2(m, ref)
            tn.log("  fashion integrated c%d, blurred baseline: rel. L2 %.2e" % (c, e))
            check(m.shape == ref.shape and e <= 1e-3, "integrated, blurred baseline: rel. L2 %.3e > 1e-3" % e)

    # (d) occlusion with gaps (window 2, step 3: rows and columns 2, 5, ...,
    # 23 in no window, exactly 0) and `curves: 16` in the tap: the curves
    # then rank a block of 384 equal values, ties by index.
    c2["taps"] = [{"layer": "input", "show": "occlusion", "window": 2, "step": 3, "curves": CURVE_STEPS}]
    with open(cpath, "w", encoding="utf-8") as f:
        yaml.safe_dump(c2, f, sort_keys=False)
    out = os.path.join(work, "fashion_attr_gaps")
    if run_bin([cpath, "--input", img, "--out", out], "fashion occlusion window 2 step 3, curves"):
        c = top[0]
        m = load_map(out, "occlusion", c)
        if m is not None:
            ref = occlusion_ref(cfg, sd, x, [c], 2, 3)[c]
            e = rel_l2(m, ref)
            gaps = ref == 0
            tn.log("  fashion occlusion c%d (window 2, step 3): rel. L2 %.2e, %d pixels in no window" %
                   (c, e, int(gaps.sum())))
            check(m.shape == ref.shape and e <= 1e-4, "occlusion window 2 step 3: rel. L2 %.3e > 1e-4" % e)
            check(int(gaps.sum()) == 784 - 20 * 20 and m.shape == ref.shape and np.all(m[gaps] == 0),
                  "occlusion window 2 step 3: the %d pixels in no window should be exactly 0" % int(gaps.sum()))
        check_curves(cfg, sd, x, xblur, out, "occlusion", c, labels)


def main():
    work = tn.work_dir()
    img_path, img = tn.scene(work)
    torch.set_num_threads(2)
    for name in ["resnet18", "vgg16"]:
        test_network(name, work, img_path, img)
    test_fashion(work)
    test_attribution(work)
    print("test_gradients: %d passed, %d failed" % (checks - len(failures), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
