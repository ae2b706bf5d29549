#!/usr/bin/python3
"""Blocks of modern CNNs through cnnviz-cl against PyTorch.

    /usr/bin/python3 test/net/test_modern_ops.py

Each network is a small stem, one or two real torchvision blocks (or
F.pad / F.interpolate code as such networks write it) and a linear head,
with seeded random weights, described by a hand-written pipeline:

  efficientnet   two MBConv blocks (SiLU, squeeze-excitation: a [C, 1, 1]
                 sigmoid gate times [C, H, W]; 5x5 stride-2 depthwise;
                 a residual add)
  mobilenetv3    two InvertedResidual blocks (hardswish, SE with
                 hardsigmoid, a residual add)
  convnext       LayerNorm2d stem, one CNBlock (depthwise 7x7, layer norm
                 over channels, linear over channels, GELU, layer scale as
                 `mul const`), LayerNorm2d before the head
  shufflenet     two ShuffleNetV2 units (stride 2: two branches; stride 1:
                 slice, concat, channel_shuffle)
  padpool        clip, reflect / replicate / constant pads before avg and
                 max pooling, x * hardsigmoid(x)
  resize         nearest 2x up, sub / mul / add value / div of two layers,
                 bilinear resize (align_corners false and true), a
                 nearest 0.5x down, GELU (tanh), global max pool

For each: the pipeline interpreted by netref.run_config must equal the
torchvision module (float64, 1e-10: the YAML describes that network); the
binary's logits (output.npy) against the module in float64, relative L2
<= 1e-4, in gradient mode and in a forward-only run (fused plan); saliency and Grad-CAM (and guided backprop where the network has
ReLUs) of the class ranked second, against float64 autograd: relative L2
<= 1e-3, or <= 1.5x PyTorch float32's own distance from float64 where that
is larger (a near-tie: the log says which bound applied).  Nothing is
skipped.
"""
import math
import os
import subprocess
import sys
from collections import OrderedDict
from functools import partial

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import netref  # noqa: E402
import test_gradients as tg  # noqa: E402
import test_networks as tn  # noqa: E402

from torchvision.models import convnext, efficientnet, mobilenetv3, shufflenetv2  # noqa: E402
from torchvision.ops.misc import Conv2dNormActivation  # noqa: E402

BIN = os.environ.get("CNNVIZ_BIN") or os.path.join(tn.source_dir(), "build", "cnnviz-cl")
LOGIT_RTOL = 1e-4
MAP_RTOL = 1e-3
F32_FACTOR = 1.5
SIZE = 32
INPUT = {"shape": [3, SIZE, SIZE], "resize": "none", "scale": 1.0 / 255.0,
         "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}

check = tg.check  # one count of checks and failures

# ---- pipeline helpers --------------------------------------------------------

def conv(name, out, k, params, stride=1, pad=0, groups=1, bias=False, src=None):
    d = {"name": name, "op": "conv2d", "out": out, "kernel": k, "params": params}
    if stride != 1:
        d["stride"] = stride
    if pad:
        d["pad"] = pad
    if groups != 1:
        d["groups"] = groups
    if not bias:
        d["bias"] = False
    if src:
        d["in"] = src
    return d


def layer(name, op, src=None, **kw):
    d = {"name": name, "op": op}
    if src is not None:
        d["in"] = src
    d.update(kw)
    return d


def conv_bn_act(name, out, k, params, act, stride=1, groups=1, src=None):
    """Conv2dNormActivation: conv (no bias), batch norm, activation."""
    ls = [conv(name, out, k, params + ".0", stride, (k - 1) // 2, groups, False, src),
          layer(name + "_bn", "batchnorm", params=params + ".1")]
    if act:
        ls.append(layer(name + "_" + act, act))
    return ls


def inverted(p, src, cin, cout, e, k, stride, act, se_act, gate, sq):
    """An inverted residual with squeeze-excitation (torchvision's MBConv
    and MobileNetV3 InvertedResidual): expand 1x1, depthwise k x k, SE
    (pool, 1x1, se_act, 1x1, gate, x * gate), project 1x1, and the skip
    when the shape allows."""
    ls = conv_bn_act(p + "_exp", e, 1, p + ".block.0", act, src=src)
    ls += conv_bn_act(p + "_dw", e, k, p + ".block.1", act, stride=stride, groups=e)
    ls += [layer(p + "_se_pool", "global_avgpool"),
           conv(p + "_se_fc1", sq, 1, p + ".block.2.fc1", bias=True), layer(p + "_se_act", se_act),
           conv(p + "_se_fc2", e, 1, p + ".block.2.fc2", bias=True), layer(p + "_se_gate", gate),
           layer(p + "_se", "mul", [p + "_dw_" + act, p + "_se_gate"])]
    ls += conv_bn_act(p + "_proj", cout, 1, p + ".block.3", None)
    if stride == 1 and cin == cout:
        ls.append(layer(p, "add", [p + "_proj_bn", src]))
    return ls


def head(classes_in, pool="global_avgpool"):
    return [layer("pool", pool), layer("flat", "flatten"),
            {"name": "fc", "op": "linear", "out": 10, "params": "fc"}]


# ---- networks ------------------------------------------------------------------

def efficientnet_net():
    cfg1 = efficientnet.MBConvConfig(4, 3, 1, 16, 16, 1)
    cfg2 = efficientnet.MBConvConfig(6, 5, 2, 16, 24, 1)
    norm = partial(nn.BatchNorm2d, eps=1e-3)
    m = nn.Sequential(OrderedDict([
        ("stem", Conv2dNormActivation(3, 16, 3, norm_layer=norm, activation_layer=nn.SiLU)),
        ("b1", efficientnet.MBConv(cfg1, 0.0, norm)),
        ("b2", efficientnet.MBConv(cfg2, 0.0, norm)),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(24, 10))]))

    layers = conv_bn_act("stem", 16, 3, "stem", "silu")
    layers += inverted("b1", "stem_silu", 16, 16, 64, 3, 1, "silu", "silu", "sigmoid", 4)
    layers += inverted("b2", "b1", 16, 24, 96, 5, 2, "silu", "silu", "sigmoid", 4)
    layers += head(24)
    for d in layers:
        if d["op"] == "batchnorm":
            d["eps"] = 1e-3
    return m, layers, "b2_proj_bn", False


def mobilenetv3_net():
    c1 = mobilenetv3.InvertedResidualConfig(16, 3, 64, 24, True, "HS", 2, 1, 1.0)
    c2 = mobilenetv3.InvertedResidualConfig(24, 5, 72, 24, True, "HS", 1, 1, 1.0)
    norm = partial(nn.BatchNorm2d, eps=1e-3)
    m = nn.Sequential(OrderedDict([
        ("stem", Conv2dNormActivation(3, 16, 3, stride=2, norm_layer=norm, activation_layer=nn.Hardswish)),
        ("b1", mobilenetv3.InvertedResidual(c1, norm)),
        ("b2", mobilenetv3.InvertedResidual(c2, norm)),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(24, 10))]))

    layers = conv_bn_act("stem", 16, 3, "stem", "hardswish", stride=2)
    for p, src, mod, cin, e, k, stride in [("b1", "stem_hardswish", m.b1, 16, 64, 3, 2),
                                           ("b2", "b1_proj_bn", m.b2, 24, 72, 5, 1)]:
        layers += inverted(p, src, cin, 24, e, k, stride, "hardswish", "relu", "hardsigmoid",
                           mod.block[2].fc1.out_channels)
    layers += head(24)
    for d in layers:
        if d["op"] == "batchnorm":
            d["eps"] = 1e-3
    return m, layers, "b2", True


def convnext_net():
    m = nn.Sequential(OrderedDict([
        ("stem", nn.Sequential(nn.Conv2d(3, 32, 4, 4), convnext.LayerNorm2d(32, eps=1e-6))),
        ("blk", convnext.CNBlock(32, 1.0, 0.0)),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("norm", convnext.LayerNorm2d(32, eps=1e-6)),
        ("flat", nn.Flatten()), ("fc", nn.Linear(32, 10))]))
    layers = [conv("stem", 32, 4, "stem.0", stride=4, bias=True),
              layer("stem_ln", "layernorm", params="stem.1", eps=1e-6),
              conv("blk_dw", 32, 7, "blk.block.0", pad=3, groups=32, bias=True),
              layer("blk_ln", "layernorm", params="blk.block.2", eps=1e-6),
              layer("blk_fc1", "linear", over="channels", out=128, params="blk.block.3"),
              layer("blk_gelu", "gelu"),
              layer("blk_fc2", "linear", over="channels", out=32, params="blk.block.5"),
              layer("blk_scale", "mul", const="blk.layer_scale"),
              layer("blk", "add", ["blk_scale", "stem_ln"]),
              layer("pool", "global_avgpool"),
              layer("head_ln", "layernorm", params="norm", eps=1e-6),
              layer("flat", "flatten"), {"name": "fc", "op": "linear", "out": 10, "params": "fc"}]
    return m, layers, "blk", False


def shufflenet_net():
    m = nn.Sequential(OrderedDict([
        ("stem", nn.Sequential(nn.Conv2d(3, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU())),
        ("u1", shufflenetv2.InvertedResidual(24, 48, 2)),
        ("u2", shufflenetv2.InvertedResidual(48, 48, 1)),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flat", nn.Flatten()), ("fc", nn.Linear(48, 10))]))

    def branch2(p, src, bf, stride):
        return [conv(p + "_b2a", bf, 1, p + ".branch2.0", src=src), layer(p + "_b2a_bn", "batchnorm",
                                                                          params=p + ".branch2.1"),
                layer(p + "_b2a_relu", "relu"),
                conv(p + "_b2dw", bf, 3, p + ".branch2.3", stride, 1, bf),
                layer(p + "_b2dw_bn", "batchnorm", params=p + ".branch2.4"),
                conv(p + "_b2b", bf, 1, p + ".branch2.5"), layer(p + "_b2b_bn", "batchnorm", params=p + ".branch2.6"),
                layer(p + "_b2", "relu")]

    layers = [conv("stem", 24, 3, "stem.0", 2, 1), layer("stem_bn", "batchnorm", params="stem.1"),
              layer("stem_relu", "relu")]
    # u1: stride 2, two branches of 24
    layers += [conv("u1_b1dw", 24, 3, "u1.branch1.0", 2, 1, 24, src="stem_relu"),
               layer("u1_b1dw_bn", "batchnorm", params="u1.branch1.1"),
               conv("u1_b1pw", 24, 1, "u1.branch1.2"), layer("u1_b1pw_bn", "batchnorm", params="u1.branch1.3"),
               layer("u1_b1", "relu")]
    layers += branch2("u1", "stem_relu", 24, 2)
    layers += [layer("u1_cat", "concat", ["u1_b1", "u1_b2"]), layer("u1", "channel_shuffle", groups=2)]
    # u2: stride 1, x.chunk(2): the first half passes, the second goes through branch2
    layers += [layer("u2_x1", "slice", "u1", end=24), layer("u2_x2", "slice", "u1", start=24)]
    layers += branch2("u2", "u2_x2", 24, 1)
    layers += [layer("u2_cat", "concat", ["u2_x1", "u2_b2"]), layer("u2", "channel_shuffle", groups=2)]
    layers += head(48)
    return m, layers, "u2", True


class PadPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3)
        self.c2 = nn.Conv2d(8, 8, 3)
        self.fc = nn.Linear(8 * 16, 10)

    def forward(self, x):
        y = torch.clamp(self.c1(x), -1.0, 1.5)                          # 30
        y = F.pad(y, [1, 2, 2, 1], mode="reflect")                       # 33
        y = F.avg_pool2d(y, 3, 2, count_include_pad=False)               # 16
        y = self.c2(y)                                                   # 14
        y = y * F.hardsigmoid(y)
        y = F.pad(y, [0, 1, 1, 0], mode="replicate")                     # 15
        y = F.avg_pool2d(y, 2, 2)                                        # 7
        y = F.pad(y, [1, 1, 1, 1], value=-0.25)                          # 9
        y = F.max_pool2d(y, 3, 2)                                        # 4
        return self.fc(y.flatten(1))


def padpool_net():
    layers = [conv("c1", 8, 3, "c1", bias=True), layer("clip", "clip", min=-1.0, max=1.5),
              layer("pad_reflect", "pad", pad=[2, 1, 1, 2], mode="reflect"),
              layer("avg", "avgpool", kernel=3, stride=2, count_include_pad=False),
              conv("c2", 8, 3, "c2", bias=True), layer("hsig", "hardsigmoid"),
              layer("gated", "mul", ["c2", "hsig"]),
              layer("pad_replicate", "pad", pad=[1, 0, 0, 1], mode="replicate"),
              layer("avg2", "avgpool", kernel=2),
              layer("pad_const", "pad", pad=1, value=-0.25),
              layer("max", "maxpool", kernel=3, stride=2),
              layer("flat", "flatten"), {"name": "fc", "op": "linear", "out": 10, "params": "fc"}]
    return PadPool(), layers, "c2", False


class Resize(nn.Module):
    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(3, 8, 3, padding=1)
        self.c1 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        c0 = self.c0(x)                                                  # 32
        a1 = F.gelu(self.c1(c0), approximate="tanh")                     # 16
        up = F.interpolate(a1, scale_factor=2.0, mode="nearest")         # 32
        d = (c0 - up) / (up * up + 1.0)
        s = F.interpolate(d, size=(21, 27), mode="bilinear", align_corners=False)
        c2 = self.c2(s)                                                  # 19 x 25
        u2 = F.interpolate(c2, size=(30, 30), mode="bilinear", align_corners=True)
        u3 = F.interpolate(u2, scale_factor=0.5, mode="nearest")         # 15
        return self.fc(F.adaptive_max_pool2d(u3, 1).flatten(1))


def resize_net():
    layers = [conv("c0", 8, 3, "c0", pad=1, bias=True), conv("c1", 8, 3, "c1", 2, 1, bias=True),
              layer("a1", "gelu", approximate="tanh"), layer("up", "resize", scale=2.0),
              layer("diff", "sub", ["c0", "up"]), layer("sq", "mul", ["up", "up"]),
              layer("sq1", "add", value=1.0), layer("ratio", "div", ["diff", "sq1"]),
              layer("bil", "resize", size=[21, 27], mode="bilinear"),
              conv("c2", 8, 3, "c2", bias=True),
              layer("bil_ac", "resize", size=[30, 30], mode="bilinear", align_corners=True),
              layer("down", "resize", scale=0.5),
              layer("gmax", "global_maxpool"), layer("flat", "flatten"),
              {"name": "fc", "op": "linear", "out": 10, "params": "fc"}]
    return Resize(), layers, "c2", False


NETWORKS = [("efficientnet", efficientnet_net), ("mobilenetv3", mobilenetv3_net), ("convnext", convnext_net),
            ("shufflenet", shufflenet_net), ("padpool", padpool_net), ("resize", resize_net)]


# ---- references -----------------------------------------------------------------

@torch.no_grad()
def seed_weights(model, seed):
    """netref.random_init (conv, linear, batch norm), then layer norms and
    layer scales, which it leaves at their defaults (ones, zeros, 1e-6)."""
    netref.random_init(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, (nn.LayerNorm, convnext.LayerNorm2d)):
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        if isinstance(m, convnext.CNBlock):
            m.layer_scale.copy_(torch.rand(m.layer_scale.shape, generator=g) * 0.5 + 0.25)
    return model


def maps(layers, sd, x, cls, cam, guided):
    """autograd maps in x's dtype: saliency, Grad-CAM at `cam`, guided."""
    out = {}
    xi = x.clone().requires_grad_(True)
    outs = {}
    y, _ = netref.run_config(layers, sd, xi, outs_out=outs)
    act = outs[cam]
    act.retain_grad()
    y[0, cls].backward()
    out["saliency"] = xi.grad[0].abs().amax(0).numpy().astype(np.float64)
    w = act.grad.mean(dim=(2, 3), keepdim=True)
    out["gradcam"] = torch.relu((w * act).sum(1))[0].detach().numpy().astype(np.float64)
    if guided:
        xg = x.clone().requires_grad_(True)
        y, _ = netref.run_config(layers, sd, xg, relu=tg.GuidedReLU.apply)
        y[0, cls].backward()
        out["guided"] = xg.grad[0].abs().amax(0).numpy().astype(np.float64)
    return out


def rel_l2(got, ref):
    return float(np.linalg.norm(np.asarray(got, np.float64) - ref) / max(np.linalg.norm(ref), 1e-30))


def test_network(name, build, work, img_path, img, seed):
    model, layers, cam, guided = build()
    seed_weights(model, seed)
    model.eval()
    sd32 = OrderedDict((k, v.detach().float().contiguous()) for k, v in model.state_dict().items())
    wpath = os.path.join(work, name + ".safetensors")
    netref.save_safetensors(sd32, wpath)
    sd64 = {k: v.double() for k, v in sd32.items()}
    x = netref.preprocess(img, INPUT)

    # the pipeline is that network
    with torch.no_grad():
        m64 = model.double()
        ref = m64(x).numpy()[0]
        via_cfg = netref.run_config(layers, sd64, x)[0].numpy()[0]
        ref32 = model.float()(x.float()).double().numpy()[0]
    e_cfg = rel_l2(via_cfg, ref)
    check(e_cfg <= 1e-10, "%s: the pipeline interpreted by netref differs from the module: %.2e" % (name, e_cfg))

    cls = int(np.argsort(-ref, kind="stable")[1])
    cfg = {"version": 1, "model": {"name": name, "weights": os.path.basename(wpath), "input": INPUT},
           "layers": layers}
    cpath = os.path.join(work, name + ".yaml")
    with open(cpath, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    out = os.path.join(work, name + "_out")
    cmd = [BIN, "run", cpath, "--input", img_path, "--out", out, "--no-taps", "--tap", "input:saliency",
           "--tap", cam + ":gradcam", "--class", str(cls), "--npy", "-q", "--no-report", "--png-level", "0"]
    if guided:
        cmd += ["--tap", "input:guided"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    check(p.returncode == 0, "%s: exit %d: %s" % (name, p.returncode, p.stderr))
    if p.returncode != 0:
        return
    stem = os.path.splitext(os.path.basename(img_path))[0]
    got = np.load(os.path.join(out, stem, "output.npy"))
    e = rel_l2(got, ref)
    tn.log("%s: logits rel. L2 %.2e (PyTorch float32 %.2e)" % (name, e, rel_l2(ref32, ref)))
    check(e <= LOGIT_RTOL, "%s: logits rel. L2 %.3e > %g" % (name, e, LOGIT_RTOL))
    # forward only: the plan fuses (activations into convolutions and
    # binary ops, batch norm into convolutions) and reuses buffers
    fwd = os.path.join(work, name + "_fwd")
    p = subprocess.run([BIN, "run", cpath, "--input", img_path, "--out", fwd, "--no-taps", "-q", "--no-report"],
                       capture_output=True, text=True)
    check(p.returncode == 0, "%s forward only: exit %d: %s" % (name, p.returncode, p.stderr))
    if p.returncode == 0:
        e = rel_l2(np.load(os.path.join(fwd, stem, "output.npy")), ref)
        tn.log("%s: logits of the fused forward rel. L2 %.2e" % (name, e))
        check(e <= LOGIT_RTOL, "%s: fused forward logits rel. L2 %.3e > %g" % (name, e, LOGIT_RTOL))

    r64 = maps(layers, sd64, x, cls, cam, guided)
    r32 = maps(layers, sd32, x.float(), cls, cam, guided)
    files = {"saliency": "saliency", "gradcam": "gradcam_" + cam, "guided": "guided"}
    for method in r64:
        path = os.path.join(out, stem, "%s_c%d.npy" % (files[method], cls))
        check(os.path.exists(path), "%s: no %s" % (name, path))
        if not os.path.exists(path):
            continue
        m = np.load(path)
        check(m.shape == r64[method].shape, "%s %s: shape %s, expected %s" % (name, method, m.shape,
                                                                              r64[method].shape))
        if m.shape != r64[method].shape:
            continue
        e, e32 = rel_l2(m, r64[method]), rel_l2(r32[method], r64[method])
        tol, which = MAP_RTOL, "1e-3"
        if F32_FACTOR * e32 > tol:
            tol, which = F32_FACTOR * e32, "1.5x PyTorch float32"
        tn.log("  %s %s c%d: rel. L2 %.2e (PyTorch float32 %.2e; bound %s)" % (name, method, cls, e, e32, which))
        check(e <= tol, "%s %s: rel. L2 %.3e > %.3e (%s)" % (name, method, e, tol, which))


def main():
    work = os.path.join(tn.work_dir(), "modern")
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(2)
    img = netref.make_scene(SIZE, 11)
    img_path = os.path.join(work, "scene32.png")
    netref.save_png(img, img_path)
    for k, (name, build) in enumerate(NETWORKS):
        test_network(name, build, work, img_path, img, 100 + k)
    print("test_modern_ops: %d passed, %d failed" % (tg.checks - len(tg.failures), len(tg.failures)))
    return 1 if tg.failures else 0


if __name__ == "__main__":
    sys.exit(main())
