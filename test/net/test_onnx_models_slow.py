#!/usr/bin/python3
"""The larger half of test_onnx_models.py (label `slow`: the Release build
runs it, the sanitizer build leaves it out): VGG16 (opset 13) and VGG16
with batch norm (opset 16), half a gigabyte each, and the networks the fast
half covers at one opset, at the other.  The checks are
test_onnx_models.py's.

    /usr/bin/python3 test/net/test_onnx_models_slow.py [--models name:opset,...]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_onnx_models  # noqa: E402

PLAN = [("vgg16", 13, False), ("vgg16_bn", 16, False),
        ("densenet121", 16, False), ("googlenet", 13, False), ("inception_v3", 16, False),
        ("resnet50", 13, False), ("alexnet", 16, False), ("efficientnet_b0", 16, False),
        ("mobilenet_v3_large", 13, False), ("convnext_tiny", 16, False), ("shufflenet_v2_x1_0", 13, False),
        ("regnet_y_400mf", 16, False)]

if __name__ == "__main__":
    sys.exit(test_onnx_models.main(PLAN))
