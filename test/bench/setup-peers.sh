#!/usr/bin/env bash
# Benchmark only (never the tests, never CI): a throwaway virtual
# environment over Debian's python3 (which keeps Debian's torch and numpy)
# with the CPU inference runtimes cnnviz-cl is compared with, pinned:
#   ONNX Runtime 1.17.3 and OpenVINO 2024.6.0 from PyPI.
# Prints the environment's python; bench.py --peers uses it.
#   test/bench/setup-peers.sh [VENV]      (default: build-bench-venv)
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${1:-build-bench-venv}"
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
"$venv/bin/pip" install -q "onnxruntime==1.17.3" "openvino==2024.6.0" >&2
"$venv/bin/python" -c 'import onnxruntime, openvino' >&2
echo "$PWD/$venv/bin/python"
