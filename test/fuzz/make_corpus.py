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


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    configs()
    weights()
    images()
    manifests()
    lists()
    total = sum(len(os.listdir(os.path.join(CORPUS, d))) for d in os.listdir(CORPUS))
    print(f"make_corpus: {total} files under {CORPUS}", file=sys.stderr)


if __name__ == "__main__":
    main()
