"""Functions that need no open model: the devices, the command line's
output folder, and which library is loaded."""
import collections
import ctypes
import os
import re

from ._native import WriteOpts, native
from .model import Model, _cstr, _int, _log_function, _selector, set_preprocessing

Device = collections.namedtuple("Device", "platform device name type vendor line")
Device.__doc__ = """An OpenCL device: platform and device indices (what Model(platform=,
device=) takes), its name, type ("cpu", "gpu", ...) and vendor as the
driver reports them, and line, the library's description of it."""

# `cnnviz-cl devices` layout (cnnviz_devices gives it): a platform line,
# then per device "  device D: NAME" and indented detail lines, the first
# "    vendor V, type T, driver ...".
_PLATFORM_HEAD = re.compile(r"^platform (\d+):")
_DEVICE_HEAD = re.compile(r"^\s+device (\d+): (.*)$")
_DEVICE_DETAIL = re.compile(r"^\s+vendor (.*?), type ([^,]*),")


def _parse_devices(text):
    out = []
    platform = None
    for raw in text.splitlines():
        line = raw.rstrip()
        m = _PLATFORM_HEAD.match(line)
        if m:
            platform = int(m.group(1))
            continue
        m = _DEVICE_HEAD.match(line)
        if m and platform is not None:
            out.append(Device(platform, int(m.group(1)), m.group(2), None, None, line.strip()))
            continue
        m = _DEVICE_DETAIL.match(line)
        if m and out and out[-1].type is None:
            d = out[-1]
            out[-1] = d._replace(vendor=m.group(1), type=m.group(2), line=d.line + "; " + line.strip())
    return out


def devices():
    """Every OpenCL device the library sees, a list of Device(platform,
    device, name, type, vendor, line).  Raises cnnviz.Error when there is
    no OpenCL platform at all."""
    nat = native()
    n = nat.check(nat.lib.cnnviz_devices(None, 0))
    buf = ctypes.create_string_buffer(n + 1)
    nat.check(nat.lib.cnnviz_devices(ctypes.addressof(buf), n + 1))
    return _parse_devices(buf.value.decode("utf-8", "replace"))


def library():
    """(path, version) of the libcnnviz this package loaded (loads it on
    first use; raises cnnviz.LibraryError, an ImportError, when it cannot)."""
    nat = native()
    return nat.path, nat.version


def _paths(values, what):
    if isinstance(values, (str, bytes, os.PathLike)):
        values = [values]
    out = []
    for v in values:
        if not isinstance(v, (str, bytes, os.PathLike)):
            raise TypeError("%s: each entry is a string or a path, got %s" % (what, type(v).__name__))
        out.append(os.fsencode(v))
    return out


def write_run(model, inputs, out=None, *, taps=(), no_taps=False, cls=None, score=None, curves=None, road=None, sanity=0, npy=False,
              report=True, batch=1, top=0, png_level=None, platform=None, device=None, weights=None, strict=None,
              preprocess=None, mean=None, std=None, size=None, wait_lock=False, log=None):
    """Writes the folder `cnnviz-cl run MODEL --input ... --out OUT` writes:
    predictions, each input's output.npy, the taps as PNG (and .npy), the
    report index.html and manifest.json.  Returns out (or None when the
    pipeline's output.dir was used).

    model: a pipeline YAML or ONNX path, or a Model (its path, and the
      weights, device and preprocessing options it was opened with unless
      given here; the run opens its own device context).
    inputs: a path or a list of paths: images, .npy files (float32 [C, H, W]
      or [N, C, H, W]), folders, @list.txt files -- as --input.
    out: the output folder (None: the pipeline's output.dir).  It is
      published whole at the end or left as it was.
    The other arguments are the command line's options of the same names:
      taps: "LAYER[:KIND]" strings as --tap (e.g. "conv1:filters",
      "input:saliency", "layer4:gradcam"); no_taps: only these, not the
      pipeline's; cls: --class for every gradient tap ("top1", "topK", an
      index or a label); score: "logit" or "prob"; curves: deletion /
      insertion steps; road: True / False, ROAD of every map (None: each
      tap's); sanity: N, the model randomisation check over the top N
      layers (0: none); npy: .npy beside the PNGs; report: index.html;
      batch: images per forward pass; top: classes listed (0: the
      pipeline's); png_level: 0 .. 9; platform, device, weights, strict,
      preprocess, mean, std, size: as Model(); wait_lock: wait for another
      run writing into `out` instead of failing.
    log: None (silent) or a callable log(level, line) receiving the progress
      and result lines the command line prints."""
    nat = native()
    given = {"weights": weights, "platform": platform, "device": device, "strict": strict,
             "preprocess": preprocess, "mean": mean, "std": std, "size": size}
    if isinstance(model, Model):
        given = {k: model._open_args[k] if v is None else v for k, v in given.items()}
        model = model.path
    if not isinstance(model, (str, bytes, os.PathLike)):
        raise TypeError("model must be a path or a cnnviz.Model, got %s" % type(model).__name__)
    ins = _paths(inputs, "inputs")
    if not ins:
        raise ValueError("inputs: no input given")
    tap_list = _paths(taps, "taps") if taps else []
    o = WriteOpts.from_buffer_copy(nat.write_defaults)
    in_arr = (ctypes.c_char_p * len(ins))(*ins)
    tap_arr = (ctypes.c_char_p * max(1, len(tap_list)))(*tap_list)
    o.taps = ctypes.addressof(tap_arr) if tap_list else None
    o.n_taps = len(tap_list)
    o.no_taps = 1 if no_taps else 0
    o.cls = _cstr(cls if cls is None or isinstance(cls, str) else str(_int(cls, "cls", 0)), "cls")
    o.score = _cstr(score, "score")
    if curves is not None:
        o.curves = _int(curves, "curves", 0)
    if road is not None:
        o.road = 1 if road else 0
    o.sanity = _int(sanity, "sanity", 0)
    o.npy = 1 if npy else 0
    o.report = 1 if report else 0
    o.batch = _int(batch, "batch", 1)
    o.top = _int(top, "top", 0)
    if png_level is not None:
        o.png_level = _int(png_level, "png_level", 0)
    o.platform = _selector(given["platform"], "platform")
    o.device = _selector(given["device"], "device")
    o.weights = _cstr(given["weights"], "weights")
    o.strict = 1 if given["strict"] else 0
    set_preprocessing(o, given["preprocess"], given["mean"], given["std"], given["size"])
    o.wait_lock = 1 if wait_lock else 0
    cb = _log_function(log)
    if cb is not None:
        o.log = cb
    out_b = os.fsencode(out) if out is not None else None
    nat.check(nat.lib.cnnviz_write_run(os.fsencode(model), ctypes.addressof(in_arr), len(ins), out_b,
                                       ctypes.addressof(o)))
    return os.fsdecode(out) if out is not None else None
