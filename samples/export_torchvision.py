#!/usr/bin/python3
"""Writes a torchvision model's weights as safetensors for cnnviz-cl.

    /usr/bin/python3 samples/export_torchvision.py NAME OUT.safetensors
        [--pretrained] [--seed S]

NAME is a torchvision.models builder (vgg16, vgg16_bn, alexnet, resnet18,
resnet50, squeezenet1_1, mobilenet_v2 have pipeline files in configs/).
--pretrained: torchvision's DEFAULT ImageNet weights (downloaded by torch on
first use, so it needs the internet or a filled torch hub cache).
Without it: seeded random weights (batch-norm statistics randomised too,
scaled so activations stay O(1)) -- enough to check that cnnviz-cl computes
what PyTorch computes, not to classify anything.

The file holds the model's state_dict under its own names (the `params:`
prefixes of configs/NAME.yaml).  Uses the `safetensors` package when it is
installed, else writes the format directly.  Needs torch and torchvision
(on Debian: /usr/bin/python3).
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "test", "net"))
import netref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("name", help="torchvision.models builder, e.g. resnet18")
    ap.add_argument("out", help="output .safetensors path")
    ap.add_argument("--pretrained", action="store_true",
                    help="torchvision's DEFAULT ImageNet weights (needs the internet)")
    ap.add_argument("--seed", type=int, default=0,
                    help="random-weights seed (default 0; ignored with --pretrained)")
    args = ap.parse_args()

    try:
        model = netref.make_model(args.name, seed=args.seed, pretrained=args.pretrained)
    except ValueError as e:
        sys.exit("export_torchvision: %s" % e)
    import torchvision
    meta = {"format": "pt", "model": args.name,
            "source": "torchvision %s" % torchvision.__version__,
            "weights": "DEFAULT (pretrained)" if args.pretrained
            else "random, seed %d (netref.random_init)" % args.seed}
    sd = model.state_dict()
    netref.save_safetensors(sd, args.out, meta)
    n = sum(t.numel() for k, t in sd.items() if t.is_floating_point())
    print("%s: %d tensors, %.1f M parameters -> %s" % (args.name, len(sd), n / 1e6, args.out))


if __name__ == "__main__":
    main()
