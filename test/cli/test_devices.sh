#!/usr/bin/env bash
# The CLI skeleton and device selection on whatever OpenCL platform is here.
. "$(dirname "$0")/lib.sh"

expect_rc 0 "--version" -- "$BIN" --version
expect_grep "$TMP/out" '^cnnviz-cl [0-9]+\.[0-9]+' "--version prints the version"
expect_rc 0 "--help" -- "$BIN" --help
expect_grep "$TMP/out" 'devices' "--help lists the commands"
expect_rc 2 "no command" -- "$BIN"
expect_rc 2 "unknown command" -- "$BIN" frobnicate
expect_grep "$TMP/err" "unknown command 'frobnicate'" "unknown command is named"
expect_rc 0 "run --help" -- "$BIN" run --help
expect_grep "$TMP/out" '--input' "run --help teaches --input"

expect_rc 0 "devices" -- "$BIN" devices
expect_grep "$TMP/out" '^platform 0: ' "platform 0 listed"
expect_grep "$TMP/out" 'device 0: ' "device 0 listed"
expect_grep "$TMP/out" 'global memory .* max allocation' "memory figures listed"
expect_grep "$TMP/out" 'compute units' "compute units listed"
expect_grep "$TMP/out" 'fp16 (yes|no), fp64 (yes|no)' "fp16/fp64 listed"
expect_grep "$TMP/out" '^selected: platform 0 device 0' "default selection"

expect_rc 0 "select by index" -- "$BIN" devices --platform 0 --device 0
expect_rc 0 "select by type" -- "$BIN" devices --device cpu
expect_grep "$TMP/out" '^selected: ' "type selection"
name=$(grep -m1 '^platform 0:' "$TMP/out" | sed 's/^platform 0: \(....\).*/\1/')
expect_rc 0 "select platform by name substring" -- "$BIN" devices --platform "$name"

expect_rc 2 "platform 97" -- "$BIN" devices --platform 97
expect_grep "$TMP/err" "--platform '97' matches no OpenCL platform" "bad platform named"
expect_grep "$TMP/out" '^platform 0: ' "bad platform prints the list"
expect_rc 2 "device 97" -- "$BIN" devices --device 97
expect_grep "$TMP/err" "--device '97'" "bad device named"
expect_rc 2 "device substring" -- "$BIN" devices --device no-such-thing
CNNVIZ_PLATFORM=97 expect_rc 2 "env CNNVIZ_PLATFORM" -- "$BIN" devices
CNNVIZ_PLATFORM=97 expect_rc 0 "flag beats env" -- "$BIN" devices --platform 0
expect_rc 2 "devices bad option" -- "$BIN" devices --bogus

# No platform at all: an ICD loader with an empty vendor folder.
mkdir -p "$TMP/vendors"
OCL_ICD_VENDORS="$TMP/vendors" expect_rc 1 "no platform" -- "$BIN" devices
expect_grep "$TMP/err" 'pocl-opencl-icd' "no-platform hint"

finish
