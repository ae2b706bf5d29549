"""cnn_op_preprocess against Pillow (and torchvision's Resize/CenterCrop/
Normalize where it is installed).

Random images of odd sizes are saved as PNG in $CNNVIZ_TEST_TMP, read back
with Pillow, and their raw HWC bytes handed to the C driver
`test_pool preprocess ...` (built next to cnnviz-cl, in <bin dir>/test/).
The reference is Pillow's resize(BILINEAR) -> crop -> convert(L|RGB), then
ToTensor/Normalize arithmetic.  Expected: bit-exact with Pillow, i.e. 0
uint8 levels of difference before normalisation and |got - ref| <= 1e-5
after it (float32 (v * (1/255) - mean) / std against float64).
"""
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image

try:  # Pillow >= 9.1 names the filters in an enum
    BILINEAR = Image.Resampling.BILINEAR
except AttributeError:
    BILINEAR = Image.BILINEAR

try:
    from torchvision import transforms
except ImportError:  # the Pillow reference alone still decides
    transforms = None

MEAN = {3: [0.485, 0.456, 0.406], 1: [0.5]}
STD = {3: [0.229, 0.224, 0.225], 1: [0.25]}
ATOL = 1e-5

failures = []


def driver():
    binary = os.environ.get("CNNVIZ_BIN")
    if not binary:
        sys.exit("CNNVIZ_BIN is not set (run through ctest)")
    path = os.path.join(os.path.dirname(binary), "test", "test_pool")
    if not os.access(path, os.X_OK):
        sys.exit(f"{path}: the test driver is not built")
    return path


def resize_short(w, h, size):
    """torchvision Resize(int) on a PIL image: the shorter side becomes
    `size`, the longer int(size * long / short)."""
    if w <= h:
        return size, int(size * h / w)
    return int(size * w / h), size


def center(rw, rh, cw, ch):
    """torchvision CenterCrop offsets (left, top)."""
    return int(round((rw - cw) / 2.0)), int(round((rh - ch) / 2.0))


def make_image(tmp, name, w, h, mode, rng, binary=False):
    bands = 3 if mode == "RGB" else 1
    if binary:  # only 0 and 255: the sums hit the clip at 255
        px = rng.choice(np.array([0, 255], dtype=np.uint8), size=(h, w, bands))
    else:
        px = rng.integers(0, 256, size=(h, w, bands), dtype=np.uint8)
    img = Image.fromarray(px[:, :, 0] if bands == 1 else px, mode)
    path = os.path.join(tmp, name + ".png")
    img.save(path)
    img = Image.open(path)
    img.load()
    assert np.array_equal(np.asarray(img).reshape(h, w, bands), px), "PNG round trip"
    return img


def run_case(exe, tmp, name, img, rw, rh, left, top, ow, oh, c, tv_pipeline=None):
    sw, sh = img.size
    sc = 3 if img.mode == "RGB" else 1
    raw = os.path.join(tmp, name + ".u8")
    out = os.path.join(tmp, name + ".f32")
    with open(raw, "wb") as f:
        f.write(np.asarray(img).tobytes())
    args = [exe, "preprocess", raw] + [str(v) for v in (sh, sw, sc, rh, rw, top, left, c, oh, ow)]
    proc = subprocess.run(args + [out], capture_output=True, text=True)
    if proc.returncode != 0:
        failures.append(f"{name}: driver exit {proc.returncode}\n{proc.stdout}{proc.stderr}")
        return
    got = np.fromfile(out, dtype=np.float32).reshape(c, oh, ow)

    # Pillow reference in the order ops.h documents: resize, crop, convert.
    ref_img = img.resize((rw, rh), BILINEAR) if (rw, rh) != img.size else img.copy()
    ref_img = ref_img.crop((left, top, left + ow, top + oh))
    ref_img = ref_img.convert("RGB" if c == 3 else "L")
    ref_u8 = np.asarray(ref_img).reshape(oh, ow, c).transpose(2, 0, 1).astype(np.float64)
    mean = np.array(MEAN[c]).reshape(c, 1, 1)
    std = np.array(STD[c]).reshape(c, 1, 1)
    ref = (ref_u8 / 255.0 - mean) / std

    got_u8 = np.rint((got.astype(np.float64) * std + mean) * 255.0)
    levels = int(np.max(np.abs(got_u8 - ref_u8)))
    err = float(np.max(np.abs(got - ref)))
    msg = f"{name}: {sw}x{sh}x{sc} -> resize {rw}x{rh} crop {ow}x{oh}@({left},{top}) c{c}: " \
          f"max {levels} uint8 levels, max abs {err:.2e}"
    print(msg)
    if levels != 0 or not err <= ATOL:
        bad = np.argwhere(np.abs(got_u8 - ref_u8) > 0)
        failures.append(msg + (f"; first bad (c, y, x) {tuple(bad[0])}" if len(bad) else ""))

    if tv_pipeline is not None and transforms is not None:
        tv = tv_pipeline(img).numpy()
        tv_err = float(np.max(np.abs(got - tv)))
        print(f"  torchvision pipeline: max abs {tv_err:.2e}")
        if not tv_err <= ATOL:
            failures.append(f"{name}: differs from torchvision by {tv_err}")


def torchvision_pipeline(c):
    if transforms is None:
        return None
    steps = [transforms.Resize(256), transforms.CenterCrop(224)]
    if c == 1:
        steps.append(transforms.Grayscale(1))
    steps += [transforms.ToTensor(), transforms.Normalize(MEAN[c], STD[c])]
    return transforms.Compose(steps)


def main():
    exe = driver()
    tmp = os.path.join(os.environ.get("CNNVIZ_TEST_TMP", "/tmp"), f"preprocess-{os.getpid()}")
    os.makedirs(tmp, exist_ok=True)
    rng = np.random.default_rng(1234)

    def imagenet(name, img, c):
        """Resize(256) + CenterCrop(224), as torchvision's ImageNet eval."""
        rw, rh = resize_short(*img.size, 256)
        left, top = center(rw, rh, 224, 224)
        run_case(exe, tmp, name, img, rw, rh, left, top, 224, 224, c,
                 torchvision_pipeline(c) if img.mode == "RGB" else None)

    rgb_300 = make_image(tmp, "rgb_300x217", 300, 217, "RGB", rng)
    gray_57 = make_image(tmp, "gray_57x91", 57, 91, "L", rng)
    imagenet("up_300x217", rgb_300, 3)                       # 217 -> 256: mild upscale
    imagenet("down_517x383", make_image(tmp, "rgb_517x383", 517, 383, "RGB", rng), 3)
    imagenet("down3x_1031x777", make_image(tmp, "rgb_1031x777", 1031, 777, "RGB", rng), 3)
    imagenet("up_57x91", make_image(tmp, "rgb_57x91", 57, 91, "RGB", rng), 3)
    imagenet("clip_400x301", make_image(tmp, "bin_400x301", 400, 301, "RGB", rng, True), 3)
    imagenet("gray2rgb_57x91", gray_57, 3)
    imagenet("rgb2gray_300x217", rgb_300, 1)
    imagenet("gray_57x91", gray_57, 1)
    # No resize at all, then only one axis (Pillow skips the other pass).
    run_case(exe, tmp, "noresize_224", make_image(tmp, "rgb_224", 224, 224, "RGB", rng),
             224, 224, 0, 0, 224, 224, 3)
    run_case(exe, tmp, "noresize_crop", rgb_300, 300, 217, 37, 5, 224, 199, 3)
    run_case(exe, tmp, "vertical_only", rgb_300, 300, 180, 3, 1, 291, 173, 3)
    run_case(exe, tmp, "horizontal_only", rgb_300, 256, 217, 0, 0, 256, 217, 3)
    # Odd, prime-ish factors both ways and a tiny output.
    odd = make_image(tmp, "rgb_97x301", 97, 301, "RGB", rng)
    run_case(exe, tmp, "odd_97x301", odd, 31, 113, 0, 0, 31, 113, 3)
    run_case(exe, tmp, "odd_up_97x301", odd, 211, 307, 2, 3, 199, 301, 3)
    run_case(exe, tmp, "tiny_97x301", odd, 5, 3, 0, 0, 5, 3, 1)

    if failures:
        print("FAILED:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    print("test_preprocess: all cases bit-exact with Pillow")
    return 0


if __name__ == "__main__":
    sys.exit(main())
