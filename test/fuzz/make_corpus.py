#!/usr/bin/python3
"""Writes the seed corpora under test/fuzz/corpus/ (small files; run with
Debian's python3, which has numpy and PIL).  The files are checked in; run
this again only to change them."""
import io
import json
import os
import shutil
import struct
import sys
import zlib

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def out(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- configs
def configs():
    src = os.path.join(ROOT, "configs")
    for name in sorted(os.listdir(src)):
        if name.endswith(".yaml"):
            with open(os.path.join(src, name), "rb") as f:
                out("fuzz_config", name, f.read())
    # A small pipeline that uses every op (shapes chain correctly).
    out("fuzz_config", "every_op.yaml", b"""version: 1
model:
  name: every
  weights: w.safetensors
  input: {shape: [3, 16, 16], color: rgb, resize: {shorter: 20, crop: 16}, mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2]}
layers:
  - {name: c1, op: conv2d, out: 8, kernel: 3, pad: 1, stride: 1, dilation: 1, groups: 1, bias: true, params: f.0}
  - {name: bn, op: batchnorm, eps: 0.001, params: f.1}
  - {name: r, op: relu}
  - {name: r6, op: relu6}
  - {name: lr, op: leaky_relu, slope: 0.1}
  - {name: sg, op: sigmoid}
  - {name: th, op: tanh}
  - {name: hs, op: hardswish}
  - {name: ln, op: lrn, size: 3, alpha: 0.0001, beta: 0.75, k: 1}
  - {name: mp, op: maxpool, kernel: 3, stride: 2, pad: 1, ceil_mode: false}
  - {name: ap, op: avgpool, kernel: [2, 2], count_include_pad: false}
  - {name: c2, op: conv2d, in: mp, out: 8, kernel: [3, 3], stride: 2, pad: [1, 1, 1, 1], groups: 8, params: f.2}
  - {name: sum, op: add, in: [c2, ap]}
  - {name: cat, op: concat, in: [sum, ap]}
  - {name: aap, op: adaptive_avgpool, out: [2, 2]}
  - {name: gap, op: global_avgpool, in: cat}
  - {name: fl, op: flatten}
  - {name: dr, op: dropout, p: 0.5}
  - {name: fc, op: linear, out: 10, bias: false, params: f.3}
  - {name: sm, op: softmax}
taps:
  - {layer: c1, show: filters, normalize: per-channel, colormap: rdbu, columns: 4, signed: true}
  - {layer: [r, mp], show: activations, normalize: fixed, range: [0, 1], clip: [1, 99], max_channels: 4}
  - {layer: fc, show: weights, units: 2}
  - {show: saliency, class: top1, score: prob}
  - {show: integrated, samples: 8, baseline: black}
  - {layer: c2, show: gradcam, alpha: 0.4}
  - {show: smoothgrad, sigma: 0.1, samples: 4}
  - {show: occlusion, window: 4, step: 2, baseline: 0.5}
output: {dir: out/x, npy: true, report: false, top: 3, png_level: 1}
""")


# ---------------------------------------------------------- safetensors
def safetensors(tensors, metadata=None):
    hdr, blobs, off = {}, [], 0
    if metadata is not None:
        hdr["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(hdr).encode()
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def weights():
    rng = np.random.default_rng(0)
    f32 = lambda *s: rng.standard_normal(s).astype("<f4").tobytes()
    out("fuzz_safetensors", "f32.safetensors", safetensors({
        "features.0.weight": ("F32", [2, 1, 3, 3], f32(2, 1, 3, 3)),
        "features.0.bias": ("F32", [2], f32(2)),
    }, {"format": "pt"}))
    out("fuzz_safetensors", "mixed.safetensors", safetensors({
        "a.weight": ("F16", [2, 2], rng.standard_normal(4).astype("<f2").tobytes()),
        "a.bias": ("BF16", [2], b"\x80\x3f\x00\x40"),
        "a.num_batches_tracked": ("I64", [], struct.pack("<q", 7)),
        "b.empty": ("F32", [0, 3], b""),
        "b.u8": ("U8", [3], b"\x01\x02\x03"),
    }))
    out("fuzz_safetensors", "empty.safetensors", safetensors({}))
    out("fuzz_safetensors", "scalar.safetensors", safetensors({"s": ("F32", [], f32(1))}))


# ---------------------------------------------------------------- images
def png_bytes(im, **kw):
    b = io.BytesIO()
    im.save(b, "PNG", **kw)
    return b.getvalue()


def jpeg_bytes(im, **kw):
    b = io.BytesIO()
    im.save(b, "JPEG", **kw)
    return b.getvalue()


def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def raw_png(w, h, depth, color, rows, interlace=0, extra=b""):
    """rows: bytes per row; interlaced images must have whole bytes per pixel."""
    if interlace:
        bpp = len(rows[0]) // w
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            for y in range(y0, h, dy):
                sub = b"".join(rows[y][x * bpp:(x + 1) * bpp] for x in range(x0, w, dx))
                if sub:
                    raw += b"\x00" + sub
    else:
        raw = b"".join(b"\x00" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace))
            + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def images():
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), "RGB")
    gray = rgb.convert("L")
    out("fuzz_png", "rgb8.png", png_bytes(rgb))
    out("fuzz_png", "gray8.png", png_bytes(gray))
    out("fuzz_png", "rgba8.png", png_bytes(rgb.convert("RGBA")))
    out("fuzz_png", "gray_alpha8.png", png_bytes(gray.convert("LA")))
    out("fuzz_png", "palette.png", png_bytes(rgb.convert("P", palette=Image.ADAPTIVE, colors=16)))
    out("fuzz_png", "gray1.png", png_bytes(gray.convert("1")))
    g16 = [struct.pack(">8H", *[(x * 8191 + y) & 0xffff for x in range(8)]) for y in range(6)]
    out("fuzz_png", "gray16.png", raw_png(8, 6, 16, 0, g16))
    rgb16 = [struct.pack(">24H", *[(x * 2731 + y * 17) & 0xffff for x in range(24)]) for y in range(6)]
    out("fuzz_png", "rgb16.png", raw_png(8, 6, 16, 2, rgb16))
    rgba16 = [struct.pack(">32H", *[(x * 2053) & 0xffff for x in range(32)]) for _ in range(4)]
    out("fuzz_png", "rgba16.png", raw_png(8, 4, 16, 6, rgba16))
    rows = [bytes((x * 31 + y * 7) & 0xff for x in range(8)) for y in range(8)]
    out("fuzz_png", "interlaced.png", raw_png(8, 8, 8, 0, rows, interlace=1))
    plte = chunk(b"PLTE", bytes(range(12))) + chunk(b"tRNS", b"\x00\x80")
    out("fuzz_png", "palette2_trns.png", raw_png(8, 2, 2, 3, [b"\x1b\xe4", b"\xe4\x1b"], extra=plte))
    out("fuzz_png", "gray4_text.png", raw_png(4, 2, 4, 0, [b"\x01\x23", b"\x45\x67"],
                                              extra=chunk(b"tEXt", b"Comment\x00seed")))

    # Layouts met in real files: 8-bit palette with partial transparency,
    # interlaced colour (8- and 16-bit).
    pal = rgb.convert("P", palette=Image.ADAPTIVE, colors=32)
    out("fuzz_png", "palette8_trns.png", png_bytes(pal, transparency=bytes(range(0, 256, 8))))
    rows = [bytes((x * 37 + y * 11 + c * 80) & 0xff for x in range(9) for c in range(3)) for y in range(7)]
    out("fuzz_png", "interlaced_rgb.png", raw_png(9, 7, 8, 2, rows, interlace=1))
    rows = [struct.pack(">27H", *[(x * 7919 + y * 2311 + c * 20011) & 0xffff for x in range(9) for c in range(3)])
            for y in range(7)]
    out("fuzz_png", "interlaced_rgb16.png", raw_png(9, 7, 16, 2, rows, interlace=1))

    out("fuzz_jpeg", "rgb420.jpg", jpeg_bytes(rgb, quality=80))
    out("fuzz_jpeg", "rgb444.jpg", jpeg_bytes(rgb, quality=90, subsampling=0))
    out("fuzz_jpeg", "gray.jpg", jpeg_bytes(gray, quality=80))
    out("fuzz_jpeg", "progressive.jpg", jpeg_bytes(rgb, quality=75, progressive=True))
    out("fuzz_jpeg", "gray_progressive.jpg", jpeg_bytes(gray, progressive=True))
    out("fuzz_jpeg", "cmyk.jpg", jpeg_bytes(rgb.convert("CMYK"), quality=80))
    out("fuzz_jpeg", "restart.jpg", jpeg_bytes(rgb, quality=70, optimize=True))
    # A camera's portrait photo: stored landscape, EXIF orientation 6 (rotate
    # 90 degrees clockwise to view).  Decoders that follow PIL.Image.open
    # give the pixels as stored.
    exif = Image.Exif()
    exif[0x0112] = 6
    out("fuzz_jpeg", "exif_orientation6.jpg", jpeg_bytes(rgb, quality=85, exif=exif.tobytes()))


# ---------------------------------------------------------------- @lists
def lists():
    out("fuzz_list", "plain.txt", b"images/a.png\nimages/b.jpg\n")
    out("fuzz_list", "windows.txt", b"\xef\xbb\xbfa.png\r\n  b c.png \t\r\n\r\n# comment\r\nsub/\r\n")
    out("fuzz_list", "nested.txt", b"# lists of lists\n@more.txt\n  @../other/list.txt\t\n/abs/x.jpeg\n")
    out("fuzz_list", "odd_names.txt", b"caf\xc3\xa9.png\n\xff\xfe.png\nesc\x1b[31m.png\n\xc2\x9bx.png\nlast.png")
    out("fuzz_list", "long.txt", b"ok.png\n" + b"d/" * 2047 + b"x.png\n")
    out("fuzz_list", "bare_at.txt", b"a.png\n@\n")
    out("fuzz_list", "nul.txt", b"a.png\nb\x00.png\n")


# ---------------------------------------------------------------- manifests
def manifests():
    """Earlier-run manifests as the output folder reads them: one of this
    tool's shape, and the kinds it must refuse or filter."""
    entry = {"path": "cat/conv1/activations.png", "kind": "activations", "bytes": 1234,
             "mtime": [1764000000, 123456789], "role": "montage", "layer": "conv1",
             "input": "cat.jpg", "channel": None, "format": "png", "shape": [64, 112, 112]}
    ours = {"tool": "cnnviz-cl", "version": "0.1.0", "schema": 2,
            "files": [entry, dict(entry, path="predictions.json", kind="predictions"),
                      dict(entry, path="cat/output.npy", format="npy", mtime=[0, 0])]}
    out("fuzz_manifest", "ours.json", json.dumps(ours, indent=2).encode())
    hostile = dict(ours, files=[dict(entry, path=p) for p in
                                ["../x", "/etc/passwd", "a/../../b", ".git/config", "a//b", "manifest.json",
                                 "caf\u00e9.png"]])
    out("fuzz_manifest", "hostile_paths.json", json.dumps(hostile).encode())
    out("fuzz_manifest", "foreign.json", b'{"name": "app", "icons": [{"path": "README.md"}]}')
    out("fuzz_manifest", "old_schema.json", json.dumps({"files": [entry]}).encode())
    out("fuzz_manifest", "newer.json", json.dumps(dict(ours, schema=3)).encode())
    out("fuzz_manifest", "escapes.json",
        b'{"tool": "cnnviz-cl", "schema": 2, "files": [{"path": "a\u0062c", "bytes": 1e2, '
        b'"mtime": [-1, 999999999], "x": "\ud83d\ude00\n\t"}]}')


# ---------------------------------------------------------------- ONNX models
def onnx_models():
    """Small models for fuzz_onnx: each importer path (folding, patterns,
    external data next to the fuzzer's folder: w.bin of 4096 bytes,
    sub/w.bin of 256), and a few of the ONNX operator tests."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def init(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    def const(name, values, dtype=np.int64):
        return numpy_helper.from_array(np.array(values, dtype=dtype), name)

    def model(name, nodes, inits, shape=(1, 3, 8, 8), out_shape=None, opset=13):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)
        g = helper.make_graph(nodes, name, [x], [y], initializer=inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="make_corpus")
        out("fuzz_onnx", name + ".onnx", m.SerializeToString())

    N = helper.make_node
    model("cnn", [N("Conv", ["x", "c.weight", "c.bias"], ["a"], name="/c/Conv", pads=[1, 1, 1, 1]),
                  N("BatchNormalization", ["a", "b.weight", "b.bias", "b.running_mean", "b.running_var"], ["b"],
                    name="/b/BatchNormalization", epsilon=1e-5),
                  N("Relu", ["b"], ["r"]), N("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
                  N("Flatten", ["p"], ["f"], axis=1), N("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], transB=1)],
          [init("c.weight", 4, 3, 3, 3), init("c.bias", 4), init("b.weight", 4), init("b.bias", 4),
           init("b.running_mean", 4), numpy_helper.from_array(np.full(4, 0.5, np.float32), "b.running_var"),
           init("fc.weight", 5, 64), init("fc.bias", 5)])
    model("shape_fold", [N("Shape", ["x"], ["s"]), N("Gather", ["s", "zero"], ["n"], axis=0),
                         N("Unsqueeze", ["n", "zero1"], ["n1"]), N("Concat", ["n1", "minus1"], ["shape"], axis=0),
                         N("Reshape", ["x", "shape"], ["f"]), N("Gemm", ["f", "w"], ["y"], transB=1, alpha=0.5)],
          [const("zero", 0), const("zero1", [0]), const("minus1", [-1]), init("w", 2, 192)])
    model("layernorm", [N("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
                        N("ReduceMean", ["t"], ["m"], axes=[-1]), N("Sub", ["t", "m"], ["d"]),
                        N("Pow", ["d", "two"], ["p"]), N("ReduceMean", ["p"], ["v"], axes=[-1]),
                        N("Add", ["v", "eps"], ["e"]), N("Sqrt", ["e"], ["s"]), N("Div", ["d", "s"], ["n"]),
                        N("Mul", ["n", "g"], ["ng"]), N("Add", ["ng", "b"], ["nb"]),
                        N("MatMul", ["nb", "w"], ["mm"]), N("Add", ["bias", "mm"], ["l"]),
                        N("Div", ["l", "sqrt2"], ["q"]), N("Erf", ["q"], ["er"]), N("Add", ["er", "one"], ["e1"]),
                        N("Mul", ["l", "e1"], ["gx"]), N("Mul", ["gx", "half"], ["gelu"]),
                        N("Transpose", ["gelu"], ["y"], perm=[0, 3, 1, 2])],
          [const("two", 2.0, np.float32), const("eps", 1e-6, np.float32), init("g", 3), init("b", 3),
           init("w", 3, 6), init("bias", 6), const("sqrt2", 1.4142135, np.float32),
           const("one", 1.0, np.float32), const("half", 0.5, np.float32)])
    model("gates", [N("Sigmoid", ["x"], ["s"]), N("Mul", ["x", "s"], ["silu"]),
                    N("HardSigmoid", ["silu"], ["h"], alpha=1.0 / 6), N("Mul", ["silu", "h"], ["hs"]),
                    N("GlobalAveragePool", ["hs"], ["gap"]), N("Sigmoid", ["gap"], ["gate"]),
                    N("Mul", ["gate", "hs"], ["se"]), N("Mul", ["se", "scale"], ["y"])],
          [init("scale", 3, 1, 1)])
    model("shuffle", [N("Reshape", ["x", "s5"], ["r"]), N("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4]),
                      N("Reshape", ["t", "s4"], ["sh"]), N("Split", ["sh", "parts"], ["a", "b"], axis=1),
                      N("Slice", ["a", "st", "en", "ax"], ["sl"]), N("Concat", ["sl", "b"], ["y"], axis=1)],
          [const("s5", [1, 2, 2, 8, 8]), const("s4", [1, 4, 8, 8]), const("parts", [2, 2]), const("st", [0]),
           const("en", [2]), const("ax", [1])], shape=(1, 4, 8, 8))
    model("pads", [N("Pad", ["x", "pads"], ["p"], mode="constant"),
                   N("AveragePool", ["p"], ["a"], kernel_shape=[3, 3], strides=[1, 1]),
                   N("MaxPool", ["a"], ["m"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER",
                     ceil_mode=0),
                   N("Clip", ["m", "lo", "hi"], ["c"]), N("Pad", ["c", "pads2"], ["y"], mode="reflect")],
          [const("pads", [0, 0, 1, 1, 0, 0, 1, 1]), const("lo", 0.0, np.float32), const("hi", 6.0, np.float32),
           const("pads2", [0, 0, 1, 0, 0, 0, 0, 1])])
    ext = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 3, 3, 3])
    ext.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "w.bin"), ("offset", "0"), ("length", "432")):
        e = ext.external_data.add()
        e.key, e.value = k, v
    ext2 = TensorProto(name="b", data_type=TensorProto.FLOAT, dims=[4])
    ext2.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "sub/w.bin"), ("offset", "16"), ("length", "16")):
        e = ext2.external_data.add()
        e.key, e.value = k, v
    model("external", [N("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])], [ext, ext2])
    src = "/usr/share/libonnx-testdata/data/node"
    for case in ("test_conv_with_strides_padding", "test_maxpool_2d_ceil", "test_averagepool_2d_same_upper",
                 "test_softmax_axis_1", "test_lrn", "test_gemm_all_attributes", "test_batchnorm_epsilon",
                 "test_leakyrelu", "test_flatten_axis1", "test_transpose_default"):
        path = os.path.join(src, case, "model.onnx")
        if os.path.exists(path):
            with open(path, "rb") as f:
                out("fuzz_onnx", case + ".onnx", f.read())


SECTIONS = {"fuzz_config": configs, "fuzz_safetensors": weights, "fuzz_png": images, "fuzz_jpeg": images,
            "fuzz_manifest": manifests, "fuzz_list": lists, "fuzz_onnx": onnx_models}


def main():
    """make_corpus.py [TARGET ...]: all corpora, or only those named."""
    wanted = sys.argv[1:]
    if not wanted:
        if os.path.isdir(CORPUS):
            shutil.rmtree(CORPUS)
        configs()
        weights()
        images()
        manifests()
        lists()
        onnx_models()
    else:
        for t in wanted:
            shutil.rmtree(os.path.join(CORPUS, t), ignore_errors=True)
        for fn in dict.fromkeys(SECTIONS[t] for t in wanted):
            fn()
    total = sum(len(os.listdir(os.path.join(CORPUS, d))) for d in os.listdir(CORPUS))
    print(f"make_corpus: {total} files under {CORPUS}", file=sys.stderr)


if __name__ == "__main__":
    main()
