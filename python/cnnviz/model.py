"""cnnviz.Model: a network opened on an OpenCL device (a cnnviz_model)."""
import collections
import ctypes
import operator
import os
import threading

import numpy as np

from . import _inputs
from ._buffers import Pool
from ._native import LOG_FN, AttrOpts, LayerInfoC, OpenOpts, native

LayerInfo = collections.namedtuple("LayerInfo", "name op shape params flat has_weight has_bias")
LayerInfo.__doc__ = """One layer of a model, in the order the layers run.

name: as in the pipeline ("layer4", "features.0.0"); op: "conv2d", "relu",
"linear", ...; shape: one image's output, (C, H, W), or (C,) for a vector
(flat: True); params: parameter count; has_weight / has_bias: whether
Model.parameter(name, "weight" / "bias") has something to read."""

Prediction = collections.namedtuple("Prediction", "index label probability")
Prediction.__doc__ = """One class of a prediction: index (0 .. num_classes - 1), label (the
pipeline's name for it, None when it has no labels) and probability (softmax
of the outputs, or the outputs themselves when the network ends in a
softmax)."""

_F32 = np.dtype(np.float32)


def _cstr(value, what):
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return os.fsencode(value) if isinstance(value, os.PathLike) else value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    raise TypeError("%s must be a string, got %s" % (what, type(value).__name__))


def _selector(value, what):
    """platform / device: None, a name substring or an index."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value)).encode()
    return _cstr(value, what)


def _int(value, what, lo=None):
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError("%s must be an integer, got %s" % (what, type(value).__name__)) from None
    if lo is not None and v < lo:
        raise ValueError("%s must be at least %d, got %d" % (what, lo, v))
    return v


def _float(value, what, lo=None):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError("%s must be a number, got %s" % (what, type(value).__name__))
    v = float(value)
    if not np.isfinite(v) or (lo is not None and v < lo):
        raise ValueError("%s must be a finite number >= %g, got %r" % (what, lo if lo is not None else -np.inf, v))
    return v


def _per_channel(value, what):
    """mean / std: a number or 1 or 3 numbers -> (floats padded to 3, count)."""
    vals = [value] if isinstance(value, (int, float, np.integer, np.floating)) else list(value)
    if len(vals) not in (1, 3):
        raise ValueError("%s takes 1 or 3 values (one per channel), got %d" % (what, len(vals)))
    vals = [_float(v, what) for v in vals]
    return vals + [0.0] * (3 - len(vals)), len(vals)


def set_preprocessing(o, preprocess, mean, std, size):
    """An ONNX model's preprocessing fields of an options struct (open or
    write): preprocess name, mean / std (1 or 3 numbers), size (N or (H, W))."""
    o.preprocess = _cstr(preprocess, "preprocess")
    if mean is not None:
        vals, o.n_mean = _per_channel(mean, "mean")
        o.mean[:] = vals
    if std is not None:
        vals, o.n_std = _per_channel(std, "std")
        o.std[:] = vals
    if size is not None:
        hw = [size, size] if isinstance(size, (int, np.integer)) else list(size)
        if len(hw) != 2:
            raise ValueError("size is N or (H, W), got %r" % (size,))
        o.size[:] = [_int(v, "size", 1) for v in hw]


def _log_function(log):
    """A C log callback calling log(level, line); level 0 information, 1
    warning."""
    if log is None:
        return None
    if not callable(log):
        raise TypeError("log must be a callable log(level, line), got %s" % type(log).__name__)

    def call(_user, level, line):
        log(int(level), line.decode("utf-8", "replace") if line else "")

    return LOG_FN(call)


class Model:
    """A network opened on an OpenCL device.

    Model(path, device=None, *, platform=None, weights=None, max_batch=1,
          gradients=True, strict=False, preprocess=None, mean=None, std=None,
          size=None, log=None)

    path: a pipeline YAML (configs/*.yaml) or an ONNX model (imported in
        memory).
    device, platform: which OpenCL device: None (the library's default:
        $CNNVIZ_PLATFORM / $CNNVIZ_DEVICE, else the first GPU, else the first
        device), "gpu", "cpu", an index, or part of its name -- as the command
        line's --device / --platform (cnnviz.devices() lists them).
    weights: a .safetensors file instead of the pipeline's.
    max_batch: most images one device run takes; a longer batch is split
        into runs of max_batch.  Images run together may differ in the last
        bits from the same images run one at a time (kernels are chosen for
        the batch size), as with the command line's --batch.
    gradients: True keeps what gradient maps need; False runs forward only
        (no backward buffers; attribute() then takes only "occlusion").
    strict: weights holding NaN or Inf are an error instead of a warning.
    preprocess, mean, std, size: an ONNX model's input preprocessing, as
        the command line's --preprocess ("imagenet" (default): shorter side
        resized, centre crop, pixels / 255, ImageNet mean and std; "none":
        pixels / 255 only; "raw": pixel values 0 .. 255), --mean / --std (1
        or 3 numbers) and --size (N or (H, W), where the model leaves the
        input size open).  A pipeline YAML states its own and ignores these.
    log: None (warnings to stderr) or a callable log(level, line) receiving
        the library's lines (level 0 information, 1 warning) during calls on
        this model; it must not call into the model.

    Inputs, wherever a method takes `x`:
      one input: a path (a PNG or JPEG file, read as the command line reads
        it); a PIL image; a numpy uint8 image H x W or H x W x {1, 3, 4}
        (gray, RGB, RGBA) -- images go through the pipeline's preprocessing
        (resize, crop, scale, mean, std) on the device; or a numpy float32
        tensor [C, H, W] in network units (after preprocessing) = input_shape.
      a batch: a list or tuple of inputs of one kind, a uint8 array
        N x H x W x {1, 3, 4} or a float32 array [N, C, H, W].  Results then
        gain a leading N axis.

    Returned arrays belong to the caller (large ones reuse the memory of
    earlier results that nothing refers to any more).

    A Model may be shared by threads: each method runs its inputs and reads
    the results as one step.  Two Models are independent.  Close it with
    close() or a `with` block to free the device memory at once.

    Errors: bad arguments raise TypeError or ValueError (cnnviz.UsageError,
    cnnviz.InputError when the library found them, with its message); device
    and other failures raise cnnviz.Error (.status, .message)."""

    def __init__(self, path, device=None, *, platform=None, weights=None, max_batch=1, gradients=True,
                 strict=False, preprocess=None, mean=None, std=None, size=None, log=None):
        self._handle = None
        self._lock = threading.Lock()
        self._pool = Pool()
        nat = native()
        self._nat = nat
        lib = nat.lib
        self._lib = lib
        if not isinstance(path, (str, bytes, os.PathLike)):
            raise TypeError("path must be a pipeline YAML or ONNX file path, got %s" % type(path).__name__)
        self._path = os.fsdecode(path)
        # what write_run(model) runs with, unless told otherwise
        self._open_args = {"weights": weights, "platform": platform, "device": device, "strict": strict,
                           "preprocess": preprocess, "mean": mean, "std": std, "size": size}
        o = OpenOpts.from_buffer_copy(nat.open_defaults)
        o.weights = _cstr(weights, "weights")
        o.platform = _selector(platform, "platform")
        o.device = _selector(device, "device")
        o.max_batch = _int(max_batch, "max_batch", 1)
        o.gradients = 1 if gradients else 0
        o.strict = 1 if strict else 0
        set_preprocessing(o, preprocess, mean, std, size)
        self._log = _log_function(log)  # the callback must live as long as the model
        if self._log is not None:
            o.log = self._log
        handle = ctypes.c_void_p()
        nat.check(lib.cnnviz_open(os.fsencode(path), ctypes.addressof(o), ctypes.byref(handle)))
        self._handle = handle.value
        self._gradients = bool(gradients)
        try:
            self._describe()
        except BaseException:
            self.close()
            raise

    def _describe(self):
        lib, h, check = self._lib, self._handle, self._nat.check
        n = check(lib.cnnviz_num_layers(h))
        info = LayerInfoC()
        layers = []
        for i in range(n):
            check(lib.cnnviz_layer(h, i, ctypes.byref(info)))
            shape = (info.c,) if info.flat else (info.c, info.h, info.w)
            layers.append(LayerInfo(info.name.decode("utf-8", "replace"), info.op.decode("utf-8", "replace"), shape,
                                    int(info.params), bool(info.flat), bool(info.has_weight), bool(info.has_bias)))
        self._layers = tuple(layers)
        self._by_name = {l.name: l for l in layers}
        c, hh, ww = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        check(lib.cnnviz_input_shape(h, ctypes.byref(c), ctypes.byref(hh), ctypes.byref(ww)))
        self._input_shape = (c.value, hh.value, ww.value)
        self._classes = check(lib.cnnviz_num_classes(h))
        labels = []
        for i in range(self._classes):
            s = lib.cnnviz_class_label(h, i)
            if s is None:
                labels = None
                break
            labels.append(s.decode("utf-8", "replace"))
        self._labels = tuple(labels) if labels is not None else None
        self._label_index = {s: i for i, s in reversed(list(enumerate(self._labels or ())))}
        self._name = (lib.cnnviz_model_name(h) or b"").decode("utf-8", "replace")
        self._device = (lib.cnnviz_device_name(h) or b"").decode("utf-8", "replace")
        self._max_batch = check(lib.cnnviz_max_batch(h))
        self._probabilities = bool(check(lib.cnnviz_outputs_probabilities(h)))
        # Scratch reused by every call (guarded by self._lock).
        mb = self._max_batch
        self._logits = np.empty((mb, self._classes), np.float32)
        self._shape = (ctypes.c_int64 * 4)()
        self._ndim = ctypes.c_int()
        self._ptrs = (ctypes.c_void_p * mb)()
        self._hs = (ctypes.c_int * mb)()
        self._ws = (ctypes.c_int * mb)()
        self._paths = (ctypes.c_char_p * mb)()
        self._targets = (ctypes.c_int * mb)()
        self._addr = {k: ctypes.addressof(getattr(self, k)) for k in
                      ("_shape", "_ndim", "_ptrs", "_hs", "_ws", "_paths", "_targets")}
        self._map_shapes = {}  # (method, layer, upsample) -> (h, w) of one map

    # ---- what the model is ----------------------------------------------

    @property
    def path(self):
        """The pipeline or ONNX file this model was opened from (str)."""
        return self._path

    @property
    def name(self):
        """The model's name (the pipeline's model.name)."""
        return self._name

    @property
    def device_name(self):
        """The OpenCL device it runs on (its name as the driver gives it)."""
        return self._device

    @property
    def layers(self):
        """Every layer in the order they run: a tuple of LayerInfo(name, op,
        shape, params, flat, has_weight, has_bias); shape is one image's
        output (C, H, W), or (C,) for a vector."""
        return self._layers

    def layer(self, name):
        """The LayerInfo of the layer called `name` ("input": the network
        input, op "input").  Raises ValueError for an unknown name."""
        if name == "input" and name not in self._by_name:
            return LayerInfo("input", "input", self._input_shape, 0, False, False, False)
        info = self._by_name.get(name)
        if info is None:
            self._unknown_layer(name)
        return info

    @property
    def input_shape(self):
        """One image's network input (C, H, W), in network units: what a
        float32 input must be, and the size CAM overlays are shown at."""
        return self._input_shape

    @property
    def num_classes(self):
        """Outputs per image (the last layer's size)."""
        return self._classes

    @property
    def labels(self):
        """The class names from the pipeline's labels file (a tuple of
        num_classes strings), or None when it has none."""
        return self._labels

    @property
    def classes(self):
        """Class names, one per output: the labels, or "0", "1", ... when the
        pipeline has none."""
        return self._labels if self._labels is not None else tuple(str(i) for i in range(self._classes))

    @property
    def max_batch(self):
        """Most images one device run takes (the rest go in further runs)."""
        return self._max_batch

    @property
    def gradients(self):
        """Whether the model was opened with gradients (attribute() needs it,
        occlusion excepted)."""
        return self._gradients

    @property
    def outputs_probabilities(self):
        """True when the network ends in a softmax: output() then gives
        probabilities and predict() takes them as they are."""
        return self._probabilities

    def __repr__(self):
        if self._handle is None:
            return "<cnnviz.Model %s (closed)>" % self._path
        return "<cnnviz.Model %s: %s -> %d classes, %d layers, on %s>" % (
            self._name, "x".join(map(str, self._input_shape)), self._classes, len(self._layers), self._device)

    # ---- running ---------------------------------------------------------

    def _h(self):
        h = self._handle
        if h is None:
            raise ValueError("the model is closed")
        return h

    def _unknown_layer(self, name):
        """Raises the library's error for a layer name this model does not
        have."""
        b = _cstr(name, "layer")
        i = self._nat.check(self._lib.cnnviz_find_layer(self._h(), b))
        raise ValueError("layer %r: the library finds it at %d but does not list it" % (name, i))

    def _run(self, batch, lo, hi):
        """Runs inputs lo .. hi - 1 of batch (self._lock held)."""
        h = self._h()
        n = hi - lo
        lib = self._lib
        kind = batch.kind
        if kind is _inputs.TENSOR:
            t = batch.items[0]
            rc = lib.cnnviz_run_tensor(h, t.ctypes.data + lo * t.strides[0], n)
        elif kind is _inputs.IMAGES:
            ptrs, hs, ws = self._ptrs, self._hs, self._ws
            for i in range(n):
                a = batch.items[lo + i]
                ptrs[i] = a.ctypes.data
                hs[i] = a.shape[0]
                ws[i] = a.shape[1]
            addr = self._addr
            rc = lib.cnnviz_run_images(h, addr["_ptrs"], addr["_hs"], addr["_ws"], batch.channels, n)
        else:
            paths = self._paths
            for i in range(n):
                paths[i] = batch.items[lo + i]
            rc = lib.cnnviz_run_files(h, self._addr["_paths"], n)
        if rc < 0:
            self._nat.check(rc)

    def _chunks(self, batch):
        mb = self._max_batch
        return [(lo, min(lo + mb, batch.n)) for lo in range(0, batch.n, mb)]

    def _result(self, out, n, shape):
        """out if given (checked: float32, C-contiguous, of the result's
        shape), else a new array [n, *shape]."""
        if out is None:
            return self._pool.array((n,) + shape)
        if not isinstance(out, np.ndarray):
            raise TypeError("out must be a numpy array, got %s" % type(out).__name__)
        if out.dtype != _F32 or not out.flags.c_contiguous or not out.flags.writeable:
            raise TypeError("out must be a writeable C-contiguous float32 array, got %s%s" % (
                out.dtype, "" if out.flags.c_contiguous else " (not C-contiguous)"))
        return out

    @staticmethod
    def _check_out(out, res_shape):
        if out is not None and out.shape != res_shape:
            raise ValueError("out has shape %s; the result is %s" % (list(out.shape), list(res_shape)))

    def output(self, x, *, out=None):
        """The network's raw output for x: float32 [num_classes] for one
        input, [N, num_classes] for a batch (logits, or probabilities when
        outputs_probabilities).  Equal to the command line's output.npy.
        out: optional float32 array of the result's shape to fill."""
        batch = _inputs.prepare(x, self._input_shape)
        k = self._classes
        res = self._result(out, batch.n, (k,))
        self._check_out(out, (k,) if batch.single else (batch.n, k))
        lib = self._lib
        base = res.ctypes.data
        with self._lock:
            for lo, hi in self._chunks(batch):
                self._run(batch, lo, hi)
                rc = lib.cnnviz_output(self._handle, base + lo * k * 4, (hi - lo) * k)
                if rc < 0:
                    self._nat.check(rc)
        if out is not None:
            return out
        return res[0] if batch.single else res

    def probabilities(self, x):
        """Class probabilities for x: float64 [num_classes] (or [N,
        num_classes]), softmax of output(x) -- or output(x) itself when the
        network ends in a softmax."""
        y = self.output(x).astype(np.float64)
        if self._probabilities:
            return y
        y -= y.max(axis=-1, keepdims=True)
        np.exp(y, out=y)
        y /= y.sum(axis=-1, keepdims=True)
        return y

    def predict(self, x, k=5):
        """The k most probable classes of x: a list of Prediction(index,
        label, probability), most probable first (ties: lower index first);
        for a batch, one such list per input.  probability: softmax of the
        outputs (float, 0 .. 1)."""
        k = min(_int(k, "k", 1), self._classes)
        p = self.probabilities(x)
        rows = p[None] if p.ndim == 1 else p
        labels = self._labels
        res = []
        for row in rows:
            order = np.argsort(-row, kind="stable")[:k]
            res.append([Prediction(int(i), labels[i] if labels else None, float(row[i])) for i in order])
        return res[0] if p.ndim == 1 else res

    def _layer_name(self, layer):
        if not isinstance(layer, str):
            raise TypeError("layer must be a layer name (str), got %s" % type(layer).__name__)
        return layer

    def activations(self, x, layer, *, out=None):
        """The output of `layer` ("input": the network input) for x, float32
        in network units: [C, H, W] for one input ([C] for a vector layer such
        as a linear one), [N, C, H, W] ([N, C]) for a batch.  Equal to the
        command line's LAYER/activations.npy.  out: optional float32 array of
        the result's shape to fill (no allocation)."""
        info = self.layer(self._layer_name(layer))
        batch = _inputs.prepare(x, self._input_shape)
        shape = info.shape
        res = self._result(out, batch.n, shape)
        self._check_out(out, shape if batch.single else (batch.n,) + shape)
        per = int(np.prod(shape))
        name = layer.encode("utf-8")
        lib = self._lib
        base = res.ctypes.data
        with self._lock:
            for lo, hi in self._chunks(batch):
                self._run(batch, lo, hi)
                rc = lib.cnnviz_activations(self._handle, name, base + lo * per * 4, (hi - lo) * per,
                                            self._addr["_shape"])
                if rc < 0:
                    self._nat.check(rc)
        if out is not None:
            return out
        return res[0] if batch.single else res

    def parameter(self, layer, which="weight"):
        """A layer's parameter as the weights file holds it, float32:
        which="weight": conv2d [out, in / groups, kh, kw], linear [out, in],
        per-channel layers (batchnorm ...) [C]; which="bias": [out] (a
        batchnorm also has "running_mean" and "running_var", [C]).  Raises
        ValueError for an unknown layer or one without that parameter."""
        name = _cstr(self._layer_name(layer), "layer")
        if not isinstance(which, str):
            raise TypeError("which must be a string such as 'weight', got %s" % type(which).__name__)
        lib, check = self._lib, self._nat.check
        with self._lock:
            h = self._h()
            shp, nd = self._addr["_shape"], self._addr["_ndim"]
            check(lib.cnnviz_parameter(h, name, which.encode(), None, 0, shp, nd))
            dims = tuple(int(self._shape[i]) for i in range(self._ndim.value))
            res = np.empty(dims, _F32)
            check(lib.cnnviz_parameter(h, name, which.encode(), res.ctypes.data, res.size, shp, nd))
        return res

    # ---- attribution -----------------------------------------------------

    def _class_index(self, t, what):
        """A target as an int: >= 0 a class, -K the K-th ranked class."""
        if isinstance(t, str):
            if t.startswith("top") and t[3:].isdigit():
                k = int(t[3:])
                if not 1 <= k <= self._classes:
                    raise ValueError("%s %r: topK needs 1 <= K <= %d" % (what, t, self._classes))
                return -k
            if t.isdigit():
                t = int(t)
            elif t in self._label_index:
                return self._label_index[t]
            else:
                raise ValueError("%s %r is not topK, an index or a label of this model%s" % (
                    what, t, "" if self._labels else " (it has no labels)"))
        i = _int(t, what)
        if not 0 <= i < self._classes:
            raise ValueError("%s %d is out of range: the model has %d classes (0 .. %d)"
                             % (what, i, self._classes, self._classes - 1))
        return i

    def _resolve_targets(self, target, n):
        """None, or a list of n ints (see _class_index)."""
        if target is None:
            return None
        if isinstance(target, (list, tuple, np.ndarray)):
            if len(target) != n:
                raise ValueError("target: %d values for %d inputs" % (len(target), n))
            return [self._class_index(t, "target %d" % i) for i, t in enumerate(target)]
        return [self._class_index(target, "target")] * n

    def _fill_targets(self, targets, lo, hi):
        """Writes the targets of inputs lo .. hi - 1 (just run) into the
        scratch array; ranks are resolved from the run's outputs."""
        tg = self._targets
        if any(t < 0 for t in targets[lo:hi]):
            k = self._classes
            self._nat.check(self._lib.cnnviz_output(self._handle, self._logits.ctypes.data, (hi - lo) * k))
        for i in range(hi - lo):
            t = targets[lo + i]
            if t < 0:
                t = int(np.argsort(-self._logits[i], kind="stable")[-t - 1])
            tg[i] = t
        return self._addr["_targets"]

    def _attr_opts(self, score, samples, sigma, baseline, window, stride, upsample, reduce=None, cells=None,
                   keep=None):
        if (score == "logit" and samples is None and sigma is None and baseline is None and window is None
                and stride is None and not upsample and reduce is None and cells is None and keep is None):
            return None, None
        o = AttrOpts.from_buffer_copy(self._nat.attr_defaults)
        if score not in ("logit", "prob"):
            raise ValueError("score is 'logit' or 'prob', got %r" % (score,))
        o.prob = 1 if score == "prob" else 0
        if samples is not None:
            o.samples = _int(samples, "samples", 1)
        if sigma is not None:
            o.sigma = _float(sigma, "sigma", 0.0)
        if baseline is not None:
            if isinstance(baseline, str):
                o.baseline = baseline.encode("utf-8")
            else:
                o.baseline = repr(_float(baseline, "baseline")).encode()
        if window is not None:
            o.window = _int(window, "window", 1)
        if stride is not None:
            o.stride = _int(stride, "stride", 1)
        o.upsample = 1 if upsample else 0
        if reduce is not None:
            if reduce not in ("paper", "per-copy", "magnitude"):
                raise ValueError("reduce is 'paper', 'per-copy' or 'magnitude', got %r" % (reduce,))
            o.reduce = reduce.encode()
        if cells is not None:
            o.cells = _int(cells, "cells", 1)
        if keep is not None:
            o.keep = _float(keep, "keep", 0.0)
            if not 0 < o.keep <= 1:
                raise ValueError("keep is a probability in (0, 1], got %r" % (keep,))
        return o, ctypes.addressof(o)

    def attribute(self, x, method, layer=None, target=None, *, score="logit", samples=None, sigma=None,
                  baseline=None, window=None, stride=None, upsample=False, reduce=None, cells=None, keep=None,
                  out=None):
        """An attribution map of x for one class: float32 [h, w] for one
        input, [N, h, w] for a batch; the values the command line writes to
        its .npy map (configs/README.md, "Gradient maps", defines each):
        gradient maps in score units per network-input unit (saliency: max
        over channels of |d score / d x|), CAMs ReLU(sum_k w_k A_k) in the
        layer's activation units, occlusion in score drops.

        method: "saliency", "guided", "deconvnet", "gradxinput", "smoothgrad",
          "integrated", "fullgrad", "occlusion", "rise" (maps at the input's
          size H x W; layer None or "input"); "gradcam", "gradcampp",
          "layercam", "xgradcam", "hirescam", "scorecam", "ablationcam",
          "eigencam" (maps at `layer`'s h x w, a conv or pool layer;
          upsample=True: at H x W);
          "guided-gradcam" (H x W, with the CAM of `layer`).
        target: the class explained: None (each input's top class), an index,
          a label, "topK" (each input's K-th most probable class), or one of
          these per input of a batch.
        score: "logit" (default) or "prob" (the softmax probability).
        samples: smoothgrad's noisy copies (25) / integrated's steps (50).
        sigma: smoothgrad's noise, a fraction of the input's range (0.15).
        baseline: integrated / occlusion: "black", "zero", "blur" or a pixel
          value such as 0.5.
        window, stride: occlusion's square side and step in input pixels.
        reduce: smoothgrad's "paper" (default: max over channels of |the
          mean gradient|), "per-copy" or "magnitude" (configs/README.md).
        cells, keep: rise's grid side (7) and the probability that a cell
          is kept (0.5); samples: its masks (4000).
        out: optional float32 array of the result's shape to fill.
        Needs a model opened with gradients=True, occlusion excepted."""
        if not isinstance(method, str):
            raise TypeError("method must be a string such as 'gradcam', got %s" % type(method).__name__)
        if layer is not None:
            self.layer(self._layer_name(layer))
        opts, opts_addr = self._attr_opts(score, samples, sigma, baseline, window, stride, upsample, reduce, cells,
                                          keep)
        batch = _inputs.prepare(x, self._input_shape)
        targets = self._resolve_targets(target, batch.n)
        mname = method.encode("utf-8")
        lname = layer.encode("utf-8") if layer is not None else None
        key = (mname, lname, bool(upsample))
        lib, check = self._lib, self._nat.check
        res = None
        with self._lock:
            shp = self._addr["_shape"]
            for lo, hi in self._chunks(batch):
                self._run(batch, lo, hi)
                tptr = self._fill_targets(targets, lo, hi) if targets is not None else None
                if res is None:
                    hw = self._map_shapes.get(key)
                    if hw is None:
                        check(lib.cnnviz_attribute(self._handle, mname, lname, tptr, opts_addr, None, 0, shp))
                        hw = self._map_shapes[key] = (int(self._shape[1]), int(self._shape[2]))
                    res = self._result(out, batch.n, hw)
                    self._check_out(out, hw if batch.single else (batch.n,) + hw)
                    per = hw[0] * hw[1]
                    base = res.ctypes.data
                rc = lib.cnnviz_attribute(self._handle, mname, lname, tptr, opts_addr, base + lo * per * 4,
                                          (hi - lo) * per, shp)
                if rc < 0:
                    check(rc)
        if out is not None:
            return out
        return res[0] if batch.single else res

    # ---- rendering -------------------------------------------------------

    @staticmethod
    def _map2d(m):
        a = np.asarray(m)
        if a.ndim != 2 or 0 in a.shape:
            raise ValueError("a map is a 2-D array [h, w]; got shape %s" % (list(a.shape),))
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise TypeError("a map holds numbers, got %s" % a.dtype)
        return np.ascontiguousarray(a, dtype=_F32)

    @staticmethod
    def _resized(a, h, w):
        """a float32 map resized bilinearly to h x w (pixel centres aligned,
        as the library upsamples CAMs: PyTorch's align_corners=False)."""
        if a.shape == (h, w):
            return a
        from PIL import Image
        return np.ascontiguousarray(np.asarray(Image.fromarray(a, "F").resize((w, h), Image.BILINEAR)), dtype=_F32)

    @staticmethod
    def _image(rgba, zoom):
        from PIL import Image
        img = Image.fromarray(rgba, "RGBA")
        zoom = _int(zoom, "zoom", 1)
        if zoom > 1:
            img = img.resize((img.width * zoom, img.height * zoom), Image.NEAREST)
        return img

    def render(self, m, colormap=None, normalize="minmax", *, zoom=1):
        """A 2-D map [h, w] (any real dtype) as a PIL RGBA image of h x w
        pixels (x zoom, nearest neighbour), coloured on the device.
        colormap: None ("turbo"), "gray", "viridis", "magma", "inferno",
        "jet", "rdbu".  normalize: "minmax" (the map's range to the
        colormap's), "signed" (symmetric around 0) or "clip" (the 0.5 and
        99.5 percentiles).  The image shows inline in Jupyter."""
        a = self._map2d(m)
        rgba = np.empty(a.shape + (4,), np.uint8)
        cm, nm = _cstr(colormap, "colormap"), _cstr(normalize, "normalize")
        with self._lock:
            self._nat.check(self._lib.cnnviz_render(self._h(), a.ctypes.data, a.shape[0], a.shape[1], cm, nm, -1,
                                                    0.0, rgba.ctypes.data))
        return self._image(rgba, zoom)

    def show(self, m, image=None, *, alpha=0.5, colormap=None, normalize="minmax", zoom=1):
        """A map [h, w] over the image it explains, as a PIL RGBA image at the
        network input's size H x W (x zoom): image (one input as everywhere:
        path, PIL image, uint8 array, float32 tensor) is run and shown as the
        network sees it (after resize and crop), the map blended over it with
        weight alpha (0 .. 1).  A map smaller than H x W (a CAM at its layer's
        size) is resized bilinearly first.  image=None: render(m) alone.
        colormap, normalize: as in render().  Shows inline in Jupyter."""
        if image is None:
            return self.render(m, colormap, normalize, zoom=zoom)
        a = self._map2d(m)
        alpha = _float(alpha, "alpha", 0.0)
        if alpha > 1:
            raise ValueError("alpha is the map's weight, 0 .. 1; got %g" % alpha)
        batch = _inputs.prepare(image, self._input_shape)
        if not batch.single:
            raise ValueError("show() overlays one image; got a batch of %d" % batch.n)
        _, H, W = self._input_shape
        a = self._resized(a, H, W)
        rgba = np.empty((H, W, 4), np.uint8)
        cm, nm = _cstr(colormap, "colormap"), _cstr(normalize, "normalize")
        with self._lock:
            self._run(batch, 0, 1)
            self._nat.check(self._lib.cnnviz_render(self._handle, a.ctypes.data, H, W, cm, nm, 0, alpha,
                                                    rgba.ctypes.data))
        return self._image(rgba, zoom)

    # ---- lifetime --------------------------------------------------------

    def close(self):
        """Frees the model's device context and memory.  Further calls raise
        ValueError; closing twice is allowed."""
        with self._lock:
            h, self._handle = self._handle, None
            if h is not None:
                self._lib.cnnviz_close(h)
            self._pool.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None) is not None:
            self.close()
