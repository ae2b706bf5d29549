#!/usr/bin/env bash
# Benchmark (not a test): builds Release into build-release and prints
# cnnviz-cl beside PyTorch CPU (2 threads) in one run.  Arguments go to
# bench.py (e.g. --write to update BENCHMARKS.md, or network names).
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DCNNVIZ_TESTS=OFF > /dev/null
cmake --build build-release -j"$(nproc)" > /dev/null
exec /usr/bin/python3 test/bench/bench.py --bin build-release/cnnviz-cl "$@"
