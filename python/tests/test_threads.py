"""Concurrency: two Models on one device at once give the results of one;
one Model used from two threads at once gives every thread its own input's
results (each method's run and read are one step)."""
import os
import threading

import numpy as np

import cnnviz
from conftest import FASHION, assert_same, fashion_image, run_cli


def reference(m, img):
    return (m.output(img), m.activations(img, "conv3"), m.attribute(img, "gradcam", layer="conv4", target=2))


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_two_models(fashion, tmp_base):
    imgs = [fashion_image(i) for i in (1, 4)]
    ref = [reference(fashion, p) for p in imgs]
    with cnnviz.Model(FASHION, max_batch=2) as m2:
        assert m2.max_batch == 2 and m2.device_name == fashion.device_name
        # interleaved: each model's run is its own
        for i, p in enumerate(imgs):
            a = reference(fashion, p)
            b = reference(m2, p)
            assert same(a, ref[i]) and same(b, ref[i]), "two open models disagree on %s" % p
        # a batch of 2 in one run equals the command line's --batch 2 (a
        # batch of another size may differ in the last bits)
        outs = m2.output(imgs)
        cams = m2.attribute(imgs, "gradcam", layer="conv4", target=2)
        acts = m2.activations(imgs, "conv3")
    cli = os.path.join(tmp_base, "batch2_cli")
    run_cli("run", FASHION, "--input", imgs[0], "--input", imgs[1], "--batch", 2, "--out", cli, "--npy",
            "--no-taps", "--no-report", "-q", "--tap", "conv3", "--tap", "conv4:gradcam", "--class", 2)
    for i, p in enumerate(imgs):
        d = os.path.join(cli, os.path.splitext(os.path.basename(p))[0])
        assert_same(outs[i], np.load(os.path.join(d, "output.npy")), "batch-2 output of " + p)
        assert_same(acts[i], np.load(os.path.join(d, "conv3", "activations.npy")), "batch-2 conv3 of " + p)
        assert_same(cams[i], np.load(os.path.join(d, "gradcam_conv4_c2.npy")), "batch-2 gradcam of " + p)


def test_two_models_in_threads(fashion):
    imgs = [fashion_image(i) for i in (5, 8)]
    ref = [reference(fashion, p) for p in imgs]
    with cnnviz.Model(FASHION) as m2:
        errors = []

        def work(m, k):
            try:
                for _ in range(3):
                    if not same(reference(m, imgs[k]), ref[k]):
                        errors.append("model %d: wrong results" % k)
            except Exception as e:  # reported below, with the thread's failure
                errors.append(repr(e))

        ts = [threading.Thread(target=work, args=(m, k)) for k, m in enumerate((fashion, m2))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors, errors


def test_one_model_two_threads(fashion):
    """Two threads hammer one Model with different images; every result must
    be its own image's (a run by one thread between another's run and read
    would hand it the wrong image's values)."""
    imgs = [fashion_image(i) for i in (0, 9)]
    ref = [reference(fashion, p) for p in imgs]
    assert not same(ref[0], ref[1])
    errors = []
    start = threading.Barrier(2)

    def work(k):
        try:
            start.wait()
            for i in range(12):
                which = i % 3
                if which == 0:
                    ok = np.array_equal(fashion.output(imgs[k]), ref[k][0])
                elif which == 1:
                    ok = np.array_equal(fashion.activations(imgs[k], "conv3"), ref[k][1])
                else:
                    ok = np.array_equal(fashion.attribute(imgs[k], "gradcam", layer="conv4", target=2), ref[k][2])
                if not ok:
                    errors.append("thread %d, call %d: another image's result" % (k, i))
        except Exception as e:
            errors.append(repr(e))

    ts = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
