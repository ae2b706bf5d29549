"""What a model says about itself, parameters, rendering, write_run,
devices, and that every public function documents itself."""
import inspect
import io
import json
import os
import struct

import numpy as np
import pytest
from PIL import Image

import cnnviz
from conftest import FASHION, ROOT, assert_same, fashion_image

FASHION_WEIGHTS = os.path.join(ROOT, "samples", "fashion_mnist", "fashion_mnist.safetensors")


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        if info["dtype"] == "F32":
            b, e = info["data_offsets"]
            out[name] = np.frombuffer(data[b:e], "<f4").reshape(info["shape"])
    return out


def test_model_description(fashion):
    assert fashion.input_shape == (1, 28, 28)
    assert fashion.num_classes == 10 and fashion.name == "fashion_mnist"
    with open(os.path.join(ROOT, "samples", "fashion_mnist", "classes.txt")) as f:
        assert list(fashion.labels) == f.read().splitlines()
    assert fashion.classes == fashion.labels
    names = [l.name for l in fashion.layers]
    assert names[:3] == ["conv1", "bn1", "relu1"] and names[-1] == "fc2" and len(names) == 19
    conv1 = fashion.layer("conv1")
    assert isinstance(conv1, cnnviz.LayerInfo)
    assert conv1 == ("conv1", "conv2d", (32, 28, 28), 32 * 9 + 32, False, True, True)
    assert fashion.layer("pool2").shape == (64, 7, 7)
    fc1 = fashion.layer("fc1")
    assert fc1.flat and fc1.shape == (128,) and fc1.params == 3136 * 128 + 128
    assert fashion.layer("input").shape == fashion.input_shape
    # every float of the weights file (batch-norm running statistics too)
    assert sum(l.params for l in fashion.layers) == sum(t.size for t in read_safetensors(FASHION_WEIGHTS).values())
    assert fashion.max_batch == 1 and fashion.gradients and not fashion.outputs_probabilities
    assert fashion.path == FASHION and "fashion_mnist" in repr(fashion)
    assert fashion.device_name


def test_parameters(fashion):
    """Weights and biases as the file holds them."""
    st = read_safetensors(FASHION_WEIGHTS)
    for layer, key in (("conv1", "features.0"), ("conv4", "features.10"), ("fc1", "classifier.1"),
                       ("bn2", "features.4")):
        for which in ("weight", "bias"):
            got = fashion.parameter(layer, which)
            assert_same(got, st["%s.%s" % (key, which)], "%s %s" % (layer, which))
    assert_same(fashion.parameter("bn2", "running_var"), st["features.4.running_var"], "bn2 running_var")


def test_predict(fashion):
    for i in (0, 6):
        img = fashion_image(i)
        top = fashion.predict(img, k=3)
        logits = fashion.output(img).astype(np.float64)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        assert [t.index for t in top] == list(np.argsort(-p, kind="stable")[:3])
        assert top[0].probability >= top[1].probability >= top[2].probability
        assert top[0].label == fashion.labels[top[0].index]
        assert abs(top[0].probability - p[top[0].index]) < 1e-12
    # the shipped images are named by their class and predicted right
    batch = fashion.predict([fashion_image(0), fashion_image(1)], k=1)
    assert [b[0].index for b in batch] == [0, 1]
    assert len(fashion.predict(fashion_image(0), k=50)) == 10


def test_targets(fashion):
    img = fashion_image(4)
    order = np.argsort(-fashion.output(img), kind="stable")
    top1 = fashion.attribute(img, "saliency")
    assert np.array_equal(top1, fashion.attribute(img, "saliency", target=int(order[0])))
    second = fashion.attribute(img, "saliency", target="top2")
    assert np.array_equal(second, fashion.attribute(img, "saliency", target=int(order[1])))
    assert np.array_equal(second, fashion.attribute(img, "saliency", target=fashion.labels[order[1]]))
    assert not np.array_equal(top1, second)
    up = fashion.attribute(img, "gradcam", layer="conv4", upsample=True)
    assert up.shape == (28, 28)
    out = np.empty((14, 14), np.float32)
    got = fashion.attribute(img, "gradcam", layer="conv4", out=out)
    assert got is out and np.array_equal(out, fashion.attribute(img, "gradcam", layer="conv4"))
    sg = fashion.attribute(img, "smoothgrad", samples=4, sigma=0.1)
    assert sg.shape == (28, 28) and np.isfinite(sg).all()
    ig = fashion.attribute(img, "integrated", samples=8, baseline=0.5, score="prob")
    assert ig.shape == (28, 28) and np.isfinite(ig).all() and np.ptp(ig) > 0


def test_render_and_show(fashion, tmp_base):
    """render() colours like the command line's map PNG (same map, turbo,
    its min..max); show() is the input under the map at alpha."""
    img = fashion_image(3)
    out = os.path.join(tmp_base, "render_cli")
    cnnviz.write_run(FASHION, [img], out, taps=["input:saliency"], no_taps=True, npy=True, report=False)
    d = os.path.join(out, os.path.splitext(os.path.basename(img))[0])
    cls = fashion.predict(img, k=1)[0].index
    sal = np.load(os.path.join(d, "saliency_c%d.npy" % cls))
    assert_same(fashion.attribute(img, "saliency"), sal, "write_run's saliency")
    rendered = fashion.render(sal, "turbo")
    assert isinstance(rendered, Image.Image) and rendered.mode == "RGBA" and rendered.size == (28, 28)
    cli_png = np.asarray(Image.open(os.path.join(d, "saliency_c%d.png" % cls)).convert("RGB"))
    assert np.array_equal(np.asarray(rendered)[:, :, :3], cli_png), "render() differs from the command line's PNG"
    assert (np.asarray(rendered)[:, :, 3] == 255).all()
    over = fashion.show(sal, img, alpha=0.5, colormap="turbo")
    cli_over = np.asarray(Image.open(os.path.join(d, "saliency_c%d_overlay.png" % cls)).convert("RGB"))
    assert np.array_equal(np.asarray(over)[:, :, :3], cli_over), "show() differs from the command line's overlay"
    png = over._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(io.BytesIO(png)).size == (28, 28)
    cam = fashion.attribute(img, "gradcam", layer="conv4")
    big = fashion.show(cam, img, zoom=4)
    assert big.size == (112, 112)
    # show() brings a CAM to the input's size as the library upsamples it
    up = fashion.attribute(img, "gradcam", layer="conv4", upsample=True)
    fitted = cnnviz.Model._resized(cam, 28, 28)
    assert np.abs(fitted - up).max() <= 1e-5 * np.abs(up).max()
    gray = fashion.render(np.arange(12.0).reshape(3, 4), colormap="gray", zoom=2)
    g = np.asarray(gray)
    assert gray.size == (8, 6) and g[0, 0, 0] == 0 and g[-1, -1, 0] == 255
    assert np.array_equal(g[..., 0], g[..., 1])


def test_write_run(fashion, tmp_base):
    out = os.path.join(tmp_base, "write_run")
    lines = []
    imgs = [fashion_image(2), fashion_image(5)]
    # with a gradient tap the run keeps what gradients need, as a Model
    # opened with gradients does, so the values are the same to the bit
    got = cnnviz.write_run(fashion, imgs, out, taps=["conv2", "conv1:filters", "input:saliency"], no_taps=True,
                           npy=True, cls="top2", log=lambda level, line: lines.append((level, line)))
    assert got == out
    assert os.path.exists(os.path.join(out, "index.html"))
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["files"]
    for img in imgs:
        d = os.path.join(out, os.path.splitext(os.path.basename(img))[0])
        assert_same(fashion.activations(img, "conv2"), np.load(os.path.join(d, "conv2", "activations.npy")),
                    "write_run's conv2")
        assert_same(fashion.output(img), np.load(os.path.join(d, "output.npy")), "write_run's output")
        second = fashion.predict(img, k=2)[1].index
        assert_same(fashion.attribute(img, "saliency", target="top2"),
                    np.load(os.path.join(d, "saliency_c%d.npy" % second)), "write_run's top2 saliency")
    assert os.path.exists(os.path.join(out, "model", "conv1", "filters.png"))
    assert lines and all(level in (0, 1) and isinstance(line, str) for level, line in lines)
    # the command line's options: score, curves, ROAD, sanity, PNG level
    out2 = os.path.join(tmp_base, "write_run_prob")
    cnnviz.write_run(FASHION, imgs[:1], out2, taps=["input:saliency"], no_taps=True, npy=True, score="prob",
                     curves=4, road=True, sanity=1, png_level=0, report=False)
    d = os.path.join(out2, os.path.splitext(os.path.basename(imgs[0]))[0])
    top = fashion.predict(imgs[0], k=1)[0].index
    assert_same(fashion.attribute(imgs[0], "saliency", score="prob"),
                np.load(os.path.join(d, "saliency_c%d.npy" % top)), "write_run's saliency of the probability")
    with open(os.path.join(out2, "manifest.json")) as f:
        entry = [e for e in json.load(f)["files"] if e.get("role") == "map"][0]
    assert "deletion" in entry and len(entry["road_morf"]) == 9 and entry["sanity"][0]["randomized"] == "fc2"
    with pytest.raises(ValueError, match="score 'odds'"):
        cnnviz.write_run(FASHION, imgs[:1], out2, score="odds")
    with pytest.raises(ValueError, match="no-such-tap"):
        cnnviz.write_run(FASHION, imgs[:1], os.path.join(tmp_base, "write_bad"), taps=["no-such-tap"])
    with pytest.raises(TypeError, match="each entry is a string or a path"):
        cnnviz.write_run(FASHION, [3], out)


def test_devices_and_library(fashion):
    devs = cnnviz.devices()
    assert devs and all(isinstance(d, cnnviz.Device) for d in devs)
    assert any(d.name == fashion.device_name for d in devs), (devs, fashion.device_name)
    assert all(d.platform is not None and d.device is not None and d.type for d in devs)
    path, version = cnnviz.library()
    assert os.path.exists(path) or "/" not in path
    assert version.split(".")[0] == cnnviz.__version__.split(".")[0]


def test_log_callback(tmp_base):
    lines = []
    with cnnviz.Model(FASHION, log=lambda level, line: lines.append((level, line))) as m:
        m.output(fashion_image(0))
    assert all(isinstance(l, str) for _, l in lines)
    with pytest.raises(TypeError, match="log must be a callable"):
        cnnviz.Model(FASHION, log="stderr")


def test_documented():
    """help() on every public function and method gives its shapes and
    units: a docstring, and for array results the shape words."""
    public = [cnnviz.Model, cnnviz.devices, cnnviz.write_run, cnnviz.library]
    public += [f for n, f in inspect.getmembers(cnnviz.Model) if not n.startswith("_") and
               (inspect.isfunction(f) or isinstance(f, property))]
    for f in public:
        doc = inspect.getdoc(f)
        assert doc and len(doc) > 40, "%r has no docstring" % f
    for name in ("output", "activations", "attribute", "parameter", "probabilities"):
        doc = inspect.getdoc(getattr(cnnviz.Model, name))
        assert "float" in doc and "[" in doc, "%s: docstring gives no dtype or shape" % name
    for cls in (cnnviz.Error, cnnviz.UsageError, cnnviz.InputError, cnnviz.LibraryError, cnnviz.Prediction,
                cnnviz.LayerInfo, cnnviz.Device):
        assert inspect.getdoc(cls)
    assert issubclass(cnnviz.UsageError, ValueError) and issubclass(cnnviz.InputError, ValueError)
    assert issubclass(cnnviz.Error, RuntimeError) and issubclass(cnnviz.LibraryError, ImportError)
