"""PyTorch side of the ImageNet network checks (one place for each piece).

Used by test/net/test_networks.py and samples/export_torchvision.py:

  build_model(name, pretrained)   torchvision.models.<name>, evaluation mode
  random_init(model, seed)        seeded weights with sane activations,
                                  batch-norm statistics randomised too
  save_safetensors / load_safetensors
                                  the format, written directly when the
                                  `safetensors` package is missing
  make_scene(size, seed)          a "real-looking" RGB test picture (uint8)
  preprocess(img, input_spec)     torchvision eval transform -> float64 NCHW
  reference_logits(model, x)      float64 forward, numpy [N, 1000]
  run_config(layers, sd, x)       a PyTorch interpreter of the pipeline
                                  schema (configs/README.md): checks that a
                                  config computes what torchvision computes
                                  (the ops of modern CNNs too: mul, sub, div
                                  with broadcasting, silu, gelu, layernorm,
                                  linear over channels, slice, pad, resize...)

Needs torch 1.13 / torchvision 0.14 (/usr/bin/python3 on Debian).
"""
import collections
import contextlib
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

IMAGENET_MODELS = ["vgg16", "vgg16_bn", "alexnet", "resnet18", "resnet50",
                   "squeezenet1_1", "mobilenet_v2"]


# ---- models --------------------------------------------------------------

def build_model(name, pretrained=False):
    """torchvision.models.<name> in evaluation mode; pretrained=True fetches
    the DEFAULT weights (needs the internet or a filled torch hub cache)."""
    fn = getattr(torchvision.models, name, None)
    if fn is None or not callable(fn):
        raise ValueError("unknown torchvision model %r" % name)
    model = fn(weights="DEFAULT" if pretrained else None)
    return model.eval()


@torch.no_grad()
def random_init(model, seed):
    """Seeded random weights that keep activations O(1) through deep nets.

    conv / linear weights: Kaiming normal, fan_in (std sqrt(2 / fan_in));
    biases N(0, 0.05).  Batch norm: running_mean N(0, 0.1), running_var,
    weight U(0.5, 1.5), bias N(0, 0.1).  In residual blocks (ResNet basic and
    bottleneck blocks, MobileNetV2 inverted residuals with a skip) the last
    batch norm's weight is scaled by 0.3 so the residual sum does not grow
    block after block.  Deterministic for a given seed and torch version."""
    g = torch.Generator().manual_seed(int(seed))

    def normal(t, std, mean=0.0):
        t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float32) * std + mean)

    def uniform(t, lo, hi):
        t.copy_(torch.rand(t.shape, generator=g, dtype=torch.float32) * (hi - lo) + lo)

    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            fan_in = m.weight[0].numel()
            normal(m.weight, math.sqrt(2.0 / fan_in))
            if m.bias is not None:
                normal(m.bias, 0.05)
        elif isinstance(m, torch.nn.BatchNorm2d):
            normal(m.running_mean, 0.1)
            uniform(m.running_var, 0.5, 1.5)
            uniform(m.weight, 0.5, 1.5)
            normal(m.bias, 0.1)

    from torchvision.models.resnet import BasicBlock, Bottleneck
    from torchvision.models.mobilenetv2 import InvertedResidual
    for m in model.modules():
        if isinstance(m, BasicBlock):
            m.bn2.weight.mul_(0.3)
        elif isinstance(m, Bottleneck):
            m.bn3.weight.mul_(0.3)
        elif isinstance(m, InvertedResidual) and m.use_res_connect:
            m.conv[-1].weight.mul_(0.3)
    return model


def make_model(name, seed=None, pretrained=False):
    model = build_model(name, pretrained)
    if not pretrained:
        random_init(model, 0 if seed is None else seed)
    return model


# ---- safetensors ---------------------------------------------------------

_TORCH_TO_ST = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                torch.float64: "F64", torch.int64: "I64", torch.int32: "I32",
                torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
                torch.bool: "BOOL"}
_ST_TO_NP = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4",
             "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}


def save_safetensors(state_dict, path, metadata=None, use_package=True):
    """Writes `state_dict` (name -> tensor) as safetensors.  Uses the
    `safetensors` package when importable (and use_package), else writes the
    format itself: u64 LE header length, JSON header {name: {dtype, shape,
    data_offsets}, "__metadata__": {str: str}} padded with spaces to a
    multiple of 8, then the tensors' little-endian bytes back to back."""
    tensors = collections.OrderedDict(
        (k, v.detach().cpu().contiguous()) for k, v in state_dict.items())
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    with replaced_atomically(path) as tmp:
        _write_safetensors(tensors, meta, tmp, use_package)


@contextlib.contextmanager
def replaced_atomically(path):
    """Yields a temporary name next to `path`; on success renames it over
    `path` in one step.  Tests run side by side (ctest -j2) share cached
    files: a reader (a run with the weights mapped) keeps the old file
    whole, and never sees half of a new one."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_safetensors(tensors, meta, path, use_package):
    if use_package:
        try:
            from safetensors.torch import save_file
        except ImportError:
            pass
        else:
            save_file(dict(tensors), path, metadata=meta or None)
            return
    header = collections.OrderedDict()
    if meta:
        header["__metadata__"] = meta
    offset = 0
    for name, t in tensors.items():
        if t.dtype not in _TORCH_TO_ST:
            raise ValueError("%s: dtype %s has no safetensors name" % (name, t.dtype))
        n = t.numel() * t.element_size()
        header[name] = {"dtype": _TORCH_TO_ST[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + n]}
        offset += n
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * (-len(hjson) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for name, t in tensors.items():
            if t.dtype == torch.bfloat16:
                raw = t.view(torch.int16).numpy().astype("<i2", copy=False)
            else:
                raw = t.numpy()
                raw = raw.astype(raw.dtype.newbyteorder("<"), copy=False)
            f.write(memoryview(np.ascontiguousarray(raw).reshape(-1)).cast("B"))


def load_safetensors(path):
    """-> (OrderedDict name -> tensor in header order, metadata dict).
    Checks the structure strictly (offsets contiguous, sizes match)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("%s: too short" % path)
        (n,) = struct.unpack("<Q", head)
        header = json.loads(f.read(n).decode("utf-8"),
                            object_pairs_hook=collections.OrderedDict)
    base = 8 + n
    data = np.memmap(path, dtype=np.uint8, mode="r")
    meta = header.pop("__metadata__", {}) or {}
    out = collections.OrderedDict()
    for name, info in header.items():
        b, e = info["data_offsets"]
        dt = info["dtype"]
        shape = [int(s) for s in info["shape"]]
        if dt == "BF16":
            arr = np.frombuffer(data[base + b:base + e].tobytes(), dtype="<i2")
            t = torch.from_numpy(arr.copy()).view(torch.bfloat16)
        else:
            npdt = np.dtype(_ST_TO_NP[dt])
            if e - b != int(np.prod(shape, dtype=np.int64)) * npdt.itemsize:
                raise ValueError("%s: %s: size does not match shape" % (path, name))
            arr = np.frombuffer(data[base + b:base + e], dtype=npdt)
            t = torch.from_numpy(arr.astype(npdt.newbyteorder("="), copy=True))
        out[name] = t.reshape(shape)
    del data
    return out, dict(meta)


# ---- test picture, preprocessing -----------------------------------------

def make_scene(size=256, seed=0):
    """A seeded RGB picture [size, size, 3] uint8: smooth colour gradients,
    soft and hard shapes, texture and noise (so that no layer sees a
    degenerate, constant input)."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    img = np.zeros((size, size, 3))
    for c in range(3):
        a, b, ph = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 6.28)
        img[..., c] = 0.5 + 0.3 * np.sin(a * 3.14 * xx + ph) * np.cos(b * 3.14 * yy)
    img += 0.25 * (yy[..., None] - 0.5) * rng.uniform(-1, 1, 3)
    for _ in range(7):      # filled discs with soft edges
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.2)
        d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        alpha = np.clip((r - d) * size / 3.0, 0, 1)[..., None]
        img = img * (1 - alpha) + alpha * rng.uniform(0, 1, 3)
    for _ in range(5):      # rectangles, hard edges
        x0, y0 = rng.uniform(0, 0.8, 2)
        w, h = rng.uniform(0.05, 0.3, 2)
        mask = ((xx >= x0) & (xx < x0 + w) & (yy >= y0) & (yy < y0 + h))[..., None]
        img = np.where(mask, rng.uniform(0, 1, 3), img)
    # a triangle and a striped texture patch
    p = rng.uniform(0.1, 0.9, (3, 2))
    def side(a, b):
        return (xx - a[0]) * (b[1] - a[1]) - (yy - a[1]) * (b[0] - a[0])
    s0, s1, s2 = side(p[0], p[1]), side(p[1], p[2]), side(p[2], p[0])
    tri = (((s0 >= 0) & (s1 >= 0) & (s2 >= 0)) | ((s0 <= 0) & (s1 <= 0) & (s2 <= 0)))
    img = np.where(tri[..., None], rng.uniform(0, 1, 3), img)
    stripes = 0.5 + 0.5 * np.sin(40 * (xx + 0.6 * yy))
    patch = ((xx > 0.55) & (xx < 0.9) & (yy > 0.1) & (yy < 0.4))[..., None]
    img = np.where(patch, img * 0.5 + 0.5 * stripes[..., None] * rng.uniform(0.3, 1, 3), img)
    img += rng.normal(0, 0.025, img.shape)
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def save_png(img_u8, path):
    from PIL import Image
    with replaced_atomically(path) as tmp:
        Image.fromarray(img_u8, "RGB").save(tmp, format="PNG")


IMAGENET_INPUT = {"shape": [3, 224, 224], "resize": {"shorter": 256, "crop": 224},
                  "scale": 1.0 / 255.0,
                  "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def preprocess(img_u8, spec=None):
    """uint8 [H, W, 3] -> float64 tensor [1, 3, h, w] per a pipeline's
    model.input (default: ImageNet).  resize {shorter, crop} is torchvision's
    Resize(shorter) + CenterCrop(crop) (bilinear, PIL); an image whose
    shorter side already equals `shorter` is only cropped, exactly."""
    spec = spec or IMAGENET_INPUT
    img = np.asarray(img_u8)
    rs = spec.get("resize", "none")
    if isinstance(rs, dict) and "shorter" in rs:
        h, w = img.shape[:2]
        if min(h, w) != rs["shorter"]:
            from PIL import Image
            import torchvision.transforms.functional as TF
            img = np.asarray(TF.resize(Image.fromarray(img), rs["shorter"]))
            h, w = img.shape[:2]
        crop = rs["crop"]
        ch, cw = (crop, crop) if isinstance(crop, int) else crop
        top = int(round((h - ch) / 2.0))
        left = int(round((w - cw) / 2.0))
        img = img[top:top + ch, left:left + cw]
    elif isinstance(rs, dict) and "stretch" in rs:
        from PIL import Image
        sh, sw = rs["stretch"]
        img = np.asarray(Image.fromarray(img).resize((sw, sh), Image.BILINEAR))
    x = torch.from_numpy(img.astype(np.float64)).permute(2, 0, 1).unsqueeze(0)
    x = x * float(spec.get("scale", 1.0 / 255.0))
    mean = torch.tensor(spec.get("mean", [0.0] * 3), dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(spec.get("std", [1.0] * 3), dtype=torch.float64).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous()


@torch.no_grad()
def reference_logits(model, x):
    """float64 forward of `model` (converted in place) on x -> numpy."""
    model.double().eval()
    return model(x.double()).numpy()


# ---- the pipeline schema, interpreted with PyTorch -------------------------

def _hw(v, default):
    if v is None:
        return list(default)
    return [v, v] if isinstance(v, int) else list(v)


def _pad4(v):
    if v is None:
        return [0, 0, 0, 0]
    if isinstance(v, int):
        return [v] * 4
    if len(v) == 2:
        return [v[0], v[0], v[1], v[1]]
    return list(v)


class ConfigError(Exception):
    pass


def _chw4(t):
    """A constant as a 4-D operand per the schema: [n] per channel, [h, w]
    as [1, 1, h, w], [c, h, w] and [1, c, h, w] as they are, a scalar."""
    if t.dim() == 0:
        return t
    if t.dim() == 1:
        return t.view(1, -1, 1, 1)
    if t.dim() == 2:
        return t.view(1, 1, *t.shape)
    if t.dim() == 3:
        return t.unsqueeze(0)
    if t.dim() == 4 and t.shape[0] == 1:
        return t
    raise ConfigError("constant of shape %s" % list(t.shape))


def _binary(op, a, b):
    return {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}[op](a, b)


def run_config(layers, state_dict, x, eps_default=1e-5, relu=None, outs_out=None, pool_idx=None,
               relu_mask=None, hooks=None, given=None):
    """Runs the `layers:` list of a pipeline file on x [1, C, H, W] (any float
    dtype; weights are cast to it).  Checks the bound tensors' shapes against
    the layer keys (out, kernel, groups, bias) and that every state_dict
    tensor except num_batches_tracked is bound by some layer.
    Autograd records the graph when x requires grad (gradient tests);
    relu: optional function replacing F.relu (e.g. a guided-backprop ReLU);
    outs_out: optional dict that receives every layer's output tensor;
    pool_idx: optional {maxpool layer name: indices as F.max_pool2d's
    return_indices gives them}: that layer takes its maximum (value and
    gradient route) from these positions instead of its own argmax;
    relu_mask: optional {relu layer name: bool tensor}: that ReLU passes
    (value and gradient) exactly where the mask is true;
    hooks: optional {layer name: function}: the layer's output is replaced by
    the function of it before any later layer reads it (ablations);
    given: optional {layer name: tensor}: that layer's output, not computed
    (a run of the layers above a layer whose inputs are known; the check of
    unbound tensors is then left out).
    Returns (output tensor, {layer name: output shape without batch})."""
    dt = x.dtype
    used = set()

    def const(name):
        if name not in state_dict:
            raise ConfigError("const: no tensor %s" % name)
        used.add(name)
        return _chw4(state_dict[name].to(dt))

    def param(p, suffix, required=True):
        key = "%s.%s" % (p, suffix)
        if key not in state_dict:
            if required:
                raise ConfigError("params %s: no tensor %s" % (p, key))
            return None
        used.add(key)
        return state_dict[key].to(dt)

    outs = {"input": x}
    shapes = {}
    prev = x
    for d in layers:
        name, op = d["name"], d["op"]
        if name in outs:
            raise ConfigError("%s: duplicate name" % name)
        if given is not None and name in given:
            outs[name] = prev = given[name]
            shapes[name] = list(prev.shape[1:])
            continue
        src = d.get("in")
        srcs = [prev] if src is None else [outs[s] for s in (src if isinstance(src, list) else [src])]
        a = srcs[0]
        p = d.get("params")
        if op == "conv2d":
            w = param(p, "weight")
            b = param(p, "bias", required=False)
            if d.get("bias", True) != (b is not None):
                raise ConfigError("%s: bias key %s but tensor %s" %
                                  (name, d.get("bias", True), "present" if b is not None else "absent"))
            kh, kw = _hw(d.get("kernel"), [0, 0])
            groups = d.get("groups", 1)
            want = [d["out"], a.shape[1] // groups, kh, kw]
            if list(w.shape) != want:
                raise ConfigError("%s: weight %s, config says %s" % (name, list(w.shape), want))
            t, bo, l, r = _pad4(d.get("pad"))
            if t == bo and l == r:
                y = F.conv2d(a, w, b, _hw(d.get("stride"), [1, 1]), [t, l],
                             _hw(d.get("dilation"), [1, 1]), groups)
            else:
                y = F.conv2d(F.pad(a, [l, r, t, bo]), w, b, _hw(d.get("stride"), [1, 1]), 0,
                             _hw(d.get("dilation"), [1, 1]), groups)
        elif op == "batchnorm":
            y = F.batch_norm(a, param(p, "running_mean"), param(p, "running_var"),
                             param(p, "weight"), param(p, "bias"), False, 0.0,
                             float(d.get("eps", eps_default)))
        elif op == "relu" and relu_mask is not None and name in relu_mask:
            y = a * relu_mask[name].to(a.dtype)
        elif op == "relu":
            y = relu(a) if relu else F.relu(a)
        elif op == "relu6":
            y = F.hardtanh(a, 0.0, 6.0)
        elif op == "leaky_relu":
            y = F.leaky_relu(a, float(d.get("slope", 0.01)))
        elif op == "sigmoid":
            y = torch.sigmoid(a)
        elif op == "tanh":
            y = torch.tanh(a)
        elif op == "hardswish":
            y = F.hardswish(a)
        elif op in ("maxpool", "avgpool"):
            k = _hw(d["kernel"], [0, 0])
            s = _hw(d.get("stride"), k)
            t, bo, l, r = _pad4(d.get("pad"))
            if t != bo or l != r:
                raise ConfigError("%s: asymmetric pooling pad not interpreted here" % name)
            if op == "maxpool" and pool_idx is not None and name in pool_idx:
                idx = pool_idx[name]
                y = a.flatten(2).gather(2, idx.flatten(2)).view(idx.shape)
            elif op == "maxpool":
                y = F.max_pool2d(a, k, s, [t, l], _hw(d.get("dilation"), [1, 1]),
                                 ceil_mode=bool(d.get("ceil_mode", False)))
            else:
                y = F.avg_pool2d(a, k, s, [t, l], ceil_mode=bool(d.get("ceil_mode", False)),
                                 count_include_pad=bool(d.get("count_include_pad", True)))
        elif op == "global_avgpool":
            y = a.mean(dim=(2, 3), keepdim=True)
        elif op == "adaptive_avgpool":
            y = F.adaptive_avg_pool2d(a, _hw(d["out"], [0, 0]))
        elif op == "flatten":
            y = a.flatten(1)
        elif op == "linear" and d.get("over", "features") == "features":
            if a.dim() == 4 and a.shape[2:] == (1, 1):
                a = a.flatten(1)
            w = param(p, "weight")
            b = param(p, "bias", required=False)
            if d.get("bias", True) != (b is not None):
                raise ConfigError("%s: bias key disagrees with the weights" % name)
            if list(w.shape) != [d["out"], a.shape[1]]:
                raise ConfigError("%s: weight %s, config says %s" %
                                  (name, list(w.shape), [d["out"], a.shape[1]]))
            y = F.linear(a, w, b)
        elif op == "add" and len(srcs) > 2:
            if any(s.shape != a.shape for s in srcs):
                raise ConfigError("%s: add of three or more needs equal shapes" % name)
            y = srcs[0]
            for s in srcs[1:]:
                y = y + s
        elif op in ("add", "sub", "mul", "div"):
            # flat [N, C] operands broadcast as [N, C, 1, 1]
            flat = all(s.dim() == 2 for s in srcs)
            ops = [s if s.dim() == 4 else s[:, :, None, None] for s in srcs]
            if len(ops) == 1:
                if ("const" in d) == ("value" in d):
                    raise ConfigError("%s: one input needs const or value" % name)
                c = const(d["const"]) if "const" in d else torch.tensor(float(d["value"]), dtype=dt)
                ops = [c, ops[0]] if d.get("const_first", False) else [ops[0], c]
            y = _binary(op, ops[0], ops[1])
            if flat and y.shape[2:] == (1, 1):
                y = y.flatten(1)
        elif op == "silu":
            y = F.silu(a)
        elif op == "gelu":
            y = F.gelu(a, approximate=d.get("approximate", "none"))
        elif op == "hardsigmoid":
            al, be = float(d.get("alpha", 1.0 / 6.0)), float(d.get("beta", 0.5))
            y = F.hardsigmoid(a) if "alpha" not in d and "beta" not in d else torch.clamp(al * a + be, 0.0, 1.0)
        elif op == "clip":
            y = torch.clamp(a, d.get("min"), d.get("max"))
        elif op == "layernorm":
            w = b = None
            if d.get("affine", True):
                w, b = param(p, "weight"), param(p, "bias")
            eps = float(d.get("eps", 1e-5))
            if a.dim() == 2:
                y = F.layer_norm(a, [a.shape[1]], w, b, eps)
            else:
                y = F.layer_norm(a.permute(0, 2, 3, 1), [a.shape[1]], w, b, eps).permute(0, 3, 1, 2)
        elif op == "linear":  # over: channels
            w = param(p, "weight")
            b = param(p, "bias", required=False)
            if d.get("bias", True) != (b is not None):
                raise ConfigError("%s: bias key disagrees with the weights" % name)
            if list(w.shape) != [d["out"], a.shape[1]]:
                raise ConfigError("%s: weight %s, config says %s" % (name, list(w.shape), [d["out"], a.shape[1]]))
            y = F.linear(a, w, b) if a.dim() == 2 else F.conv2d(a, w[:, :, None, None], b)
        elif op == "slice":
            y = a[:, d.get("start", 0):d.get("end", None):d.get("step", 1)]
        elif op == "channel_shuffle":
            g = int(d["groups"])
            sh = list(a.shape)
            y = a.reshape(sh[0], g, sh[1] // g, *sh[2:]).transpose(1, 2).reshape(sh)
        elif op == "pad":
            t, bo, l, r = _pad4(d.get("pad"))
            mode = d.get("mode", "constant")
            if mode == "constant":
                y = F.pad(a, [l, r, t, bo], mode="constant", value=float(d.get("value", 0.0)))
            else:
                y = F.pad(a, [l, r, t, bo], mode=mode)
        elif op == "resize":
            mode = d.get("mode", "nearest")
            kw = {"align_corners": bool(d.get("align_corners", False))} if mode == "bilinear" else {}
            if "size" in d:
                y = F.interpolate(a, size=_hw(d["size"], [0, 0]), mode=mode, **kw)
            else:
                sc = d["scale"]
                sc = [float(sc), float(sc)] if not isinstance(sc, list) else [float(v) for v in sc]
                y = F.interpolate(a, scale_factor=sc, mode=mode, **kw)
        elif op == "global_maxpool":
            y = F.adaptive_max_pool2d(a, 1)
        elif op == "concat":
            y = torch.cat(srcs, dim=1)
        elif op == "softmax":
            y = torch.softmax(a, dim=1)
        elif op == "dropout":
            y = a
        elif op == "lrn":
            y = F.local_response_norm(a, int(d["size"]), float(d.get("alpha", 1e-4)),
                                      float(d.get("beta", 0.75)), float(d.get("k", 1.0)))
        else:
            raise ConfigError("%s: unknown op %s" % (name, op))
        if hooks and name in hooks:
            y = hooks[name](y)
        outs[name] = y
        shapes[name] = list(y.shape[1:])
        prev = y
    if outs_out is not None:
        outs_out.update(outs)
    unused = [k for k in state_dict if k not in used and not k.endswith("num_batches_tracked")]
    if unused and given is None:
        raise ConfigError("tensors not bound by any layer: %s%s" %
                          (", ".join(unused[:5]), " ..." if len(unused) > 5 else ""))
    return prev, shapes
