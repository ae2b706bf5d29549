#!/usr/bin/python3
"""The larger half of test_onnx_models.py (label `slow`: the Release build
runs it, the sanitizer build leaves it out): its SLOW_PLAN, VGG16 (opset 13)
and VGG16 with batch norm (opset 16), half a gigabyte each, and the networks
the fast half covers at one opset, at the other; the gradient maps of the
larger networks (test_onnx_models.GRADIENTS) are checked here.  The checks
are test_onnx_models.py's.

    /usr/bin/python3 test/net/test_onnx_models_slow.py [--models name:opset,...]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_onnx_models  # noqa: E402

if __name__ == "__main__":
    sys.exit(test_onnx_models.main(test_onnx_models.SLOW_PLAN))
