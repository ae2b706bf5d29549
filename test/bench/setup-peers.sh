#!/usr/bin/env bash
# Benchmark only (never the tests, never CI): a throwaway virtual
# environment over Debian's python3 (which keeps Debian's torch and numpy)
# with the CPU inference runtimes cnnviz-cl is compared with, pinned:
#   ONNX Runtime 1.17.3 and OpenVINO 2024.6.0 from PyPI;
# and the attribution libraries of bench_attrib.py: pytorch-grad-cam 1.4.8
# (with OpenCV headless, ttach, matplotlib, tqdm, scikit-learn) and Captum
# 0.6.0 (scikit-learn brings numpy 1.26 into the environment, which
# Debian's torch 1.13 runs with); bench_maximize.py's Lucent (torch-lucent
# 0.1.8 without its pins, which would replace Debian's torch; its pinned kornia
# 0.4.1, whose get_rotation_matrix2d it calls).
# Prints the environment's python; bench.py --peers uses it.
#   test/bench/setup-peers.sh [VENV]      (default: build-bench-venv)
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${1:-build-bench-venv}"
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
"$venv/bin/pip" install -q "onnxruntime==1.17.3" "openvino==2024.6.0" >&2
"$venv/bin/pip" install -q --no-deps "grad-cam==1.4.8" "ttach==0.0.3" "opencv-python-headless==4.8.1.78" \
  "captum==0.6.0" >&2
"$venv/bin/pip" install -q "matplotlib==3.7.3" "tqdm==4.66.1" "scikit-learn==1.3.2" >&2
"$venv/bin/pip" install -q --no-deps "torch-lucent==0.1.8" "decorator==5.1.1" "kornia==0.4.1" >&2
"$venv/bin/pip" install -q "ipython==8.18.1" >&2
"$venv/bin/python" -c 'import onnxruntime, openvino, pytorch_grad_cam, captum, lucent.optvis.render' >&2
echo "$PWD/$venv/bin/python"
