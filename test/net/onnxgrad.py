"""Gradient maps of the imported torchvision exports (test_onnx_models*.py)
against PyTorch autograd.

  cam_layer(name, cfg)            the imported layer Grad-CAM is tapped at:
                                  the one whose output feeds the network's
                                  final pooling
  reference_maps(model, name, x, cls)
                                  saliency and Grad-CAM of the torchvision
                                  model itself, in the model's dtype
  check_gradients(binary, name, opset, ctx)
                                  `run MODEL.onnx --tap input:saliency --tap
                                  LAYER:gradcam --class C --npy` against
                                  float64 autograd
  decision_layers, routed_references, check_routed
                                  the same against float64 autograd whose
                                  ReLUs and max-pools take the binary's
                                  decisions

The class is the one ranked second by the float64 logits (the top-1 is not
special).  Each map is held to relative L2 max(RTOL, F32_FACTOR x PyTorch
float32's own distance from float64, same weights and input): a max-pool
window or a pre-activation within float32 rounding of a tie can route a
whole gradient elsewhere in any float32 computation, and the map then sits
that far from float64 without a mistake; the check message says which bound
applied.  PyTorch's float32 and the binary's do not flip the same near-ties
(VGG16 here: PyTorch none, the binary two ReLU signs and one pool window),
so a map over that bound but within LOOSE is held to RTOL against float64
routed through the binary's own ReLU and max-pool decisions (every input of
them tapped), each decision that differs from float64's checked to be a
float32 near-tie (test_gradients.py does the same for the shipped VGG16);
the log says so.  This file is not part of the export cache's stamp (onnxref._stamp):
changing it re-exports nothing.
"""
import os
import re
import shutil
import time

import numpy as np

import netref
import onnxref

RTOL = 1e-3
F32_FACTOR = 1.5
THREADS = 2   # float64 backward passes, beside the binary on a shared machine
# A map over its bound is looked at again (routed_references) when it is
# within LOOSE of float64: any real mistake (routing, transposition, class)
# is O(1).  NEAR_TIE: a decision may differ from float64's only where its
# margin is below this x the layer's largest value (float32 rounding).
LOOSE = 1e-2
NEAR_TIE = 1e-5


def _feature_block(model):
    return model.features


# The module whose output is A, the tensor the final pooling reads: the last
# feature block.  densenet121 is not here: its forward applies F.relu (in
# place) to features' output before pooling, so A is computed by hand.
CAM_MODULE = {
    "resnet18": lambda m: m.layer4, "resnet50": lambda m: m.layer4,
    "vgg16": _feature_block, "vgg16_bn": _feature_block, "alexnet": _feature_block,
    "squeezenet1_1": _feature_block, "mobilenet_v2": _feature_block,
    "efficientnet_b0": _feature_block, "mobilenet_v3_large": _feature_block,
    "convnext_tiny": _feature_block,
    "googlenet": lambda m: m.inception5b, "inception_v3": lambda m: m.Mixed_7c,
    "regnet_y_400mf": lambda m: m.trunk_output, "shufflenet_v2_x1_0": lambda m: m.conv5,
}

# SqueezeNet pools after its classifier convolution (1000 channels, one per
# class: a CAM there is the class's own channel); its last feature block is
# the Fire module features.12, imported under that module path.
CAM_LAYER_OF = {"squeezenet1_1": "features.12"}

POOLS = ("global_avgpool", "adaptive_avgpool", "avgpool")


def cam_layer(name, cfg):
    """-> the imported layer's name: the input of the last pooling layer of
    the pipeline (VGG's and AlexNet's 7 x 7 average pool of kernel 1 too),
    or CAM_LAYER_OF's; None when there is none."""
    if name in CAM_LAYER_OF:
        return CAM_LAYER_OF[name]
    layers = cfg["layers"]
    for i in range(len(layers) - 1, 0, -1):
        if layers[i]["op"] in POOLS:
            src = layers[i].get("in", layers[i - 1]["name"])
            return src if isinstance(src, str) else None
    return None


def tap_dir(layer):
    """The folder name the binary gives a tap of `layer` (cnn_outdir_name):
    characters outside [A-Za-z0-9._-] become '_', at most 100 of them, a
    leading '.' becomes '_', a name ending in an output extension gets '_'."""
    s = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in layer)[:100] or "_"
    if s in (".", ".."):
        s = "_"
    if s[0] == ".":
        s = "_" + s[1:]
    if s.lower().endswith((".png", ".npy", ".json", ".html", ".csv")):
        s += "_"
    return s


def reference_maps(model, name, x, cls):
    """-> (saliency [H, W], Grad-CAM at A's resolution [h, w]) of score =
    logit `cls`, from one backward pass in x's dtype (the model converted to
    it beforehand).  saliency = max over channels of |dscore/dx|; Grad-CAM =
    ReLU(sum_k w_k A_k), w_k = spatial mean of dscore/dA_k."""
    import torch
    import torch.nn.functional as F
    xi = x.clone().requires_grad_(True)
    if name == "densenet121":
        a = F.relu(model.features(xi))
        y = model.classifier(torch.flatten(F.adaptive_avg_pool2d(a, (1, 1)), 1))
    else:
        seen = {}

        def hook(module, inputs, output):
            seen["a"] = output
        h = CAM_MODULE[name](model).register_forward_hook(hook)
        try:
            y = model(xi)
        finally:
            h.remove()
        a = seen["a"]
    a.retain_grad()
    y[0, cls].backward()
    sal = xi.grad[0].abs().amax(0)
    w = a.grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((w * a).sum(1))[0]
    return sal.detach().numpy().copy(), cam.detach().numpy().copy()


def decision_layers(cfg, modules):
    """-> ([(layer, op, input layer, module, call)], [unmapped layers]): the
    imported ReLUs and max-pools, each with the PyTorch module (and which
    call of it: the exporter names a module's second call `<path>_1`) it
    came from; a functional one (F.relu) has no module."""
    found, unmapped, prev = [], [], "input"
    for d in cfg["layers"]:
        if d["op"] in ("relu", "maxpool"):
            src = d.get("in", prev)
            m = re.fullmatch(r"(.*)_(\d+)", d["name"])
            module, call = (m.group(1), int(m.group(2))) if m and m.group(1) in modules else (d["name"], 0)
            if module in modules and isinstance(src, str):
                found.append((d["name"], d["op"], src, module, call))
            else:
                unmapped.append(d["name"])
        prev = d["name"]
    return found, unmapped


def _per_call(model, modules, make):
    """Forward hooks on `modules` that count each one's calls -> the
    handles; make(module, call, input, output) -> a replaced output or None."""
    calls = {}

    def hook_of(name):
        def hook(mod, inputs, output):
            k = calls.get(name, 0)
            calls[name] = k + 1
            return make(name, k, inputs[0], output)
        return hook
    named = dict(model.named_modules())
    return [named[m].register_forward_hook(hook_of(m)) for m in sorted(set(modules))]


def routed_references(model, name, cls, x, decisions, tapped):
    """Float64 saliency and Grad-CAM of `model` (float64, its ReLUs not in
    place) whose ReLUs and max-pools take the binary's decisions
    (tapped[input layer]: the binary's [C, H, W] input of each, float32) ->
    (maps as reference_maps', [(layer, how many decisions differ from
    float64's own, the largest margin among them / the layer's largest
    value)])."""
    import torch
    import torch.nn.functional as F
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        named = dict(model.named_modules())
        key = {(module, call): (layer, op, src) for layer, op, src, module, call in decisions}
        seen = {}
        # float64's own inputs of each decision
        hs = _per_call(model, [d[3] for d in decisions],
                       lambda m, k, a, y: seen.__setitem__((m, k), a.detach()) if (m, k) in key else None)
        try:
            with torch.no_grad():
                model(x)
        finally:
            for h in hs:
                h.remove()
        route, notes = {}, []
        for (module, call), (layer, op, src) in key.items():
            own = seen[(module, call)]
            ours = torch.from_numpy(np.asarray(tapped[src], dtype=np.float64)).reshape(own.shape)
            scale = float(own.abs().max()) or 1.0
            if op == "relu":
                mask = (ours > 0).to(own.dtype)
                diff = (ours > 0) != (own > 0)
                margin = own[diff].abs()
                route[(module, call)] = ("relu", mask)
            else:
                mod = named[module]
                kw = dict(kernel_size=mod.kernel_size, stride=mod.stride, padding=mod.padding,
                          dilation=mod.dilation, ceil_mode=mod.ceil_mode, return_indices=True)
                _, i_own = F.max_pool2d(own, **kw)
                _, i_ours = F.max_pool2d(ours, **kw)
                diff = i_own != i_ours
                flat = own.flatten(2)
                margin = (flat.gather(2, i_own.flatten(2)) - flat.gather(2, i_ours.flatten(2))).view(i_own.shape)[diff]
                route[(module, call)] = ("maxpool", i_ours)
            if bool(diff.any()):
                notes.append((layer, int(diff.sum()), float(margin.max()) / scale))

        def routed(module, call, a, y):
            kind, r = route.get((module, call), (None, None))
            if kind == "relu":
                return a * r
            if kind == "maxpool":
                return a.flatten(2).gather(2, r.flatten(2)).view_as(y)
            return None
        hs = _per_call(model, [d[3] for d in decisions], routed)
        try:
            maps = reference_maps(model, name, x, cls)
        finally:
            for h in hs:
                h.remove()
    finally:
        torch.set_num_threads(threads)
    return maps, notes


def rel_l2(got, ref):
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30))


def references(name, cls):
    """-> {"saliency": (float64 map, float32 map), "gradcam": (...)}: the
    seeded model (onnxref.make_model, as exported) on the test picture,
    float32 first, then the same weights in float64."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        model = onnxref.make_model(name, onnxref.SEEDS[name]).eval()
        img = netref.make_scene(onnxref.scene_size(name), onnxref.SCENE_SEED)
        x = netref.preprocess(img, onnxref.input_spec(name))
        s32, c32 = reference_maps(model.float(), name, x.float(), cls)
        s64, c64 = reference_maps(model.double(), name, x, cls)
        del model
    finally:
        torch.set_num_threads(threads)
    return {"saliency": (s64, s32), "gradcam": (c64, c32)}


def _run_maps(binary, ctx, layer, cls, out, taps=()):
    """`run MODEL.onnx` with the saliency and Grad-CAM taps (and `taps`,
    their activations as .npy) -> (error message or None, the image's output
    folder, seconds)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [binary, "run", ctx["model"], "--input", ctx["img"], "--out", out, "--no-taps",
           "--tap", "input:saliency", "--tap", layer + ":gradcam", "--class", str(cls),
           "--npy", "-q", "--png-level", "0", "--no-report"]
    for t in taps:
        cmd += ["--tap", t]
    t0 = time.time()
    r = onnxref.run(cmd)
    if r.returncode != 0:
        return ("%s: run with gradient taps exited %d: %s" % (ctx["key"], r.returncode, r.stderr.strip()[-1500:]),
                None, 0.0)
    return None, os.path.join(out, os.path.splitext(os.path.basename(ctx["img"]))[0]), time.time() - t0


def _load_map(stem, what, layer, cls, shape, label):
    """-> (the binary's map, None) or (None, failure message)."""
    fname = "saliency" if what == "saliency" else "gradcam_" + tap_dir(layer)
    path = os.path.join(stem, "%s_c%d.npy" % (fname, cls))
    if not os.path.exists(path):
        return None, "%s: no %s" % (label, path)
    got = np.load(path)
    if got.shape != shape:
        return None, "%s: shape %s, expected %s" % (label, list(got.shape), list(shape))
    if not np.all(np.isfinite(got)):
        return None, "%s: non-finite values" % label
    return got, None


def check_gradients(binary, name, opset, ctx):
    """Saliency and Grad-CAM of the class ranked second, through the binary
    (the ONNX file imported in memory), against float64 autograd -> failure
    messages.  A map over its bound but within LOOSE is checked again
    against float64 routed through the binary's own ReLU and max-pool
    decisions (check_routed)."""
    key = ctx["key"]
    layer = cam_layer(name, ctx["cfg"])
    if layer is None or layer not in {d["name"] for d in ctx["cfg"]["layers"]}:
        return ["%s: no imported layer %r for Grad-CAM" % (key, layer)]
    _, ref_logits = onnxref.prepared(name, opset, key.endswith("-dyn"))
    cls = int(np.argsort(-np.asarray(ref_logits, dtype=np.float64), kind="stable")[1])
    err, stem, t_run = _run_maps(binary, ctx, layer, cls, os.path.join(ctx["work"], "out-grad-" + key))
    if err:
        return [err]
    t0 = time.time()
    ref = references(name, cls)
    onnxref.log("  %s: gradients of class %d (second), Grad-CAM at %s; run %.1f s, PyTorch float32 + float64 %.1f s"
                % (key, cls, layer, t_run, time.time() - t0))
    fails, over = [], []
    for what in ("saliency", "gradcam"):
        r64, r32 = ref[what]
        label = "%s %s c%d" % (key, what, cls)
        got, err = _load_map(stem, what, layer, cls, r64.shape, label)
        if err:
            fails.append(err)
            continue
        if not np.count_nonzero(r64) >= r64.size // 4:
            # a map that is mostly 0 would make the comparison say little
            fails.append("%s: the reference map has only %d of %d values non-zero"
                         % (label, np.count_nonzero(r64), r64.size))
            continue
        e, e32 = rel_l2(got, r64), rel_l2(r32, r64)
        bound = max(RTOL, F32_FACTOR * e32)
        which = ("%g" % RTOL) if bound == RTOL else ("%g x PyTorch float32's %.3g" % (F32_FACTOR, e32))
        if e <= bound:
            onnxref.log("  %s: relative L2 %.3g (PyTorch float32 %.3g; bound %s)" % (label, e, e32, which))
            continue
        w = np.unravel_index(int(np.argmax(np.abs(got - r64))), got.shape)
        msg = ("%s: relative L2 %.3g > bound %s (PyTorch float32 %.3g; worst %s: %.7g vs %.7g)"
               % (label, e, which, e32, list(map(int, w)), got[w], r64[w]))
        if e <= LOOSE:
            over.append((what, msg))
        else:
            fails.append(msg)
    if over:
        fails += check_routed(binary, name, ctx, layer, cls, over)
    return fails


def check_routed(binary, name, ctx, layer, cls, over):
    """The maps of `over` ([(what, message)]: over their bound against
    float64, within LOOSE) against float64 whose ReLUs and max-pools take
    the binary's decisions, from a second run that taps every input of
    those: each decision that differs from float64's must be a float32
    near-tie (margin < NEAR_TIE x the layer's largest value), and the maps
    within RTOL of that reference -> failure messages."""
    import torch
    key = ctx["key"]
    t0 = time.time()
    model = onnxref.make_model(name, onnxref.SEEDS[name]).double().eval()
    for m in model.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    decisions, unmapped = decision_layers(ctx["cfg"], dict(model.named_modules()))
    taps = sorted({d[2] for d in decisions})
    err, stem, _ = _run_maps(binary, ctx, layer, cls, os.path.join(ctx["work"], "out-routed-" + key), taps)
    if err:
        return [err]
    tapped = {t: np.load(os.path.join(stem, tap_dir(t), "activations.npy")) for t in taps}
    img = netref.make_scene(onnxref.scene_size(name), onnxref.SCENE_SEED)
    maps, notes = routed_references(model, name, cls, netref.preprocess(img, onnxref.input_spec(name)),
                                    decisions, tapped)
    del model, tapped
    fails = ["%s: %s: %d decisions differ from float64's, one by %.3g of the layer's largest value "
             "(not a float32 near-tie)" % (key, lyr, n, m) for lyr, n, m in notes if not m < NEAR_TIE]
    differ = ", ".join("%s %d" % (lyr, n) for lyr, n, _ in notes) or "none"
    onnxref.log("  %s: %d ReLUs and max-pools tapped (%s not a module: float64's own), decisions that differ "
                "from float64's: %s; largest margin %.3g of its layer's largest value; %.1f s"
                % (key, len(decisions), ", ".join(unmapped) or "none", differ,
                   max([m for _, _, m in notes], default=0.0), time.time() - t0))
    routed = dict(zip(("saliency", "gradcam"), maps))
    for what, msg in over:
        label = "%s %s c%d" % (key, what, cls)
        got, err = _load_map(stem, what, layer, cls, routed[what].shape, label)
        if err:
            fails.append(err)
            continue
        e = rel_l2(got, routed[what])
        if e <= RTOL:
            onnxref.log("  %s; through the binary's decisions: relative L2 %.3g (bound %g)" % (msg, e, RTOL))
        else:
            fails.append("%s; through the binary's decisions: relative L2 %.3g > %g" % (msg, e, RTOL))
    return fails
