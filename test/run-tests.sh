#!/usr/bin/env bash
# README's test command: installs dependencies, builds, runs every test.
#   BUILD_DIR     build folder (default: build)
#   CMAKE_EXTRA   extra cmake arguments (CI adds -Werror, sanitizers)
set -euo pipefail
cd "$(dirname "$0")/.."
"$PWD/cmake/install-deps.sh"
build="${BUILD_DIR:-build}"
# shellcheck disable=SC2086
cmake -S . -B "$build" -DCNNVIZ_TESTS=ON ${CMAKE_EXTRA:-} > /dev/null
cmake --build "$build" -j"$(nproc)"
args=(--output-on-failure -j2)
if [ -n "${CNNVIZ_TEST_LABEL_EXCLUDE:-}" ]; then args+=(-LE "$CNNVIZ_TEST_LABEL_EXCLUDE"); fi
cd "$build" && ctest "${args[@]}"
