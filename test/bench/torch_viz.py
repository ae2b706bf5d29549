"""The script a PyTorch user writes to look at VGG16's conv activations: the
baseline of test/bench/bench_viz.py (not a test).

  /usr/bin/python3 test/bench/torch_viz.py WEIGHTS.safetensors IMAGE OUTDIR THREADS

Forward hooks on the 13 conv layers, per-channel min-max to uint8, one PIL
PNG per channel, and one montage per layer with torchvision's make_grid.
"""
import os
import sys

import numpy as np
import torch
import torchvision
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "net"))
import netref  # noqa: E402


def main():
    weights, image, out, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    torch.set_num_threads(threads)
    model = torchvision.models.vgg16()
    state, _ = netref.load_safetensors(weights)
    model.load_state_dict({k: torch.as_tensor(np.array(v)) for k, v in state.items()})
    model.eval()
    img = np.asarray(Image.open(image).convert("RGB"))
    x = netref.preprocess(img).float()
    acts = {}
    names = {}
    k = 0
    for i, m in enumerate(model.features):
        if isinstance(m, torch.nn.Conv2d):
            k += 1
            names[i] = "conv%d" % k
            m.register_forward_hook(lambda mod, inp, outp, i=i: acts.__setitem__(names[i], outp.detach()))
    with torch.no_grad():
        model(x)
    for name, a in acts.items():
        a = a[0]
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        lo = a.amin(dim=(1, 2), keepdim=True)
        hi = a.amax(dim=(1, 2), keepdim=True)
        u8 = ((a - lo) / (hi - lo).clamp_min(1e-12) * 255 + 0.5).clamp(0, 255).to(torch.uint8)
        for c in range(u8.shape[0]):
            Image.fromarray(u8[c].numpy()).save(os.path.join(d, "c%03d.png" % c))
        grid = torchvision.utils.make_grid(u8.unsqueeze(1), nrow=int(np.ceil(np.sqrt(u8.shape[0]))), padding=1)
        Image.fromarray(grid[0].numpy()).save(os.path.join(out, name + ".png"))


if __name__ == "__main__":
    main()
