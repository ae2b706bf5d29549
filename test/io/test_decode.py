#!/usr/bin/python3
"""The image loader (cnn_image_load, through test/unit/imgdump) against
Pillow on the layouts real files use: the seed corpora of fuzz_png and
fuzz_jpeg (written by test/fuzz/make_corpus.py).

What the loader promises (io/image.h) and how it is checked:
  * PNG gray (1/2/4/8-bit), gray+alpha: one channel; RGB, RGBA, palette with
    or without tRNS: three.  Alpha, real or from tRNS, is dropped, never
    composited: Pillow's convert("L") / convert("RGB") does the same, and the
    pixels must be equal, exactly (PNG is lossless).
  * 16-bit PNG is reduced to 8 bits by rounding, (v * 255 + 32767) // 65535.
    Pillow keeps only the high byte of 16-bit colour (RGB;16B), so the
    reference is computed here from the file's exact 16-bit samples, read by
    the small decoder below (zlib, the five filters, Adam7); equal, exactly.
  * Adam7 interlacing: same as the non-interlaced rules.
  * JPEG gray: one channel; YCbCr: three.  Both sides are libjpeg-turbo with
    the accurate integer IDCT (JDCT_ISLOW) and fancy upsampling, which are
    exact integer algorithms: the tolerance is 0 levels (stated as
    JPEG_TOLERANCE; a different IDCT, e.g. the fast one, would differ by a
    few levels).
  * EXIF orientation is not applied: the pixels as stored, as PIL.Image.open
    (and torchvision's decoders) give them.
  * CMYK JPEG is refused with one error line (CMYK to RGB needs a colour
    profile, not a formula)."""
import os
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(os.path.dirname(HERE), "fuzz", "corpus")
IMGDUMP = os.environ.get("CNNVIZ_IMGDUMP")
JPEG_TOLERANCE = 0

# Files that must be there: the layouts this test is about.
REQUIRED = {
    "fuzz_png": ["rgb8.png", "rgba8.png", "gray8.png", "gray1.png", "gray4_text.png", "gray_alpha8.png",
                 "gray16.png", "rgb16.png", "rgba16.png", "palette.png", "palette2_trns.png",
                 "palette8_trns.png", "interlaced.png", "interlaced_rgb.png", "interlaced_rgb16.png"],
    "fuzz_jpeg": ["rgb420.jpg", "rgb444.jpg", "gray.jpg", "progressive.jpg", "gray_progressive.jpg",
                  "cmyk.jpg", "restart.jpg", "exif_orientation6.jpg"],
}

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL", msg)


def tool_decode(path):
    """(pixels [h, w, c] uint8, None) or (None, stderr) when refused."""
    p = subprocess.run([IMGDUMP, path], capture_output=True)
    if p.returncode != 0:
        return None, p.returncode, p.stderr.decode("utf-8", "replace")
    head, _, body = p.stdout.partition(b"\n")
    w, h, c = map(int, head.split())
    assert len(body) == w * h * c, f"{path}: {len(body)} bytes for {w}x{h}x{c}"
    return np.frombuffer(body, np.uint8).reshape(h, w, c), 0, ""


def unfilter(ftype, line, prev, bpp):
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if ftype == 1:
            pred = a
        elif ftype == 2:
            pred = b
        elif ftype == 3:
            pred = (a + b) // 2
        elif ftype == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
        else:
            assert ftype == 0, f"filter type {ftype}"
            pred = 0
        line[i] = (line[i] + pred) & 0xff


def png_samples(path):
    """Exact samples [h, w, channels] of a PNG of 8 or 16 bits per sample
    (gray, gray+alpha, RGB, RGBA), interlaced or not; and its IHDR."""
    data = open(path, "rb").read()
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, t = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if t == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif t == b"IDAT":
            idat += body
    w, h, depth, color, _, _, interlace = ihdr
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    assert depth in (8, 16)
    bpp = ch * depth // 8
    raw = zlib.decompress(idat)
    out = np.zeros((h, w, ch), np.int64)
    i = 0
    for x0, y0, dx, dy in (ADAM7 if interlace else [(0, 0, 1, 1)]):
        xs, ys = range(x0, w, dx), range(y0, h, dy)
        if not xs or not ys:
            continue
        stride = len(xs) * bpp
        prev = bytearray(stride)
        for y in ys:
            line = bytearray(raw[i + 1:i + 1 + stride])
            unfilter(raw[i], line, prev, bpp)
            i += 1 + stride
            out[y, x0::dx] = np.frombuffer(bytes(line), ">u2" if depth == 16 else "u1").reshape(len(xs), ch)
            prev = line
    return out, ihdr


def png_ihdr(path):
    data = open(path, "rb").read(33)
    return struct.unpack(">IIBBBBB", data[16:29])


def check_png(path, name):
    got, rc, err = tool_decode(path)
    check(got is not None, f"{name}: refused: {err.strip()}")
    if got is None:
        return
    w, h, depth, color, _, _, _ = png_ihdr(path)
    gray = color in (0, 4)
    check(got.shape == (h, w, 1 if gray else 3), f"{name}: shape {got.shape}")
    if depth == 16:
        samples, _ = png_samples(path)
        want = ((samples[:, :, :1 if gray else 3] * 255 + 32767) // 65535).astype(np.uint8)
        pil = np.asarray(Image.open(path).convert("L" if gray else "RGB"))
        note = f" (Pillow's own 8-bit result differs at {np.count_nonzero(pil != want.reshape(pil.shape))} samples)"
    else:
        im = Image.open(path)
        want = np.asarray(im.convert("L" if gray else "RGB")).reshape(h, w, -1)
        note = ""
    diff = np.abs(got.astype(int) - want.astype(int))
    check(diff.max() == 0, f"{name}: {np.count_nonzero(diff)} samples differ, up to {diff.max()}")
    print(f"ok   {name}: {w}x{h}, IHDR depth {depth} colour {color}, exact{note}")


def check_jpeg(path, name):
    im = Image.open(path)
    got, rc, err = tool_decode(path)
    if im.mode == "CMYK":
        lines = err.strip().splitlines()
        check(got is None and rc == 2 and len(lines) == 1 and "CMYK is not supported" in lines[0],
              f"{name}: CMYK: exit {rc}, {err!r}")
        print(f"ok   {name}: CMYK refused: {lines[0] if lines else ''}")
        return
    check(got is not None, f"{name}: refused: {err.strip()}")
    if got is None:
        return
    gray = im.mode == "L"
    want = np.asarray(im.convert("L" if gray else "RGB")).reshape(im.size[1], im.size[0], -1)
    check(got.shape == want.shape, f"{name}: shape {got.shape}, Pillow {want.shape}")
    if got.shape != want.shape:
        return
    diff = np.abs(got.astype(int) - want.astype(int))
    check(diff.max() <= JPEG_TOLERANCE,
          f"{name}: {np.count_nonzero(diff)} samples differ, up to {diff.max()} (tolerance {JPEG_TOLERANCE})")
    orient = im.getexif().get(0x0112)
    if orient is not None:
        # The stored orientation: Image.open does not rotate, nor does the loader.
        check(orient == 6 and got.shape[:2] == (im.size[1], im.size[0]) and im.size[0] != im.size[1],
              f"{name}: EXIF orientation {orient}, shape {got.shape}")
    print(f"ok   {name}: {im.size[0]}x{im.size[1]} {im.mode}{', progressive' if im.info.get('progressive') else ''}"
          f"{f', EXIF orientation {orient} not applied' if orient else ''}, max difference {diff.max()}")


def main():
    # Pillow warns that a palette with transparency bytes is better held as
    # RGBA; the alpha is dropped here on purpose.
    warnings.filterwarnings("ignore", "Palette images with Transparency", UserWarning)
    if not IMGDUMP:
        raise SystemExit("CNNVIZ_IMGDUMP must point to the imgdump tool (set by ctest)")
    for target, names in REQUIRED.items():
        present = set(os.listdir(os.path.join(CORPUS, target)))
        for n in names:
            check(n in present, f"{target}/{n} missing from the corpus")
    for name in sorted(os.listdir(os.path.join(CORPUS, "fuzz_png"))):
        check_png(os.path.join(CORPUS, "fuzz_png", name), name)
    for name in sorted(os.listdir(os.path.join(CORPUS, "fuzz_jpeg"))):
        check_jpeg(os.path.join(CORPUS, "fuzz_jpeg", name), name)
    print(f"{len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
