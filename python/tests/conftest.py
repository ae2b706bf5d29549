"""Shared fixtures of the cnnviz package tests.

Environment (set by ctest through test/python/test_package.py; each has a
default for a manual `python3 -m pytest python/tests` from the checkout):
  CNNVIZ_SOURCE_DIR  the repository (default: two folders above this one)
  CNNVIZ_BIN         the cnnviz-cl binary (default: build/cnnviz-cl)
  CNNVIZ_LIBRARY     libcnnviz.so to load (default: the package's lookup)
  CNNVIZ_TEST_TMP    scratch folder (default: a temporary one)

The command line's .npy files are the reference: each test runs cnnviz-cl
on the same files and compares bit for bit.  A missing binary or a failing
command fails the test; nothing is skipped.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("CNNVIZ_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("CNNVIZ_BIN") or os.path.join(ROOT, "build", "cnnviz-cl")
FASHION = os.path.join(ROOT, "configs", "fashion_mnist.yaml")
FASHION_IMAGES = os.path.join(ROOT, "samples", "fashion_mnist", "images")
RESNET = os.path.join(ROOT, "configs", "resnet18.yaml")
RESNET_CLASS = 207
CLI_TIMEOUT = 900

if not os.environ.get("CNNVIZ_TEST_TMP") and os.path.isdir(os.path.join(ROOT, "build")):
    os.environ["CNNVIZ_TEST_TMP"] = os.path.join(ROOT, "build", "test-tmp")
if not os.environ.get("CNNVIZ_LIBRARY"):
    built = os.path.join(os.path.dirname(BIN), "libcnnviz.so.0")
    if os.path.exists(built):
        os.environ["CNNVIZ_LIBRARY"] = built

import cnnviz  # noqa: E402


def fashion_image(i):
    names = sorted(os.listdir(FASHION_IMAGES))
    return os.path.join(FASHION_IMAGES, names[i])


def run_cli(*args):
    """Runs cnnviz-cl with args; fails the test (with its stderr) unless it
    exits 0."""
    if not os.path.exists(BIN):
        pytest.fail("no cnnviz-cl binary at %s (set CNNVIZ_BIN or build the project)" % BIN)
    cmd = [BIN] + [str(a) for a in args]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=CLI_TIMEOUT,
                       universal_newlines=True)
    if r.returncode != 0:
        pytest.fail("%s exited %d:\n%s" % (" ".join(cmd), r.returncode, r.stderr[-4000:]))
    return r


def assert_same(got, ref, what):
    """Bit for bit: same shape, dtype float32, equal values (NaN nowhere)."""
    ref = np.asarray(ref)
    assert isinstance(got, np.ndarray), "%s: a %s, not a numpy array" % (what, type(got).__name__)
    assert got.dtype == np.float32, "%s: dtype %s" % (what, got.dtype)
    assert got.shape == ref.shape, "%s: shape %s, the command line's %s" % (what, got.shape, ref.shape)
    if not np.array_equal(got, ref):
        d = np.abs(got.astype(np.float64) - ref)
        i = np.unravel_index(int(np.nanargmax(d)), d.shape)
        pytest.fail("%s: %d of %d values differ; worst at %s: %r vs the command line's %r"
                    % (what, int(np.count_nonzero(got != ref)), got.size, i, got[i], ref[i]))


@pytest.fixture(scope="session")
def tmp_base(request):
    """A scratch folder for the session, removed at the end unless a test
    failed (then its command-line outputs are there to look at)."""
    base = os.environ.get("CNNVIZ_TEST_TMP")
    if base:
        d = os.path.join(base, "python")
        os.makedirs(d, exist_ok=True)
        path = tempfile.mkdtemp(prefix="pytest.", dir=d)
    else:
        path = tempfile.mkdtemp(prefix="cnnviz-pytest.")
    yield path
    if request.session.testsfailed:
        print("\nscratch folder kept: %s" % path)
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def fashion():
    """The shipped Fashion-MNIST model, opened once for the session."""
    m = cnnviz.Model(FASHION)
    yield m
    m.close()


@pytest.fixture(scope="session")
def resnet_files(tmp_base):
    """(weights, scene.png) of the seeded ResNet-18 the network tests use
    (test/net/test_networks.py: torchvision resnet18, netref.random_init,
    shared cache under $CNNVIZ_TEST_TMP/net), and its 256 x 256 test
    picture."""
    sys.path.insert(0, os.path.join(ROOT, "test", "net"))
    try:
        import netref
        import test_networks as tn
    finally:
        sys.path.pop(0)
    img = netref.make_scene(256, tn.SCENE_SEED)
    scene = os.path.join(tmp_base, "scene.png")
    netref.save_png(img, scene)
    weights, _ = tn.prepare("resnet18", tn.work_dir(), img)
    return weights, scene


@pytest.fixture(scope="session")
def resnet(resnet_files):
    m = cnnviz.Model(RESNET, weights=resnet_files[0])
    yield m
    m.close()
