#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz, replays every saved
# regression input, then fuzzes each target for SECONDS (default 60) on a
# copy of its seed corpus.  Fails on any crash, leak, sanitizer report,
# timeout or out-of-memory; the input that did it is left under
# build-fuzz/fuzz-out/<target>/ (keep it in test/fuzz/regressions/<target>/
# once fixed).
#   test/fuzz/run.sh [SECONDS]        FUZZ_TARGETS="fuzz_png fuzz_jpeg" to pick
set -euo pipefail
cd "$(dirname "$0")/../.."

SECONDS_PER_TARGET="${1:-60}"
BUILD="${FUZZ_BUILD_DIR:-build-fuzz}"
TARGETS=(${FUZZ_TARGETS:-fuzz_config fuzz_safetensors fuzz_png fuzz_jpeg fuzz_manifest fuzz_list fuzz_onnx})
JOBS="${FUZZ_BUILD_JOBS:-$(nproc)}"

# Largest input each target is given (bytes): a pipeline a few hundred
# lines long, a header with a handful of tensors, small images, a list of a
# few hundred names.
max_len() {
  case $1 in
    fuzz_config) echo 65536 ;;
    fuzz_safetensors) echo 16384 ;;
    fuzz_list) echo 16384 ;; # room for an entry past the 4096-byte limit
    fuzz_onnx) echo 65536 ;; # a few dozen nodes with small weights
    *) echo 65536 ;;
  esac
}

CC="${FUZZ_CC:-clang}"
if ! command -v "$CC" > /dev/null; then
  echo "fuzz: $CC not found (apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi

mkdir -p "$BUILD"
CC="$CC" cmake -S . -B "$BUILD" -DCNNVIZ_FUZZ=ON -DCNNVIZ_TESTS=OFF -DCNNVIZ_WERROR=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log" >&2; exit 1; }
cmake --build "$BUILD" --target "${TARGETS[@]}" -j "$JOBS"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
COMMON=(-rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1)

failed=0
OUT="$BUILD/fuzz-out"
for t in "${TARGETS[@]}"; do
  bin="$BUILD/$t"
  regress="test/fuzz/regressions/$t"
  # Regressions first: every input that once failed must now pass.
  mapfile -t cases < <(find "$regress" -type f ! -name '.*' ! -name '*.md' 2> /dev/null | sort)
  if [ ${#cases[@]} -gt 0 ]; then
    echo "=== $t: ${#cases[@]} regression input(s)"
    mkdir -p "$OUT"
    if ! "$bin" "${COMMON[@]}" "${cases[@]}" > "$OUT/$t.regress.log" 2>&1; then
      echo "FAIL: $t: a regression input fails again:" >&2
      tail -40 "$OUT/$t.regress.log" >&2
      failed=$((failed + 1))
      continue
    fi
  fi
  # Then fuzzing, on a scratch copy of the corpus (new inputs stay out of the tree).
  work="$OUT/$t"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp test/fuzz/corpus/"$t"/* "$work/corpus/"
  dict=()
  if [ -f "test/fuzz/$t.dict" ]; then dict=(-dict="test/fuzz/$t.dict"); fi
  echo "=== $t: fuzzing for ${SECONDS_PER_TARGET}s"
  if "$bin" "${COMMON[@]}" "${dict[@]}" -max_len="$(max_len "$t")" -max_total_time="$SECONDS_PER_TARGET" \
       -artifact_prefix="$work/artifacts/" "$work/corpus" > "$work/log" 2>&1; then
    grep -E '^#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec' "$work/log" | sed "s/^/  $t: /" || true
    grep -qE '^Dictionary: [0-9]+ entries' "$work/log" || [ ${#dict[@]} -eq 0 ] || echo "  $t: (dictionary not loaded)" >&2
  else
    echo "FAIL: $t: the fuzzer stopped (input: $(ls "$work/artifacts" | head -1); log: $work/log):" >&2
    { grep -E -A30 'ERROR: |runtime error:|internal error|ALARM|out-of-memory|deadly signal' "$work/log" ||
      tail -20 "$work/log"; } | head -60 >&2
    failed=$((failed + 1))
  fi
done

if [ "$failed" -ne 0 ]; then
  echo "fuzz: $failed target(s) failed" >&2
  exit 1
fi
echo "fuzz: all ${#TARGETS[@]} targets clean (${SECONDS_PER_TARGET}s each)"
