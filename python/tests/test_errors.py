"""Bad arguments raise ValueError or TypeError; those the library finds
carry its message (cnnviz.UsageError / cnnviz.InputError, with .status).
A failed call leaves the model usable."""
import os
import subprocess
import sys

import numpy as np
import pytest

import cnnviz
from conftest import FASHION, fashion_image


@pytest.fixture(scope="module")
def img():
    return fashion_image(2)


def raises_library(exc, fn, *args, match, status, **kw):
    with pytest.raises(exc, match=match) as e:
        fn(*args, **kw)
    assert isinstance(e.value, cnnviz.Error), "%r is not a cnnviz.Error" % e.value
    assert e.value.status == status and e.value.message == str(e.value)
    return e.value


def test_unknown_layer(fashion, img):
    e = raises_library(cnnviz.UsageError, fashion.activations, img, "conv9",
                       match=r"no layer 'conv9' in .*fashion_mnist\.yaml", status=-1)
    assert isinstance(e, ValueError) and e.status_name == "CNNVIZ_ERR_USAGE"
    raises_library(ValueError, fashion.attribute, img, "gradcam", layer="conv9", match="no layer 'conv9'", status=-1)
    raises_library(ValueError, fashion.parameter, "conv9", match="no layer 'conv9'", status=-1)
    raises_library(ValueError, fashion.layer, "conv9", match="no layer 'conv9'", status=-1)


def test_unknown_method_and_options(fashion, img):
    raises_library(ValueError, fashion.attribute, img, "gradcan", layer="conv4",
                   match=r"unknown method 'gradcan' \(known: .*gradcam", status=-1)
    raises_library(ValueError, fashion.attribute, img, "gradcam", layer="fc1",
                   match="'gradcam' needs a layer with spatial maps", status=-1)
    raises_library(ValueError, fashion.attribute, img, "saliency", layer="conv4", match="explains the input",
                   status=-1)
    raises_library(ValueError, fashion.attribute, img, "integrated", baseline="grey",
                   match="baseline 'grey'", status=-1)
    with pytest.raises(ValueError, match="score is 'logit' or 'prob'"):
        fashion.attribute(img, "saliency", score="logits")
    with pytest.raises(ValueError, match="out of range: the model has 10 classes"):
        fashion.attribute(img, "saliency", target=10)
    with pytest.raises(ValueError, match="not topK, an index or a label"):
        fashion.attribute(img, "saliency", target="Sweater")
    with pytest.raises(ValueError, match="2 values for 1 inputs"):
        fashion.attribute(img, "saliency", target=[1, 2])
    with pytest.raises(TypeError, match="method must be a string"):
        fashion.attribute(img, 3)
    raises_library(ValueError, fashion.parameter, "relu1", "weight", match="has no weight", status=-1)
    raises_library(ValueError, fashion.render, np.ones((4, 4)), colormap="rainbow",
                   match="unknown colormap 'rainbow'", status=-1)


def test_bad_inputs(fashion, img):
    c, h, w = fashion.input_shape
    with pytest.raises(TypeError, match="must be float32.*got float64"):
        fashion.output(np.zeros((c, h, w)))
    with pytest.raises(ValueError, match=r"\[C, H, W\] = \[1, 28, 28\].*got shape \[1, 28, 27\]"):
        fashion.output(np.zeros((c, h, w - 1), np.float32))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\].*got shape \[2, 3, 28, 28\]"):
        fashion.output(np.zeros((2, 3, h, w), np.float32))
    with pytest.raises(ValueError, match=r"H x W x \{1, 3, 4\}.*got shape \(28, 28, 2\)"):
        fashion.output(np.zeros((28, 28, 2), np.uint8))
    with pytest.raises(TypeError, match="must be uint8.*or float32.*got int64"):
        fashion.output(np.zeros((28, 28), np.int64))
    with pytest.raises(TypeError, match="got dict"):
        fashion.output({})
    with pytest.raises(ValueError, match="empty batch"):
        fashion.output([])
    with pytest.raises(ValueError, match="mixes files and images"):
        fashion.output([img, np.zeros((28, 28), np.uint8)])
    with pytest.raises(TypeError, match="layer must be a layer name"):
        fashion.activations(img, 3)
    with pytest.raises(ValueError, match="a map is a 2-D array"):
        fashion.render(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="out has shape"):
        fashion.output(img, out=np.empty(11, np.float32))
    with pytest.raises(TypeError, match="float32"):
        fashion.output(img, out=np.empty(10, np.float64))


def test_missing_files(fashion, tmp_base):
    missing = os.path.join(tmp_base, "no-such-image.png")
    e = raises_library(cnnviz.InputError, fashion.output, missing, match="no-such-image.png: No such file",
                       status=-2)
    assert isinstance(e, ValueError)
    raises_library(ValueError, cnnviz.Model, os.path.join(tmp_base, "no-such.yaml"), match="no-such.yaml",
                   status=-2)
    raises_library(ValueError, cnnviz.Model, FASHION, weights=os.path.join(tmp_base, "none.safetensors"),
                   match="none.safetensors", status=-2)
    bad = os.path.join(tmp_base, "not-an-image.png")
    with open(bad, "wb") as f:
        f.write(b"this is text")
    raises_library(ValueError, fashion.output, bad, match="not-an-image.png", status=-2)
    # the model still works after failures
    assert fashion.output(fashion_image(0)).shape == (10,)


def test_open_options():
    with pytest.raises(ValueError, match="max_batch must be at least 1"):
        cnnviz.Model(FASHION, max_batch=0)
    with pytest.raises(TypeError, match="max_batch must be an integer"):
        cnnviz.Model(FASHION, max_batch=1.5)
    with pytest.raises(ValueError, match="1 or 3 values"):
        cnnviz.Model(FASHION, mean=[0.1, 0.2])
    with pytest.raises(TypeError, match="path must be"):
        cnnviz.Model(3)
    raises_library(ValueError, cnnviz.Model, FASHION, preprocess="sideways", match="preprocess 'sideways'",
                   status=-1)


def test_gradients_off(img):
    """A model opened without gradients refuses gradient methods with the
    library's message, and still runs occlusion and activations."""
    with cnnviz.Model(FASHION, gradients=False) as m:
        assert not m.gradients
        raises_library(ValueError, m.attribute, img, "saliency", match="'saliency' needs the backward pass",
                       status=-1)
        raises_library(ValueError, m.attribute, img, "gradcam", layer="conv4", match="needs the backward pass",
                       status=-1)
        occ = m.attribute(img, "occlusion", window=7, stride=7)
        assert occ.shape == (28, 28) and np.isfinite(occ).all() and np.ptp(occ) > 0
        assert m.activations(img, "conv4").shape == (64, 14, 14)


def test_closed_model(img):
    m = cnnviz.Model(FASHION)
    m.close()
    m.close()
    assert "closed" in repr(m)
    with pytest.raises(ValueError, match="the model is closed"):
        m.output(img)
    with pytest.raises(ValueError, match="the model is closed"):
        m.render(np.ones((2, 2)))


def test_library_not_found(tmp_base):
    """CNNVIZ_LIBRARY naming no file: importing works, the first use raises
    cnnviz.LibraryError (an ImportError) saying how to build the library."""
    code = ("import cnnviz\n"
            "try:\n"
            "    cnnviz.devices()\n"
            "except ImportError as e:\n"
            "    assert isinstance(e, cnnviz.LibraryError)\n"
            "    print(e)\n"
            "else:\n"
            "    raise SystemExit('no error')\n")
    env = dict(os.environ, CNNVIZ_LIBRARY=os.path.join(tmp_base, "libnothing.so"))
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_base, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    assert r.returncode == 0, r.stdout
    assert "libnothing.so: no such file" in r.stdout and "cmake --install build" in r.stdout, r.stdout
