#!/bin/bash
# Submits a cnnviz-cl run cut into N parts as Slurm jobs, and its merge:
#
#   samples/slurm/submit.sh [--global ROUNDS] N CONFIG INPUT ROOT [run options...]
#
# ROOT/parts/0..N-1: the parts (an array job of N tasks, parts.sbatch);
# ROOT/all: the merged run (merge.sbatch, after every part has ended);
# ROOT/logs: the jobs' output.  With --global 1 (taps with normalize:
# global) or --global 2 (some of them clip to percentiles), the statistics
# rounds run first, each an array of N `run --stats` tasks and a
# `merge --stats` into ROOT/rangesR.json, and the parts draw with the last
# file (README: global normalisation across parts).  Each stage waits for
# the one before (afterok; the final merge afterany).  Prints the job ids.
#
# ROOT and INPUT must be on a file system every node sees.  sbatch options
# (partition, time, GPUs) go in SBATCH_* variables (SBATCH_PARTITION, ...)
# or #SBATCH lines in copies of the scripts.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=0
if [ "${1:-}" = --global ]; then
  rounds=${2:?--global takes 1 or 2}
  shift 2
fi
if [ $# -lt 4 ] || ! [ "$1" -ge 1 ] 2>/dev/null; then
  echo "usage: $0 [--global 1|2] N CONFIG INPUT ROOT [run options...]" >&2
  exit 2
fi
n=$1 config=$2 input=$3 root=$4
shift 4
mkdir -p "$root/logs"
after=()
ranges=()
for r in $(seq 1 "$rounds"); do
  a=$(sbatch --parsable "${after[@]}" --array=0-$((n - 1)) -o "$root/logs/stats$r-%a.out" \
        "$here/parts.sbatch" "$config" "$input" "$root/stats$r" --stats "${ranges[@]}" "$@")
  m=$(sbatch --parsable --dependency=afterok:"${a%%;*}" -o "$root/logs/merge-stats$r.out" \
        "$here/merge.sbatch" "$root/ranges$r.json" "$root/stats$r" --stats)
  echo "statistics round $r: array job ${a%%;*}, merge job ${m%%;*} -> $root/ranges$r.json"
  after=(--dependency=afterok:"${m%%;*}")
  ranges=(--ranges "$root/ranges$r.json")
done
a=$(sbatch --parsable "${after[@]}" --array=0-$((n - 1)) -o "$root/logs/part-%a.out" \
      "$here/parts.sbatch" "$config" "$input" "$root/parts" "${ranges[@]}" "$@")
m=$(sbatch --parsable --dependency=afterany:"${a%%;*}" -o "$root/logs/merge.out" \
      "$here/merge.sbatch" "$root/all" "$root/parts")
echo "parts: array job ${a%%;*} ($n tasks), merge: job ${m%%;*} -> $root/all"
