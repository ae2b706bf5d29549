"""What a model accepts as input, sorted into the three ways the library
runs a batch: image files (cnnviz_run_files), 8-bit images
(cnnviz_run_images, preprocessed on the device) and float32 tensors in
network units (cnnviz_run_tensor).

One input:  a path (str, bytes or os.PathLike); a PIL image; a numpy uint8
            image H x W or H x W x {1, 3, 4}; a numpy float32 [C, H, W].
A batch:    a list or tuple of inputs of one kind; a numpy uint8
            N x H x W x {1, 3, 4}; a numpy float32 [N, C, H, W].
"""
import os
import sys

import numpy as np

FILES = "files"
IMAGES = "images"
TENSOR = "tensor"

_PIL_NATIVE = {"L": 1, "RGB": 3, "RGBA": 4}
# PIL modes converted before they are passed on (each to 8 bits per channel;
# an alpha channel is dropped by the library anyway).
_PIL_CONVERT = {"1": "L", "LA": "L", "La": "L", "P": "RGB", "PA": "RGB", "RGBX": "RGB", "RGBa": "RGB",
                "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}


class Batch:
    """Inputs ready for one or more runs.

    kind: FILES (items: list of bytes paths), IMAGES (items: list of
    C-contiguous uint8 H x W x channels arrays, all with `channels`) or
    TENSOR (items: one C-contiguous float32 [n, C, H, W] array).
    single: True when the caller gave one input (results lose the batch
    axis)."""

    __slots__ = ("kind", "items", "n", "single", "channels")

    def __init__(self, kind, items, n, single, channels=0):
        self.kind = kind
        self.items = items
        self.n = n
        self.single = single
        self.channels = channels


def _pil_image_type():
    mod = sys.modules.get("PIL.Image")
    return getattr(mod, "Image", None) if mod is not None else None


def _from_pil(img):
    mode = img.mode
    if mode not in _PIL_NATIVE:
        target = _PIL_CONVERT.get(mode)
        if target is None:
            raise ValueError("a PIL image of mode %r (more than 8 bits per channel) cannot be passed as it is: "
                             "convert it to 'L' or 'RGB' with the scaling you want" % mode)
        img = img.convert(target)
    a = np.asarray(img, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    return np.ascontiguousarray(a)


def _check_image_array(a, what):
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        hint = ""
        if a.ndim == 3 and a.shape[0] in (1, 3, 4):
            hint = " (channels first? pass x.transpose(1, 2, 0))"
        raise ValueError("%s: a uint8 image is H x W or H x W x {1, 3, 4} (gray, RGB, RGBA); got shape %s%s"
                         % (what, tuple(a.shape), hint))
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError("%s: an empty image (shape %s)" % (what, tuple(a.shape)))
    return np.ascontiguousarray(a)


def _check_float(a):
    if a.dtype != np.float32:
        if np.issubdtype(a.dtype, np.floating):
            raise TypeError("a tensor input must be float32 in network units, got %s: pass x.astype(np.float32)"
                            % a.dtype)
        raise TypeError("an array input must be uint8 (an image, H x W x channels) or float32 (a tensor "
                        "[C, H, W] or [N, C, H, W] in network units); got %s" % a.dtype)


def _one(x, in_shape, what):
    """(kind, item) for a single input."""
    if isinstance(x, (str, bytes, os.PathLike)):
        p = os.fsencode(x)
        if not p or b"\0" in p:
            raise ValueError("%s: %r is not a file path" % (what, x))
        return FILES, p
    if isinstance(x, np.ndarray):
        if x.dtype == np.uint8:
            return IMAGES, _check_image_array(x, what)
        _check_float(x)
        if x.shape != in_shape:
            raise ValueError("%s: a float32 input is one image [C, H, W] = %s in network units; got shape %s"
                             % (what, list(in_shape), list(x.shape)))
        return TENSOR, x
    pil = _pil_image_type()
    if pil is not None and isinstance(x, pil):
        return IMAGES, _from_pil(x)
    raise TypeError("%s: an input is a path, a PIL image, a numpy uint8 image (H x W x channels) or a numpy "
                    "float32 tensor [C, H, W]; got %s" % (what, type(x).__name__))


def prepare(x, in_shape):
    """A Batch from what a caller passed (see the module's docstring);
    in_shape: the network input (C, H, W).  Raises TypeError / ValueError
    naming what is wrong."""
    if isinstance(x, np.ndarray) and x.ndim == 4:
        if x.dtype == np.uint8:
            if x.shape[3] not in (1, 3, 4) or 0 in x.shape:
                raise ValueError("a uint8 batch is N x H x W x {1, 3, 4}; got shape %s" % (tuple(x.shape),))
            return Batch(IMAGES, [np.ascontiguousarray(x[i]) for i in range(x.shape[0])], x.shape[0], False,
                         x.shape[3])
        _check_float(x)
        if x.shape[1:] != in_shape or x.shape[0] < 1:
            raise ValueError("a float32 batch is [N, C, H, W] with [C, H, W] = %s in network units; got shape %s"
                             % (list(in_shape), list(x.shape)))
        return Batch(TENSOR, [np.ascontiguousarray(x)], x.shape[0], False)
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError("an empty batch: pass at least one input")
        kinds = set()
        items = []
        for i, e in enumerate(x):
            k, item = _one(e, in_shape, "input %d" % i)
            kinds.add(k)
            items.append(item)
        if len(kinds) > 1:
            raise ValueError("one batch mixes %s: pass paths, images or float32 tensors, one kind per call"
                             % " and ".join(sorted(kinds)))
        kind = kinds.pop()
        return _batch(kind, items, single=False)
    kind, item = _one(x, in_shape, "input")
    return _batch(kind, [item], single=True)


def _batch(kind, items, single):
    if kind == TENSOR:
        return Batch(TENSOR, [np.ascontiguousarray(np.stack(items) if len(items) > 1 else items[0][None])],
                     len(items), single)
    if kind == IMAGES:
        chans = {a.shape[2] for a in items}
        if len(chans) == 1:
            return Batch(IMAGES, items, len(items), single, chans.pop())
        # One call takes one channel count: gray and RGBA become RGB
        # (gray repeated, alpha dropped, as the library does for a file).
        items = [np.ascontiguousarray(np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a[:, :, :3]) for a in items]
        return Batch(IMAGES, items, len(items), single, 3)
    return Batch(FILES, items, len(items), single)
