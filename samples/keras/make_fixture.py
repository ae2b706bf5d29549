#!/usr/bin/env python3
"""Writes the Keras test fixture: a small channels-last Keras CNN converted
to ONNX with tf2onnx (its NHWC input behind a Transpose, as every tf2onnx
export of an image model has), one input and Keras' own prediction.

It needs TensorFlow and tf2onnx, which Debian does not package; they come
from PyPI into a throwaway virtual environment over Debian's python:

    /usr/bin/python3 -m venv --system-site-packages /tmp/tfvenv
    /tmp/tfvenv/bin/pip install tensorflow-cpu==2.15.1 tf2onnx==1.16.1
    /tmp/tfvenv/bin/python samples/keras/make_fixture.py

The files it writes are checked in (a few hundred kB); the tests read them
without TensorFlow:
    keras_small.onnx           the converted model (opset 13)
    keras_small_input.npy      one input, float32 [3, 32, 32] (channels first,
                               what `cnnviz-cl run --input X.npy` takes)
    keras_small_expected.npy   Keras' model.predict on that input, float32 [10]

With --vgg16 OUT.onnx it also converts Keras' VGG16 (include_top=True,
random weights) and writes OUT.npz with an input and Keras' prediction, for
comparing a full-size Keras network by hand (not checked in: 528 MB).
"""
import argparse
import os
import sys

import numpy as np
import tensorflow as tf
import tf2onnx

HERE = os.path.dirname(os.path.abspath(__file__))


def randomise(model, seed):
    """Seeded weights with activations of order 1, and batch-norm
    statistics that are not the identity (so a dropped or misread
    normalisation shows)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        new = layer.get_weights()
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            new = [rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                   rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)]
        elif layer.get_weights():
            new = []
            for w in layer.get_weights():
                if w.ndim >= 2:
                    fan_in = int(np.prod(w.shape[:-1])) if not isinstance(
                        layer, tf.keras.layers.DepthwiseConv2D) else int(np.prod(w.shape[:2]))
                    new.append(rng.normal(0, np.sqrt(2.0 / fan_in), w.shape))
                else:
                    new.append(rng.normal(0, 0.05, w.shape))
        layer.set_weights([np.asarray(w, np.float32) for w in new])


def small_model():
    L = tf.keras.layers
    x = inp = L.Input((32, 32, 3), name="image")
    x = L.Conv2D(16, 3, padding="same", name="conv1")(x)
    x = L.BatchNormalization(epsilon=1e-3, name="bn1")(x)
    x = L.ReLU(name="relu1")(x)
    # 'same' with stride 2 pads asymmetrically (more at the bottom/right).
    x = L.Conv2D(24, 3, strides=2, padding="same", name="conv2")(x)
    x = L.BatchNormalization(name="bn2")(x)
    x = L.ReLU(6.0, name="relu6")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.BatchNormalization(name="bn3")(x)
    x = L.LeakyReLU(0.1, name="leaky")(x)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(32, 1, name="pw")(x)
    x = L.Activation("relu", name="relu2")(x)
    x = L.AveragePooling2D(2, name="pool2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(10, name="fc")(x)
    return tf.keras.Model(inp, x, name="keras_small")


def convert(model, shape, path):
    spec = (tf.TensorSpec((1,) + shape, tf.float32, name="image"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=13, output_path=path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vgg16", metavar="OUT.onnx", help="also convert Keras VGG16 (random weights)")
    args = ap.parse_args()
    tf.keras.utils.set_random_seed(7)

    model = small_model()
    randomise(model, 7)
    x = np.random.default_rng(8).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    y = model.predict(x, verbose=0)[0].astype(np.float32)
    onnx_path = os.path.join(HERE, "keras_small.onnx")
    convert(model, (32, 32, 3), onnx_path)
    np.save(os.path.join(HERE, "keras_small_input.npy"), np.ascontiguousarray(x[0].transpose(2, 0, 1)))
    np.save(os.path.join(HERE, "keras_small_expected.npy"), y)
    print("wrote %s (%d bytes); prediction %s" % (onnx_path, os.path.getsize(onnx_path), np.round(y, 4)),
          file=sys.stderr)

    if args.vgg16:
        vgg = tf.keras.applications.VGG16(include_top=True, weights=None)
        randomise(vgg, 9)
        x = np.random.default_rng(10).uniform(-2, 2, (1, 224, 224, 3)).astype(np.float32)
        y = vgg.predict(x, verbose=0)[0].astype(np.float32)
        convert(vgg, (224, 224, 3), args.vgg16)
        np.savez(os.path.splitext(args.vgg16)[0] + ".npz", input=np.ascontiguousarray(x[0].transpose(2, 0, 1)),
                 expected=y)
        print("wrote %s; top-5 %s" % (args.vgg16, np.argsort(-y)[:5]), file=sys.stderr)


if __name__ == "__main__":
    main()
