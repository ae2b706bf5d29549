#!/usr/bin/python3
"""PyTorch reference for the Fashion-MNIST sample.

    /usr/bin/python3 samples/fashion_mnist/reference.py IMG.png [IMG.png ...]
        [--weights PATH]

Loads fashion_mnist.safetensors with a small built-in reader (no safetensors
package), rebuilds the model from model.py and prints a JSON list with one
object per image: {"image", "logits", "top"} where logits are the raw fc2
outputs. Images must be 28x28 (converted to grayscale).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import CLASSES, FashionCNN, load_safetensors, normalize_u8  # noqa: E402


def load_gray(path):
    from PIL import Image
    img = Image.open(path).convert("L")
    if img.size != (28, 28):
        raise SystemExit("%s: image is %dx%d, expected 28x28" % (path, *img.size))
    return np.asarray(img, dtype=np.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--weights", default=os.path.join(HERE, "fashion_mnist.safetensors"))
    args = ap.parse_args()

    torch.set_num_threads(1)
    sd, _ = load_safetensors(args.weights)
    model = FashionCNN()
    model.load_state_dict(sd, strict=True)
    model.eval()

    x = normalize_u8(np.stack([load_gray(p) for p in args.images]))
    with torch.no_grad():
        logits = model(x).double()
    results = []
    for path, row in zip(args.images, logits):
        k = int(row.argmax())
        results.append({"image": path, "logits": [float(v) for v in row],
                        "top": k, "label": CLASSES[k]})
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
