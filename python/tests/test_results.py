"""The package's arrays equal the command line's .npy files bit for bit:
network output, an activations tap, saliency and Grad-CAM, on the shipped
Fashion-MNIST model (two images) and on a seeded ResNet-18 (a 256 x 256
test picture), for the same image files; the same values from the other
input kinds (PIL image, uint8 array, float32 tensor) and from batches."""
import os

import numpy as np
import pytest
from PIL import Image

import cnnviz
from conftest import FASHION, RESNET, RESNET_CLASS, ROOT, assert_same, fashion_image, run_cli

FASHION_CLASS = 3


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


@pytest.fixture(scope="module")
def fashion_cli(tmp_base):
    """The command line on two Fashion images: output, conv2 and fc1
    activations, saliency and Grad-CAM (conv4) of class 3."""
    out = os.path.join(tmp_base, "fashion_cli")
    imgs = [fashion_image(0), fashion_image(7)]
    run_cli("run", FASHION, "--input", imgs[0], "--input", imgs[1], "--out", out, "--npy", "--no-taps",
            "--no-report", "-q", "--tap", "conv2", "--tap", "fc1", "--tap", "input:saliency", "--tap",
            "conv4:gradcam", "--class", FASHION_CLASS)
    return out, imgs


@pytest.fixture(scope="module")
def resnet_cli(tmp_base, resnet_files):
    weights, scene = resnet_files
    out = os.path.join(tmp_base, "resnet_cli")
    run_cli("run", RESNET, "--weights", weights, "--input", scene, "--out", out, "--npy", "--no-taps",
            "--no-report", "-q", "--tap", "layer3", "--tap", "input:saliency", "--tap", "layer4:gradcam",
            "--class", RESNET_CLASS)
    return os.path.join(out, stem(scene)), scene


def test_fashion_output(fashion, fashion_cli):
    out, imgs = fashion_cli
    for img in imgs:
        assert_same(fashion.output(img), np.load(os.path.join(out, stem(img), "output.npy")), "output of " + img)
    both = fashion.output(imgs)
    for i, img in enumerate(imgs):
        assert_same(both[i], np.load(os.path.join(out, stem(img), "output.npy")), "batch output of " + img)


def test_fashion_activations(fashion, fashion_cli):
    out, imgs = fashion_cli
    for img in imgs:
        for layer in ("conv2", "fc1"):
            ref = np.load(os.path.join(out, stem(img), layer, "activations.npy"))
            assert_same(fashion.activations(img, layer), ref, "%s of %s" % (layer, img))
    batch = fashion.activations(imgs, "conv2")
    assert batch.shape == (2,) + fashion.layer("conv2").shape
    for i, img in enumerate(imgs):
        assert_same(batch[i], np.load(os.path.join(out, stem(img), "conv2", "activations.npy")), "batch conv2")


def test_fashion_maps(fashion, fashion_cli):
    out, imgs = fashion_cli
    for img in imgs:
        d = os.path.join(out, stem(img))
        sal = fashion.attribute(img, "saliency", target=FASHION_CLASS)
        assert_same(sal, np.load(os.path.join(d, "saliency_c%d.npy" % FASHION_CLASS)), "saliency of " + img)
        cam = fashion.attribute(img, "gradcam", layer="conv4", target=FASHION_CLASS)
        assert_same(cam, np.load(os.path.join(d, "gradcam_conv4_c%d.npy" % FASHION_CLASS)), "gradcam of " + img)
        assert cam.shape == fashion.layer("conv4").shape[1:]
    cams = fashion.attribute(imgs, "gradcam", layer="conv4", target=[FASHION_CLASS, "Dress"])
    for i, img in enumerate(imgs):
        ref = np.load(os.path.join(out, stem(img), "gradcam_conv4_c%d.npy" % FASHION_CLASS))
        assert_same(cams[i], ref, "batch gradcam of " + img)


def test_fashion_input_kinds(fashion, fashion_cli):
    """A PIL image, its uint8 array and the network input itself as a
    float32 tensor all give the file's output."""
    out, imgs = fashion_cli
    img = imgs[1]
    ref = np.load(os.path.join(out, stem(img), "output.npy"))
    pil = Image.open(img)
    assert pil.mode == "L"
    assert_same(fashion.output(pil), ref, "output of the PIL image")
    arr = np.asarray(pil)
    assert_same(fashion.output(arr), ref, "output of the H x W uint8 array")
    assert_same(fashion.output(arr[:, :, None]), ref, "output of the H x W x 1 uint8 array")
    x = fashion.activations(img, "input")
    assert x.shape == fashion.input_shape and x.dtype == np.float32
    assert_same(fashion.output(x), ref, "output of the network input as a float32 tensor")
    assert_same(fashion.output(x[None]), ref[None], "output of a float32 [1, C, H, W] batch")
    sal = fashion.attribute(x, "saliency", target=FASHION_CLASS)
    assert_same(sal, np.load(os.path.join(out, stem(img), "saliency_c%d.npy" % FASHION_CLASS)),
                "saliency of the float32 tensor")


def test_fashion_colour_inputs(fashion, tmp_base):
    """A colour image on the gray model: the file, its RGB array and its
    PIL image go through the same conversion on the device; a batch
    mixing gray and RGB arrays gives each one's own result."""
    gray = np.asarray(Image.open(fashion_image(6)))
    rgb = np.stack([gray, gray // 2, 255 - gray], axis=2)
    path = os.path.join(tmp_base, "colour.png")
    Image.fromarray(rgb).save(path)
    ref = fashion.output(path)
    assert_same(fashion.output(rgb), ref, "output of the RGB array")
    assert_same(fashion.output(Image.open(path)), ref, "output of the RGB PIL image")
    mixed = fashion.output([gray, rgb])
    assert_same(mixed[0], fashion.output(gray), "gray image of a mixed batch")
    assert_same(mixed[1], ref, "RGB image of a mixed batch")


def test_fashion_batches_split(fashion, fashion_cli):
    """A batch larger than max_batch (1) runs in pieces; a uint8 N x H x W x
    1 array and a list of PIL images give the files' results."""
    out, imgs = fashion_cli
    stack = np.stack([np.asarray(Image.open(p))[:, :, None] for p in imgs])
    got = fashion.output(stack)
    got_pil = fashion.output([Image.open(p) for p in imgs])
    for i, img in enumerate(imgs):
        ref = np.load(os.path.join(out, stem(img), "output.npy"))
        assert_same(got[i], ref, "uint8 batch row %d" % i)
        assert_same(got_pil[i], ref, "PIL batch row %d" % i)


def test_resnet(resnet, resnet_cli):
    d, scene = resnet_cli
    assert resnet.input_shape == (3, 224, 224)
    out = resnet.output(scene)
    assert_same(out, np.load(os.path.join(d, "output.npy")), "ResNet-18 output")
    assert_same(resnet.activations(scene, "layer3"), np.load(os.path.join(d, "layer3", "activations.npy")),
                "ResNet-18 layer3")
    assert_same(resnet.attribute(scene, "saliency", target=RESNET_CLASS),
                np.load(os.path.join(d, "saliency_c%d.npy" % RESNET_CLASS)), "ResNet-18 saliency")
    cam = resnet.attribute(scene, "gradcam", layer="layer4", target=RESNET_CLASS)
    assert_same(cam, np.load(os.path.join(d, "gradcam_layer4_c%d.npy" % RESNET_CLASS)), "ResNet-18 gradcam")
    # the RGB file as a PIL image and as an array: the same pixels, the same run
    rgb = np.asarray(Image.open(scene).convert("RGB"))
    assert_same(resnet.output(rgb), out, "ResNet-18 output of the uint8 array")
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 77, np.uint8)], axis=2)
    assert_same(resnet.output(rgba), out, "ResNet-18 output of an RGBA array (alpha dropped)")


def test_resnet_predict(resnet, resnet_cli):
    d, scene = resnet_cli
    logits = np.load(os.path.join(d, "output.npy")).astype(np.float64)
    top = resnet.predict(scene, k=5)
    assert len(top) == 5 and all(isinstance(p, cnnviz.Prediction) for p in top)
    assert [p.index for p in top] == [int(i) for i in np.argsort(-logits, kind="stable")[:5]]
    e = np.exp(logits - logits.max())
    p = e / e.sum()
    for t in top:
        assert abs(t.probability - p[t.index]) < 1e-12
        assert t.label == resnet.labels[t.index]
    assert len(resnet.labels) == resnet.num_classes == 1000
    assert not resnet.outputs_probabilities
    probs = resnet.probabilities(scene)
    assert probs.shape == (1000,) and abs(probs.sum() - 1) < 1e-9


def test_onnx(tmp_base):
    """An ONNX model imported in memory, with the command line's
    preprocessing options: an image and a float32 .npy tensor."""
    onnx = os.path.join(ROOT, "samples", "keras", "keras_small.onnx")
    xpath = os.path.join(ROOT, "samples", "keras", "keras_small_input.npy")
    img = fashion_image(3)
    out = os.path.join(tmp_base, "onnx_cli")
    run_cli("run", onnx, "--preprocess", "none", "--mean", "0.5", "--std", "0.25", "--input", img, "--input", xpath,
            "--out", out, "--npy", "--no-taps", "--no-report", "-q", "--tap", "input:saliency")
    x = np.load(xpath)
    with cnnviz.Model(onnx, preprocess="none", mean=0.5, std=[0.25]) as m:
        assert m.input_shape == x.shape
        assert_same(m.output(img), np.load(os.path.join(out, stem(img), "output.npy")), "ONNX output of an image")
        ref = np.load(os.path.join(out, "keras_small_input", "output.npy"))
        assert_same(m.output(x), ref, "ONNX output of a tensor")
        top = int(np.argmax(ref))
        sal = np.load(os.path.join(out, "keras_small_input", "saliency_c%d.npy" % top))
        assert_same(m.attribute(x, "saliency"), sal, "ONNX saliency of a tensor")
        # write_run takes the model's preprocessing with it
        out2 = os.path.join(tmp_base, "onnx_write_run")
        cnnviz.write_run(m, [img], out2, taps=["input:saliency"], no_taps=True, npy=True, report=False)
        assert_same(np.load(os.path.join(out2, stem(img), "output.npy")),
                    np.load(os.path.join(out, stem(img), "output.npy")), "write_run's ONNX output")
    lines = []
    with cnnviz.Model(onnx, log=lambda level, line: lines.append((level, line))) as m:
        pass
    assert any(level == 0 and "assumed ImageNet preprocessing" in line for level, line in lines), lines


NEW_METHODS = [("xgradcam", "conv4"), ("hirescam", "conv4"), ("scorecam", "conv4"), ("ablationcam", "conv4"),
               ("eigencam", "conv4"), ("fullgrad", None), ("rise", None), ("lime", None), ("kernelshap", None)]


def test_fashion_new_methods(fashion, tmp_base):
    """The CAM family, FullGrad, RISE, LIME and KernelSHAP through the
    library equal the command line's .npy maps of the same image and class.
    The methods that run copies in batches sum them in the network batch's
    chunks, which differ between the two (the library's max_batch, the
    command line's batch sized for the copies): equal to float32 rounding,
    relative L2 <= 1e-4 (Ablation-CAM's weights subtract nearly equal
    scores: 1.7e-5 measured), not bit for bit; the others bit for bit."""
    img = fashion_image(7)
    out = os.path.join(tmp_base, "fashion_new_methods")
    taps = []
    for m, layer in NEW_METHODS:
        taps += ["--tap", "%s:%s" % (layer or "input", m)]
    run_cli("run", FASHION, "--input", img, "--out", out, "--npy", "--no-taps", "--no-report", "-q",
            "--class", FASHION_CLASS, *taps)
    d = os.path.join(out, stem(img))
    for m, layer in NEW_METHODS:
        got = fashion.attribute(img, m, layer=layer, target=FASHION_CLASS)
        ref = np.load(os.path.join(d, "%s%s_c%d.npy" % (m, "_" + layer if layer else "", FASHION_CLASS)))
        assert got.shape == ref.shape, "%s: shape %s, the command line's %s" % (m, got.shape, ref.shape)
        if m in ("xgradcam", "hirescam", "fullgrad", "eigencam"):
            assert_same(got, ref, m + " of " + img)
        else:
            e = np.linalg.norm(got.astype(np.float64) - ref) / max(np.linalg.norm(ref), 1e-30)
            assert e <= 1e-4, "%s of %s: relative L2 %.3e from the command line's" % (m, img, e)
    # options reach the methods: RISE with another grid, SmoothGrad's reductions differ
    r1 = fashion.attribute(img, "rise", target=FASHION_CLASS, samples=200, cells=4, keep=0.3)
    r2 = fashion.attribute(img, "rise", target=FASHION_CLASS, samples=200)
    assert r1.shape == r2.shape and not np.array_equal(r1, r2)
    s1 = fashion.attribute(img, "smoothgrad", target=FASHION_CLASS, reduce="per-copy")
    s2 = fashion.attribute(img, "smoothgrad", target=FASHION_CLASS)
    assert not np.array_equal(s1, s2)
    with pytest.raises(ValueError, match="reduce"):
        fashion.attribute(img, "smoothgrad", reduce="mean")
