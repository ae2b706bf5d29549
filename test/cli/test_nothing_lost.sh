#!/usr/bin/env bash
# Nothing lost, nothing partial:
#  * SIGINT / SIGTERM in the middle of a run: exit 130 / 143, one error line,
#    and nothing of the interrupted run left (its files were written beside
#    the folder's contents and are discarded; the folder it made is gone);
#  * the weights file shrinking during a run (SIGBUS): exit 2, one line, no
#    temporary file, no manifest; the next run clears what it left;
#  * a rerun into the same --out: manifest.json lists exactly the files in
#    the folder (files of the earlier run that the new run did not write are
#    removed, a file the user put there is not touched);
#  * two runs of the same command write byte-identical files (PNG, .npy,
#    JSON, HTML; the manifest's file times aside), whatever order the PNG
#    threads finish in.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
CFG="$SRC/configs/fashion_mnist.yaml"
IMAGES="$SRC/samples/fashion_mnist/images"

# 200 inputs and a slow tap (occlusion: 729 forward passes per image), so
# the signal lands while files are being written.
mkdir -p "$TMP/many"
for i in $(seq 1 20); do
  for f in "$IMAGES"/*.png; do cp "$f" "$TMP/many/${i}_$(basename "$f")"; done
done

# check_clean DIR DESCRIPTION: no temporary files, every PNG complete.
check_clean() {
  local dir=$1 what=$2 n
  n=$(find "$dir" -name '*.tmp.*' | wc -l)
  if [ "$n" -eq 0 ]; then ok; else bad "$what: $n temporary files left"; fi
  if "$PY" - "$dir" > "$TMP/pngcheck" 2>&1 <<'EOF'
import os, sys
from PIL import Image
bad = 0
n = 0
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        if f.endswith(".png"):
            n += 1
            try:
                with Image.open(os.path.join(root, f)) as im:
                    im.load()
            except Exception as e:  # a truncated or corrupt file
                bad += 1
                print("bad PNG %s: %s" % (f, e))
print("%d PNGs" % n)
sys.exit(1 if bad or n == 0 else 0)
EOF
  then ok; else bad "$what: PNGs that do not decode (or none)"; head -5 "$TMP/pngcheck" >&2; fi
}

# files_being_written DIR: waits until the run writes PNGs into DIR (at
# most 120 s), then half a second more.
files_being_written() {
  for _ in $(seq 1 1200); do
    if [ -n "$(find "$1" -name '*.png' -print -quit 2>/dev/null)" ]; then break; fi
    sleep 0.1
  done
  sleep 0.5
}

for sig in INT TERM; do
  want=$([ $sig = INT ] && echo 130 || echo 143)
  out="$TMP/sig_$sig"
  "$BIN" run "$CFG" --input "$TMP/many" --out "$out" --tap input:occlusion -q > /dev/null 2> "$TMP/err" &
  pid=$!
  files_being_written "$out"
  kill -s $sig $pid
  wait $pid
  rc=$?
  if [ $rc -eq "$want" ]; then ok; else bad "SIG$sig: exit $rc, expected $want"; head -3 "$TMP/err" >&2; fi
  n=$(grep -c '^cnnviz-cl: error: ' "$TMP/err")
  if [ "$n" -eq 1 ]; then ok; else bad "SIG$sig: $n error lines, expected 1"; fi
  expect_grep "$TMP/err" "interrupted by SIG$sig" "SIG$sig: the error line names the signal"
  if [ ! -e "$out" ]; then ok; else
    bad "SIG$sig: the interrupted run left $(find "$out" | wc -l) entries in the folder it made"; fi
done

# The weights file shrinks while a run has it mapped (another program
# rewrites it in place): the run reads its weights from the file's pages,
# so the next read faults.  One error line naming the file, exit 2, no
# temporary file, no manifest, no crash.
cp "$SRC/samples/fashion_mnist/fashion_mnist.safetensors" "$TMP/shrinking.safetensors"
out="$TMP/shrunk"
"$BIN" run "$CFG" --weights "$TMP/shrinking.safetensors" --input "$TMP/many" --out "$out" \
  --tap input:occlusion -q > /dev/null 2> "$TMP/err" &
pid=$!
files_being_written "$out"
truncate -s 4096 "$TMP/shrinking.safetensors"
wait $pid
rc=$?
if [ $rc -eq 2 ]; then ok; else bad "weights truncated during the run: exit $rc, expected 2"; head -3 "$TMP/err" >&2; fi
n=$(grep -c '^cnnviz-cl: error: ' "$TMP/err")
if [ "$n" -eq 1 ] && [ "$(wc -l < "$TMP/err")" -eq 1 ]; then ok; else
  bad "weights truncated: $n error lines in $(wc -l < "$TMP/err") lines, expected exactly 1"; head -5 "$TMP/err" >&2; fi
expect_grep "$TMP/err" "shrinking.safetensors: the file shrank while in use" "the error line names the weights file"
if [ ! -e "$out/manifest.json" ]; then ok; else bad "weights truncated: the run wrote manifest.json"; fi
check_clean "$out" "weights truncated"
# The process ended in the fault handler: the next run into the folder
# removes its unfinished files.
expect_rc 0 "a run after the fault" -- "$BIN" run "$CFG" --input "$IMAGES/0_tshirt.png" --out "$out" --no-taps
expect_grep "$TMP/err" "removed the unfinished files of an interrupted run" "the next run clears the dead run's files"
if [ -z "$(find "$out" -name '.cnnviz*')" ]; then ok; else bad "a stage or lock is left after the rerun"; fi

# Rerun into the same folder with fewer files.
out="$TMP/rerun"
expect_rc 0 "first run" -- "$BIN" run "$CFG" --input "$IMAGES" --out "$out" --npy -q
echo "mine" > "$out/notes.txt"
expect_rc 0 "second run, no taps" -- "$BIN" run "$CFG" --input "$IMAGES/0_tshirt.png" --out "$out" --no-taps
expect_grep "$TMP/err" "removed [0-9]+ files of an earlier run" "the rerun says what it removed"
if "$PY" - "$out" > "$TMP/mcheck" 2>&1 <<'EOF'
import json, os, sys
d = sys.argv[1]
listed = {e["path"] for e in json.load(open(os.path.join(d, "manifest.json")))["files"]}
listed |= {"manifest.json", "notes.txt"}
present = {os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs}
empty = [r for r, ds, fs in os.walk(d) if not ds and not fs]
print("listed-not-present", sorted(listed - present)[:5])
print("present-not-listed", sorted(present - listed)[:5])
print("empty folders", empty[:5])
sys.exit(0 if listed == present and not empty else 1)
EOF
then ok; else bad "after a rerun the folder holds exactly the manifest's files (and the user's)"; cat "$TMP/mcheck" >&2; fi
if [ "$(cat "$out/notes.txt")" = mine ]; then ok; else bad "a file the tool did not write was touched"; fi

# Determinism: two runs of the same command, byte-identical output.
for d in a b; do
  expect_rc 0 "determinism run $d" -- "$BIN" run "$CFG" --input "$IMAGES" --out "$TMP/det_$d" --npy -q \
    --batch 4 --tap input:smoothgrad --tap input:integrated --tap conv4:gradcampp
done
# The manifests differ only in the files' modification times.
for d in a b; do
  "$PY" -c 'import json, sys
m = json.load(open(sys.argv[1]))
for e in m["files"]: e.pop("mtime")
json.dump(m, open(sys.argv[1], "w"), indent=1)' "$TMP/det_$d/manifest.json"
done
if diff -r "$TMP/det_a" "$TMP/det_b" > "$TMP/diff"; then ok; else
  bad "two runs differ"; head -5 "$TMP/diff" >&2; fi
n=$(find "$TMP/det_a" -name '*.png' | wc -l)
if [ "$n" -gt 100 ]; then ok; else bad "determinism: only $n PNGs compared"; fi

finish
