#!/usr/bin/python3
"""The ResNet-18 part of test_attribution.py (its docstring says what is
checked): seeded random weights, layer4, the scene's second class.  Apart
because its float64 references take minutes; labelled `slow` (CI's
sanitizer build leaves it out, the Release build runs it)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_attribution  # noqa: E402

if __name__ == "__main__":
    test_attribution.main(resnet=True)
