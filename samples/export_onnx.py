#!/usr/bin/python3
"""Exports a torchvision model to ONNX for cnnviz-cl.

    /usr/bin/python3 samples/export_onnx.py NAME [OUT.onnx] [--opset N]
        [--pretrained] [--seed S] [--dynamic-batch]

NAME is a torchvision.models builder (resnet18, mobilenet_v3_large,
convnext_tiny, ...).  The model is exported as you would export your own:
evaluation mode, torch.onnx.export with constant folding (batch norms after
convolutions are folded into them), one [1, 3, S, S] input (S = 299 for
inception_v3, else 224), input "input", output "logits".
--pretrained: torchvision's DEFAULT ImageNet weights (downloaded by torch on
first use: it needs the internet or a filled torch hub cache).  Without it:
seeded random weights (batch-norm statistics randomised too) -- enough to
see that cnnviz-cl computes what PyTorch computes, not to classify.
--dynamic-batch: a symbolic batch axis.

Then:
    cnnviz-cl import OUT.onnx              # OUT.yaml + OUT.safetensors, to read and edit
    cnnviz-cl run OUT.onnx --input IMG     # or run the model directly
Needs torch and torchvision (on Debian: /usr/bin/python3).
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "test", "net"))
import netref  # noqa: E402
import onnxref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("name", help="torchvision.models builder, e.g. resnet18")
    ap.add_argument("out", nargs="?", help="output .onnx path (default: NAME.onnx)")
    ap.add_argument("--opset", type=int, default=13, help="ONNX opset (default 13)")
    ap.add_argument("--pretrained", action="store_true",
                    help="torchvision's DEFAULT ImageNet weights (needs the internet)")
    ap.add_argument("--seed", type=int, default=0,
                    help="random-weights seed (default 0; ignored with --pretrained)")
    ap.add_argument("--dynamic-batch", action="store_true", help="a symbolic batch axis")
    args = ap.parse_args()
    out = args.out or args.name + ".onnx"
    try:
        model = netref.make_model(args.name, seed=args.seed, pretrained=args.pretrained)
    except ValueError as e:
        sys.exit("export_onnx: %s" % e)
    onnxref.export(model, out, args.opset, onnxref.input_size(args.name), args.dynamic_batch)
    print("%s (opset %d, %s weights) -> %s (%.1f MB)"
          % (args.name, args.opset, "pretrained" if args.pretrained else "random (seed %d)" % args.seed, out,
             os.path.getsize(out) / 1e6))
    print("next: cnnviz-cl import %s   or   cnnviz-cl run %s --input IMAGE" % (out, out))


if __name__ == "__main__":
    main()
