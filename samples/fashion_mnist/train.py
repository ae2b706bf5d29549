#!/usr/bin/python3
"""Train the small Fashion-MNIST CNN shipped with cnnviz-cl.

Run from the repository root with Debian's PyTorch:
    /usr/bin/python3 samples/fashion_mnist/train.py

Writes fashion_mnist.safetensors, classes.txt and images/*.png next to
this script. Deterministic (fixed seeds, 2 threads, CPU only).
"""
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import (CLASSES, MEAN, STD, FashionCNN, normalize_u8,  # noqa: E402
                   read_idx, save_safetensors)

DATA = "/usr/share/datasets/fashion-mnist"
EPOCHS = 4
BATCH = 128
MAX_LR = 3e-3
SEED = 0
IMAGE_NAMES = ["tshirt", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle_boot"]


def evaluate(model, x, batch=1000):
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            outs.append(model(x[i:i + batch]))
    return torch.cat(outs)


def write_png(path, img_u8):
    try:
        from PIL import Image
        Image.fromarray(img_u8, mode="L").save(path)
        return
    except ImportError:
        pass
    import struct
    import zlib

    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff)
    h, w = img_u8.shape
    raw = b"".join(b"\x00" + img_u8[r].tobytes() for r in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def main():
    t0 = time.time()
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    random.seed(SEED)
    torch.use_deterministic_algorithms(True)

    xtr_u8 = read_idx(os.path.join(DATA, "train-images-idx3-ubyte.gz"))
    ytr = torch.from_numpy(read_idx(os.path.join(DATA, "train-labels-idx1-ubyte.gz")).astype(np.int64))
    xte_u8 = read_idx(os.path.join(DATA, "t10k-images-idx3-ubyte.gz"))
    yte = torch.from_numpy(read_idx(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    xtr = normalize_u8(xtr_u8)
    xte = normalize_u8(xte_u8)
    print("data: train %s test %s (mean %.4f std %.4f of train pixels/255)"
          % (tuple(xtr.shape), tuple(xte.shape), xtr_u8.mean() / 255, xtr_u8.std() / 255),
          flush=True)

    model = FashionCNN()
    opt = torch.optim.Adam(model.parameters(), lr=MAX_LR, weight_decay=1e-4)
    steps_per_epoch = (len(xtr) + BATCH - 1) // BATCH
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=MAX_LR, epochs=EPOCHS, steps_per_epoch=steps_per_epoch)
    gen = torch.Generator().manual_seed(SEED)

    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        total_loss, correct = 0.0, 0
        for i in range(0, len(xtr), BATCH):
            idx = perm[i:i + BATCH]
            xb, yb = xtr[idx], ytr[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5   # random h-flip
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            opt.zero_grad()
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
        te_acc = (evaluate(model, xte).argmax(1) == yte).float().mean().item()
        print("epoch %d/%d  loss %.4f  train acc %.4f  test acc %.4f  (%.0f s)"
              % (epoch + 1, EPOCHS, total_loss / len(xtr), correct / len(xtr),
                 te_acc, time.time() - t0), flush=True)

    train_time = time.time() - t0
    model.eval()
    pred = evaluate(model, xte).argmax(1)
    acc = (pred == yte).float().mean().item()
    print("final test accuracy %.4f, training time %.0f s" % (acc, train_time), flush=True)

    sd = model.state_dict()
    meta = {"model": "fashion_mnist", "test_accuracy": "%.4f" % acc,
            "epochs": EPOCHS, "input": "1x28x28 gray, pixel/255, (x-%.4f)/%.4f" % (MEAN, STD),
            "torch": torch.__version__}
    out = os.path.join(HERE, "fashion_mnist.safetensors")
    save_safetensors(sd, out, meta)
    print("wrote %s (%d bytes)" % (out, os.path.getsize(out)))

    with open(os.path.join(HERE, "classes.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")

    img_dir = os.path.join(HERE, "images")
    os.makedirs(img_dir, exist_ok=True)
    for c in range(10):
        ok = ((yte == c) & (pred == c)).nonzero()
        j = int(ok[0, 0])
        path = os.path.join(img_dir, "%d_%s.png" % (c, IMAGE_NAMES[c]))
        write_png(path, np.ascontiguousarray(xte_u8[j]))
        print("wrote %s (test index %d)" % (path, j))


if __name__ == "__main__":
    main()
