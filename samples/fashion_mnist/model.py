"""Shared model definition and helpers for the Fashion-MNIST sample.

Used by train.py (training/export) and reference.py (PyTorch reference).
"""
import gzip
import json
import struct

import numpy as np
import torch
import torch.nn as nn

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN = 0.2860
STD = 0.3530
SCALE = 1.0 / 255.0


class FashionCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),   # features.0  conv1
            nn.BatchNorm2d(32),               # features.1  bn1
            nn.ReLU(inplace=True),            # features.2  relu1
            nn.Conv2d(32, 32, 3, padding=1),  # features.3  conv2
            nn.BatchNorm2d(32),               # features.4  bn2
            nn.ReLU(inplace=True),            # features.5  relu2
            nn.MaxPool2d(2),                  # features.6  pool1
            nn.Conv2d(32, 64, 3, padding=1),  # features.7  conv3
            nn.BatchNorm2d(64),               # features.8  bn3
            nn.ReLU(inplace=True),            # features.9  relu3
            nn.Conv2d(64, 64, 3, padding=1),  # features.10 conv4
            nn.BatchNorm2d(64),               # features.11 bn4
            nn.ReLU(inplace=True),            # features.12 relu4
            nn.MaxPool2d(2),                  # features.13 pool2
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),                     # classifier.0 flatten
            nn.Linear(64 * 7 * 7, 128),       # classifier.1 fc1
            nn.ReLU(inplace=True),            # classifier.2 relu5
            nn.Dropout(0.3),                  # classifier.3 dropout
            nn.Linear(128, 10),               # classifier.4 fc2
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def normalize_u8(images_u8):
    """uint8 array [N, 28, 28] -> float tensor [N, 1, 28, 28], normalised."""
    x = torch.from_numpy(np.ascontiguousarray(images_u8, dtype=np.float32))
    x = x * SCALE
    return ((x - MEAN) / STD).unsqueeze(1)


# ---- IDX (MNIST-style) reader -------------------------------------------

def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError("%s: not an unsigned-byte IDX file" % path)
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(dims)


# ---- minimal safetensors writer / reader ---------------------------------

_DT_TO_ST = {torch.float32: "F32", torch.int64: "I64", torch.float16: "F16",
             torch.int32: "I32", torch.float64: "F64"}
_ST_TO_NP = {"F32": "<f4", "I64": "<i8", "F16": "<f2", "I32": "<i4", "F64": "<f8"}


def save_safetensors(state_dict, path, metadata=None):
    header = {}
    blobs = []
    offset = 0
    for name, t in state_dict.items():
        t = t.detach().cpu().contiguous()
        dt = _DT_TO_ST[t.dtype]
        raw = t.numpy().astype(_ST_TO_NP[dt], copy=False).tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for raw in blobs:
            f.write(raw)


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[base + b:base + e], dtype=_ST_TO_NP[info["dtype"]])
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out, header.get("__metadata__", {})
