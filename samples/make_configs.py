#!/usr/bin/python3
"""Writes the shipped ImageNet pipeline files (configs/*.yaml).

    python3 samples/make_configs.py [--out configs] [--labels]

Each architecture is spelled out below, layer by layer, as a copy of the
torchvision 0.14 module of the same name in evaluation mode; the output is
the logits.  `params:` are the torchvision state_dict prefixes, so a file
written by samples/export_torchvision.py (or safetensors.torch.save_file on a
torchvision model's state_dict) loads as is.  The schema is configs/README.md.

Plain Python (no torch) except --labels, which also writes
configs/imagenet_classes.txt from torchvision.models._meta._IMAGENET_CATEGORIES
and needs an interpreter with torchvision (/usr/bin/python3 on Debian).

test/net/test_networks.py --selfcheck runs every generated file through a
PyTorch interpreter of the schema and compares it with torchvision.
"""
import argparse
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

MODELS = ["vgg16", "vgg16_bn", "alexnet", "resnet18", "resnet50",
          "squeezenet1_1", "mobilenet_v2"]

IMAGENET_INPUT = """\
  input:
    shape: [3, 224, 224]
    color: rgb
    resize: {shorter: 256, crop: 224}
    scale: 0.00392156862745098
    mean: [0.485, 0.456, 0.406]
    std:  [0.229, 0.224, 0.225]
"""


def L(name, op, **kw):
    """One layer: name, op, then the keys in the order given."""
    d = {"name": name, "op": op}
    d.update(kw)
    if op == "conv2d" and d.get("stride") == 1:
        del d["stride"]            # the default; keeps the lines short
    return d


# ---- architectures -------------------------------------------------------

VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
             512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16(bn=False):
    layers = []
    idx = 0          # index into torchvision's `features` Sequential
    block, conv = 1, 1
    for v in VGG16_CFG:
        if v == "M":
            layers.append(L("pool%d" % block, "maxpool", kernel=2, stride=2))
            idx += 1
            block, conv = block + 1, 1
            continue
        s = "%d_%d" % (block, conv)
        layers.append(L("conv" + s, "conv2d", out=v, kernel=3, pad=1,
                        params="features.%d" % idx))
        idx += 1
        if bn:
            layers.append(L("bn" + s, "batchnorm", params="features.%d" % idx))
            idx += 1
        layers.append(L("relu" + s, "relu"))
        idx += 1
        conv += 1
    layers += [
        L("avgpool", "adaptive_avgpool", out=[7, 7]),
        L("flatten", "flatten"),
        L("fc6", "linear", out=4096, params="classifier.0"),
        L("relu6", "relu"),
        L("drop6", "dropout", p=0.5),
        L("fc7", "linear", out=4096, params="classifier.3"),
        L("relu7", "relu"),
        L("drop7", "dropout", p=0.5),
        L("fc8", "linear", out=1000, params="classifier.6"),
    ]
    return layers


def alexnet():
    return [
        L("conv1", "conv2d", out=64, kernel=11, stride=4, pad=2, params="features.0"),
        L("relu1", "relu"),
        L("pool1", "maxpool", kernel=3, stride=2),
        L("conv2", "conv2d", out=192, kernel=5, pad=2, params="features.3"),
        L("relu2", "relu"),
        L("pool2", "maxpool", kernel=3, stride=2),
        L("conv3", "conv2d", out=384, kernel=3, pad=1, params="features.6"),
        L("relu3", "relu"),
        L("conv4", "conv2d", out=256, kernel=3, pad=1, params="features.8"),
        L("relu4", "relu"),
        L("conv5", "conv2d", out=256, kernel=3, pad=1, params="features.10"),
        L("relu5", "relu"),
        L("pool5", "maxpool", kernel=3, stride=2),
        L("avgpool", "adaptive_avgpool", out=[6, 6]),
        L("flatten", "flatten"),
        L("drop6", "dropout", p=0.5),
        L("fc6", "linear", out=4096, params="classifier.1"),
        L("relu6", "relu"),
        L("drop7", "dropout", p=0.5),
        L("fc7", "linear", out=4096, params="classifier.4"),
        L("relu7", "relu"),
        L("fc8", "linear", out=1000, params="classifier.6"),
    ]


def resnet(kind, blocks):
    """kind 'basic' (ResNet-18/34) or 'bottleneck' (ResNet-50/101/152, v1.5:
    stride on the 3x3 conv)."""
    expansion = 1 if kind == "basic" else 4
    layers = [
        L("conv1", "conv2d", out=64, kernel=7, stride=2, pad=3, bias=False, params="conv1"),
        L("bn1", "batchnorm", params="bn1"),
        L("relu", "relu"),
        L("maxpool", "maxpool", kernel=3, stride=2, pad=1),
    ]
    prev = "maxpool"
    inplanes = 64
    for stage, (planes, n) in enumerate(zip([64, 128, 256, 512], blocks), start=1):
        for b in range(n):
            stride = 2 if (stage > 1 and b == 0) else 1
            m = "layer%d.%d" % (stage, b)
            out_name = "layer%d" % stage if b == n - 1 else m
            if kind == "basic":
                layers += [
                    L(m + ".conv1", "conv2d", out=planes, kernel=3,
                      stride=stride, pad=1, bias=False, params=m + ".conv1"),
                    L(m + ".bn1", "batchnorm", params=m + ".bn1"),
                    L(m + ".relu1", "relu"),
                    L(m + ".conv2", "conv2d", out=planes, kernel=3, pad=1, bias=False,
                      params=m + ".conv2"),
                    L(m + ".bn2", "batchnorm", params=m + ".bn2"),
                ]
                last_bn = m + ".bn2"
            else:
                layers += [
                    L(m + ".conv1", "conv2d", out=planes, kernel=1,
                      bias=False, params=m + ".conv1"),
                    L(m + ".bn1", "batchnorm", params=m + ".bn1"),
                    L(m + ".relu1", "relu"),
                    L(m + ".conv2", "conv2d", out=planes, kernel=3, stride=stride, pad=1,
                      bias=False, params=m + ".conv2"),
                    L(m + ".bn2", "batchnorm", params=m + ".bn2"),
                    L(m + ".relu2", "relu"),
                    L(m + ".conv3", "conv2d", out=planes * 4, kernel=1, bias=False,
                      params=m + ".conv3"),
                    L(m + ".bn3", "batchnorm", params=m + ".bn3"),
                ]
                last_bn = m + ".bn3"
            identity = prev
            if stride != 1 or inplanes != planes * expansion:
                ds = m + ".downsample"
                layers += [
                    L(ds + ".0", "conv2d", **{"in": prev}, out=planes * expansion, kernel=1,
                      stride=stride, bias=False, params=ds + ".0"),
                    L(ds + ".1", "batchnorm", params=ds + ".1"),
                ]
                identity = ds + ".1"
            layers += [
                L(m + ".add", "add", **{"in": [last_bn, identity]}),
                L(out_name, "relu"),
            ]
            prev = out_name
            inplanes = planes * expansion
    layers += [
        L("avgpool", "global_avgpool"),
        L("flatten", "flatten"),
        L("fc", "linear", out=1000, params="fc"),
    ]
    return layers


def squeezenet1_1():
    layers = [
        L("features.0", "conv2d", out=64, kernel=3, stride=2, params="features.0"),
        L("features.1", "relu"),
        L("features.2", "maxpool", kernel=3, stride=2, ceil_mode=True),
    ]
    fires = {3: (16, 64), 4: (16, 64), 6: (32, 128), 7: (32, 128),
             9: (48, 192), 10: (48, 192), 11: (64, 256), 12: (64, 256)}
    for i in range(3, 13):
        m = "features.%d" % i
        if i not in fires:
            layers.append(L(m, "maxpool", kernel=3, stride=2, ceil_mode=True))
            continue
        sq, ex = fires[i]
        layers += [
            L(m + ".squeeze", "conv2d", out=sq, kernel=1, params=m + ".squeeze"),
            L(m + ".squeeze_activation", "relu"),
            L(m + ".expand1x1", "conv2d", out=ex, kernel=1, params=m + ".expand1x1"),
            L(m + ".expand1x1_activation", "relu"),
            L(m + ".expand3x3", "conv2d", **{"in": m + ".squeeze_activation"}, out=ex,
              kernel=3, pad=1, params=m + ".expand3x3"),
            L(m + ".expand3x3_activation", "relu"),
            L(m, "concat", **{"in": [m + ".expand1x1_activation",
                                     m + ".expand3x3_activation"]}),
        ]
    layers += [
        L("classifier.0", "dropout", p=0.5),
        L("classifier.1", "conv2d", out=1000, kernel=1, params="classifier.1"),
        L("classifier.2", "relu"),
        L("classifier.3", "adaptive_avgpool", out=1),
        L("flatten", "flatten"),
    ]
    return layers


def mobilenet_v2():
    def conv_bn_relu6(m, out, kernel, stride=1, groups=1, name=None):
        """torchvision Conv2dNormActivation: m.0 conv, m.1 bn, m.2 relu6."""
        kw = dict(out=out, kernel=kernel)
        if stride != 1:
            kw["stride"] = stride
        if kernel == 3:
            kw["pad"] = 1
        if groups != 1:
            kw["groups"] = groups
        return [
            L(m + ".0", "conv2d", **kw, bias=False, params=m + ".0"),
            L(m + ".1", "batchnorm", params=m + ".1"),
            L(name or m + ".2", "relu6"),
        ]

    layers = conv_bn_relu6("features.0", 32, 3, stride=2, name="features.0")
    prev, inp, idx = "features.0", 32, 1
    setting = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
               (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    for t, c, n, s in setting:
        for i in range(n):
            stride = s if i == 0 else 1
            m = "features.%d" % idx
            hidden = inp * t
            res = stride == 1 and inp == c
            k = 0
            if t != 1:
                layers += conv_bn_relu6("%s.conv.%d" % (m, k), hidden, 1)
                k += 1
            layers += conv_bn_relu6("%s.conv.%d" % (m, k), hidden, 3, stride=stride,
                                    groups=hidden)
            k += 1
            layers.append(L("%s.conv.%d" % (m, k), "conv2d", out=c, kernel=1, bias=False,
                            params="%s.conv.%d" % (m, k)))
            bn = "%s.conv.%d" % (m, k + 1)
            if res:
                layers += [L(bn, "batchnorm", params=bn),
                           L(m, "add", **{"in": [prev, bn]})]
            else:
                layers.append(L(m, "batchnorm", params=bn))
            prev, inp, idx = m, c, idx + 1
    layers += conv_bn_relu6("features.%d" % idx, 1280, 1, name="features.%d" % idx)
    layers += [
        L("avgpool", "global_avgpool"),
        L("flatten", "flatten"),
        L("classifier.0", "dropout", p=0.2),
        L("classifier.1", "linear", out=1000, params="classifier.1"),
    ]
    return layers


# ---- headers, taps --------------------------------------------------------

VGG_NOTE = """\
# Layer names: convB_N / {bn}reluB_N for block B (1-5), conv N; poolB ends
# block B; then avgpool, flatten, fc6 relu6 drop6 fc7 relu7 drop7 fc8."""

RESNET_NOTE = """\
# Layer names follow the torchvision module paths:
#   conv1 bn1 relu maxpool, then for block layerS.B (stage S = 1-4, block B):
#   layerS.B.conv1 .bn1 .relu1 .conv2 .bn2{bottleneck}
#   layerS.B.downsample.0 / .downsample.1  (first block of a stage, when present)
#   layerS.B.add   the residual sum,  layerS.B  the block output (ReLU of add).
# The LAST block of each stage writes its output under the stage's name
# instead: layer1 ... layer4 (so layer1.{last} is not a name, but
# layer1.{last}.conv1 etc. are).  Then avgpool (global), flatten, fc."""

SQUEEZE_NOTE = """\
# Layer names follow the torchvision module paths: features.N for plain
# modules; in a Fire module features.N: features.N.squeeze,
# .squeeze_activation, .expand1x1, .expand1x1_activation, .expand3x3,
# .expand3x3_activation, and features.N itself is the concat (the Fire
# output).  classifier.0 dropout, classifier.1 the final 1x1 conv (1000
# channels), classifier.2 relu, classifier.3 avgpool (1x1), flatten = logits."""

MOBILENET_NOTE = """\
# Layer names follow the torchvision module paths, and the layer producing a
# block's output carries the block's name:
#   features.0.0 conv, features.0.1 bn, features.0 = its ReLU6 (not features.0.2)
#   inverted residual features.N (N = 1-17): features.N.conv.K.0/.1/.2 for the
#     expand (K=0, absent in features.1) and depthwise conv-bn-relu6 blocks,
#     then the projection features.N.conv.K (1x1 conv) and its batch norm;
#     features.N is the block output: the add (x + bn) when the block has a
#     residual (stride 1, in == out channels), else the projection batch norm
#     itself (then features.N.conv.K+1 is not a name, only a params prefix).
#   features.18.0 conv, features.18.1 bn, features.18 = ReLU6;
#   avgpool (global), flatten, classifier.0 dropout, classifier.1 linear."""

SPECS = {
    "vgg16": dict(
        title="VGG-16 (torchvision.models.vgg16)",
        note=VGG_NOTE.format(bn=""), layers=lambda: vgg16(False),
        taps=["{layer: conv1_1, show: filters}",
              "{layer: [conv1_1, conv2_2, conv3_3, conv4_3, conv5_3, pool5], "
              "show: activations, normalize: per-channel}"]),
    "vgg16_bn": dict(
        title="VGG-16 with batch norm (torchvision.models.vgg16_bn)",
        note=VGG_NOTE.format(bn="bnB_N / "), layers=lambda: vgg16(True),
        taps=["{layer: conv1_1, show: filters}",
              "{layer: [relu1_2, relu2_2, relu3_3, relu4_3, relu5_3, pool5], "
              "show: activations, normalize: per-channel}"]),
    "alexnet": dict(
        title="AlexNet (torchvision.models.alexnet, the one-GPU variant)",
        note="# Layer names: conv1-conv5, relu1-relu5, pool1 pool2 pool5, avgpool,\n"
             "# flatten, drop6 fc6 relu6 drop7 fc7 relu7 fc8.",
        layers=alexnet,
        taps=["{layer: conv1, show: filters}",
              "{layer: [conv1, conv2, conv3, conv4, conv5, pool5], "
              "show: activations, normalize: per-channel}"]),
    "resnet18": dict(
        title="ResNet-18 (torchvision.models.resnet18)",
        note=RESNET_NOTE.format(bottleneck="", last="1"),
        layers=lambda: resnet("basic", [2, 2, 2, 2]),
        taps=["{layer: conv1, show: filters}",
              "{layer: [conv1, layer1, layer2, layer3, layer4], "
              "show: activations, normalize: per-channel}"]),
    "resnet50": dict(
        title="ResNet-50 (torchvision.models.resnet50, v1.5: stride on the 3x3 conv)",
        note=RESNET_NOTE.format(bottleneck=" .relu2 .conv3 .bn3", last="2"),
        layers=lambda: resnet("bottleneck", [3, 4, 6, 3]),
        taps=["{layer: conv1, show: filters}",
              "{layer: [conv1, layer1, layer2, layer3, layer4], "
              "show: activations, normalize: per-channel}"]),
    "squeezenet1_1": dict(
        title="SqueezeNet 1.1 (torchvision.models.squeezenet1_1)",
        note=SQUEEZE_NOTE, layers=squeezenet1_1,
        taps=["{layer: features.0, show: filters}",
              "{layer: [features.1, features.4, features.7, features.12, classifier.2], "
              "show: activations, normalize: per-channel}"]),
    "mobilenet_v2": dict(
        title="MobileNet V2 (torchvision.models.mobilenet_v2)",
        note=MOBILENET_NOTE, layers=mobilenet_v2,
        taps=["{layer: features.0.0, show: filters}",
              "{layer: [features.0, features.3, features.6, features.13, features.18], "
              "show: activations, normalize: per-channel}"]),
}


# ---- YAML emitter ---------------------------------------------------------

def scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(scalar(x) for x in v) + "]"
    return str(v)


def layer_line(d, width):
    head = "name: %s," % d["name"]
    parts = ["%s: %s" % (k, scalar(v)) for k, v in d.items() if k != "name"]
    return "  - {" + head.ljust(width) + " " + ", ".join(parts) + "}"


def render(name):
    spec = SPECS[name]
    layers = spec["layers"]()
    names = [d["name"] for d in layers]
    assert len(set(names)) == len(names), name
    width = max(len("name: %s," % n) for n in names)
    out = ["# %s, as in torchvision 0.14, evaluation mode." % spec["title"],
           "# Generated by samples/make_configs.py (edit that, not this file).",
           "# Output: the 1000 ImageNet logits (no softmax layer).",
           "# Weights: the torchvision state_dict as safetensors, e.g.",
           "#   /usr/bin/python3 samples/export_torchvision.py %s %s.safetensors --pretrained"
           % (name, name),
           "# put beside this file or passed with --weights.",
           spec["note"],
           "version: 1",
           "model:",
           "  name: %s" % name,
           "  weights: %s.safetensors" % name,
           "  labels: imagenet_classes.txt",
           IMAGENET_INPUT.rstrip("\n"),
           "layers:"]
    out += [layer_line(d, width) for d in layers]
    out.append("taps:")
    out += ["  - " + t for t in spec["taps"]]
    out += ["output:",
            "  dir: out/%s" % name,
            "  npy: false",
            "  report: true",
            "  top: 5"]
    return "\n".join(out) + "\n"


def write_labels(path):
    from torchvision.models._meta import _IMAGENET_CATEGORIES
    assert len(_IMAGENET_CATEGORIES) == 1000
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(_IMAGENET_CATEGORIES) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", default=os.path.join(ROOT, "configs"))
    ap.add_argument("--labels", action="store_true",
                    help="also write imagenet_classes.txt (needs torchvision)")
    args = ap.parse_args()
    for name in MODELS:
        path = os.path.join(args.out, name + ".yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(render(name))
        print(path)
    if args.labels:
        path = os.path.join(args.out, "imagenet_classes.txt")
        write_labels(path)
        print(path)


if __name__ == "__main__":
    main()
