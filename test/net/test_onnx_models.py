#!/usr/bin/python3
"""cnnviz-cl's ONNX import against PyTorch: torchvision networks exported with
torch.onnx.export (opsets 13 and 16, evaluation mode, constant folding on),
seeded random weights with randomised batch-norm statistics
(netref.random_init).

    /usr/bin/python3 test/net/test_onnx_models.py [--models name:opset,...]

For each export (cached, see onnxref.py):
  * `import MODEL.onnx -o DIR/NAME.yaml` writes a pipeline whose layer names
    are unique and tappable, ImageNet's preprocessing, and weights holding
    every tensor a layer binds;
  * `run MODEL.onnx --input scene.png` (imported in memory) prints the
    preprocessing it assumed and writes logits within relative L2 1e-4 of
    PyTorch's float64 ones, with the same top-5.
More for some: resnet18 (opset 13) runs the imported pipeline file too and
must give the very same logits, `info MODEL.onnx` lists every layer, and the
activations of the tap `layer2.0.conv1` match its batch norm's (the exporter
folds bn1 into conv1; a forward hook on bn1);
squeezenet1_1 and alexnet (no batch norm for the exporter to fold) keep
every tensor under its state_dict name with its exact values, and the tap
`features.3` (a Fire module) matches the module's output.  resnet18 at
opset 16 has a symbolic batch axis.

The modern networks (efficientnet_b0, mobilenet_v3_large, convnext_tiny,
shufflenet_v2_x1_0, regnet_y_400mf) also have their layer norms and layer
scales randomised (onnxref.make_model).  ConvNeXt's tap `features.1.0.block.4`
(a GELU between its linear layers, channels last in PyTorch) must match the
module's output.

Gradient maps (onnxgrad.py), every network at one opset (GRADIENTS):
`run MODEL.onnx --tap input:saliency --tap LAYER:gradcam --class C` at the
last feature block, against float64 autograd, within relative L2
max(1e-3, 1.5 x PyTorch float32's own distance from float64); the log says
which bound applied.  A map over it but within 1e-2 is held to 1e-3 against
float64 routed through the binary's own ReLU and max-pool decisions, each
one that differs from float64's a float32 near-tie.

The larger exports (SLOW_PLAN) run in test_onnx_models_slow.py (label
`slow`); each GRADIENTS entry is in exactly one of the two plans.
"""
import argparse
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import netref  # noqa: E402
import onnxgrad  # noqa: E402
import onnxref  # noqa: E402

PLAN = [("resnet18", 13, False), ("resnet18", 16, True), ("mobilenet_v2", 13, False),
        ("mobilenet_v2", 16, False), ("squeezenet1_1", 13, False), ("squeezenet1_1", 16, False),
        ("densenet121", 13, False), ("googlenet", 16, False), ("inception_v3", 13, False),
        ("resnet50", 16, False), ("alexnet", 13, False),
        # the newer ops: SiLU and SE gates, hardswish (an op from opset 14), LayerNorm,
        # GELU and linear over channels between transposes, channel shuffle and slices
        ("efficientnet_b0", 13, False), ("mobilenet_v3_large", 16, False), ("convnext_tiny", 13, False),
        ("shufflenet_v2_x1_0", 16, False), ("regnet_y_400mf", 13, False)]

# test_onnx_models_slow.py's: VGG16 (opset 13) and VGG16 with batch norm
# (opset 16), half a gigabyte each, and the networks above at the other opset.
SLOW_PLAN = [("vgg16", 13, False), ("vgg16_bn", 16, False),
             ("densenet121", 16, False), ("googlenet", 13, False), ("inception_v3", 16, False),
             ("resnet50", 13, False), ("alexnet", 16, False), ("efficientnet_b0", 16, False),
             ("mobilenet_v3_large", 13, False), ("convnext_tiny", 16, False),
             ("shufflenet_v2_x1_0", 13, False), ("regnet_y_400mf", 16, False)]

# Saliency and Grad-CAM against float64 autograd (onnxgrad.py): every network
# at one opset, the smaller ones in PLAN, the larger in SLOW_PLAN; each entry
# is run by exactly one of the two plans (main checks it).
GRADIENTS = {("resnet18", 13), ("mobilenet_v2", 13), ("squeezenet1_1", 13), ("efficientnet_b0", 13),
             ("mobilenet_v3_large", 16), ("shufflenet_v2_x1_0", 16), ("regnet_y_400mf", 13),
             ("vgg16", 13), ("vgg16_bn", 16), ("alexnet", 16), ("resnet50", 13), ("densenet121", 16),
             ("googlenet", 13), ("inception_v3", 16), ("convnext_tiny", 16)}


def gradients_unplanned():
    """-> the GRADIENTS entries that not exactly one of PLAN and SLOW_PLAN
    runs (a check no test would do, or one done twice)."""
    runs = [(name, opset) for name, opset, _ in PLAN + SLOW_PLAN]
    return sorted(g for g in GRADIENTS if runs.count(g) != 1)


def logits_of(out, img):
    stem = os.path.splitext(os.path.basename(img))[0]
    return np.load(os.path.join(out, stem, "output.npy"))


def same_as_yaml(binary, ctx):
    """The imported pipeline file, run as any pipeline: the same logits."""
    out = os.path.join(ctx["work"], "out-yaml-" + ctx["key"])
    shutil.rmtree(out, ignore_errors=True)
    r = onnxref.run([binary, "run", ctx["ypath"], "--input", ctx["img"], "--out", out, "--no-taps",
                     "--no-report"])
    if r.returncode != 0:
        return ["%s: run of the imported pipeline exited %d: %s" % (ctx["key"], r.returncode, r.stderr[-800:])]
    got = logits_of(out, ctx["img"])
    if not np.array_equal(got, ctx["got"]):
        return ["%s: the imported pipeline gives other logits than the model (max diff %.3g)"
                % (ctx["key"], float(np.max(np.abs(got - ctx["got"]))))]
    onnxref.log("  %s: the imported pipeline file gives the same logits" % ctx["key"])
    return []


def info_lists(binary, ctx):
    r = onnxref.run([binary, "info", ctx["model"]])
    if r.returncode != 0:
        return ["%s: info exited %d: %s" % (ctx["key"], r.returncode, r.stderr[-800:])]
    missing = [layer["name"] for layer in ctx["cfg"]["layers"] if layer["name"] not in r.stdout]
    fails = ["%s: info does not list %s" % (ctx["key"], ", ".join(missing[:5]))] if missing else []
    if "preprocessing (not part of an ONNX model): ImageNet" not in r.stdout:
        fails.append("%s: info does not say which preprocessing it assumed" % ctx["key"])
    return fails


def tap_matches(binary, name, ctx, layer, module_of, to_chw=None):
    """--tap LAYER --npy against a forward hook on the PyTorch module, float64
    (to_chw: the module's output of one image as [C, H, W])."""
    import torch
    out = os.path.join(ctx["work"], "out-tap-" + ctx["key"])
    shutil.rmtree(out, ignore_errors=True)
    r = onnxref.run([binary, "run", ctx["model"], "--input", ctx["img"], "--out", out, "--no-taps", "--tap",
                     layer, "--npy", "--no-report"])
    if r.returncode != 0:
        return ["%s: run --tap %s exited %d: %s" % (ctx["key"], layer, r.returncode, r.stderr[-800:])]
    stem = os.path.splitext(os.path.basename(ctx["img"]))[0]
    got = np.load(os.path.join(out, stem, layer, "activations.npy"))
    model = onnxref.make_model(name, onnxref.SEEDS[name]).double()
    seen = {}

    def hook(module, inputs, output):
        seen["y"] = output.detach().numpy()[0].copy()  # a ReLU after it works in place
    module_of(model).register_forward_hook(hook)
    img = netref.make_scene(onnxref.scene_size(name), onnxref.SCENE_SEED)
    with torch.no_grad():
        model(netref.preprocess(img, onnxref.input_spec(name)))
    want = to_chw(seen["y"]) if to_chw else seen["y"]
    return onnxref.compare(got.reshape(-1), want.reshape(-1), "%s tap %s" % (ctx["key"], layer))


def names_kept(name, ctx):
    """No batch norm to fold: every tensor is a state_dict tensor, unchanged."""
    sd = onnxref.make_model(name, onnxref.SEEDS[name]).state_dict()
    got, _ = netref.load_safetensors(os.path.splitext(ctx["ypath"])[0] + ".safetensors")
    fails = []
    for k, t in got.items():
        if k not in sd:
            fails.append("%s: tensor %s is not a state_dict name" % (ctx["key"], k))
        elif not np.array_equal(t.numpy(), sd[k].numpy()):
            fails.append("%s: tensor %s differs from the state_dict's" % (ctx["key"], k))
    want = {k for k, t in sd.items() if t.is_floating_point()}
    if set(ctx["weights"]) != want:
        fails.append("%s: %d tensors, the state_dict has %d" % (ctx["key"], len(ctx["weights"]), len(want)))
    if not fails:
        onnxref.log("  %s: all %d tensors under their state_dict names" % (ctx["key"], len(want)))
    return fails[:5]


def extra(binary, name, opset, ctx):
    fails = []
    if (name, opset) == ("resnet18", 13):
        fails += same_as_yaml(binary, ctx)
        fails += info_lists(binary, ctx)
        # the exporter folds bn1 into conv1: the layer's output is bn1's
        fails += tap_matches(binary, name, ctx, "layer2.0.conv1", lambda m: m.layer2[0].bn1)
    if (name, opset) == ("squeezenet1_1", 13):
        fails += names_kept(name, ctx)
        fails += tap_matches(binary, name, ctx, "features.3", lambda m: m.features[3])
    if name == "alexnet":
        fails += names_kept(name, ctx)
    if (name, opset) == ("convnext_tiny", 13):
        # a module that runs channels last: the hook's [H, W, C] is the layer's [C, H, W]
        fails += tap_matches(binary, name, ctx, "features.1.0.block.4", lambda m: m.features[1][0].block[4],
                             lambda y: y.transpose(2, 0, 1))
    if (name, opset) in GRADIENTS:
        fails += onnxgrad.check_gradients(binary, name, opset, ctx)
    return fails


def main(plan=PLAN):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--models", help="comma-separated name:opset (default: this file's plan)")
    args = ap.parse_args()
    if args.models:
        plan = [(m.split(":")[0], int(m.split(":")[1]), False) for m in args.models.split(",")]
    unplanned = gradients_unplanned()
    if unplanned:
        onnxref.log("FAIL: gradient checks that not exactly one plan runs: %s"
                    % ", ".join("%s:%d" % g for g in unplanned))
        return 1
    binary = os.environ.get("CNNVIZ_BIN")
    if not binary or not os.path.exists(binary):
        onnxref.log("FAIL: CNNVIZ_BIN is not set or does not exist (%r)" % binary)
        return 1
    return onnxref.run_models(binary, plan, extra)


if __name__ == "__main__":
    sys.exit(main())
