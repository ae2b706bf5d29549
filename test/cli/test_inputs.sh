#!/usr/bin/env bash
# What the user points the tool at, and how it ends:
#  * special files (FIFO, character device, socket) as image, weights,
#    pipeline, labels, list, or sitting at OUT/manifest.json are refused at
#    once (every run is under `timeout`, so a hang fails instead of blocking);
#  * @lists that name themselves or each other: one error line at the list's
#    file and line, exit 2, no crash;
#  * file names with a newline or bytes that are not UTF-8: the JSON files
#    are strict UTF-8 with the raw name in input_b64, every stderr message
#    stays on one line;
#  * SIGINT while the first kernels compile (empty caches), sent to the
#    process group as a terminal's Ctrl-C is: exit 130, one error line;
#  * a `ulimit -f` write limit: an error line, not death by SIGXFSZ.
. "$(dirname "$0")/lib.sh"
use_sample

# run_t NAME COMMAND...: runs it under `timeout 20`; $rc, $TMP/out, $TMP/err
run_t() {
  local what=$1
  shift
  timeout 20 "$@" > "$TMP/out" 2> "$TMP/err"
  rc=$?
  if [ "$rc" -eq 124 ]; then bad "$what: still running after 20 s (blocked?)"; fi
}

# refused NAME ERE COMMAND...: exit 2, stderr is exactly one error line, matching ERE
refused() {
  local what=$1 re=$2
  shift 2
  run_t "$what" "$@"
  if [ "$rc" -eq 2 ]; then ok; else bad "$what: exit $rc, expected 2"; fi
  local lines errs
  lines=$(wc -l < "$TMP/err")
  errs=$(grep -c '^cnnviz-cl: error: ' "$TMP/err")
  if [ "$lines" -eq 1 ] && [ "$errs" -eq 1 ]; then ok; else
    bad "$what: $errs error lines in $lines lines of stderr, expected exactly 1"; head -5 "$TMP/err" | sed 's/^/  /' >&2; fi
  if grep -qE -- "$re" "$TMP/err"; then ok; else bad "$what: /$re/ not in: $(head -1 "$TMP/err")"; fi
}

# ============================================================ special files
mkfifo "$TMP/fifo.png" "$TMP/fifo.safetensors" "$TMP/fifo.yaml" "$TMP/fifo.txt" "$TMP/fifolist.txt"
"$PY" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$TMP/sock.png"
FIFO_MSG='is a FIFO \(named pipe\), not a regular file'

refused "FIFO as --input" "--input $TMP/fifo\.png: $FIFO_MSG" \
  "$BIN" run "$TMP/base.yaml" --input "$TMP/fifo.png" --out "$OUTS/f1"
refused "character device as --input" "--input /dev/zero: is a character device, not a regular file" \
  "$BIN" run "$TMP/base.yaml" --input /dev/zero --out "$OUTS/f2"
refused "socket as --input" "--input $TMP/sock\.png: is a socket, not a regular file" \
  "$BIN" run "$TMP/base.yaml" --input "$TMP/sock.png" --out "$OUTS/f3"
mkdir -p "$TMP/withfifo"
cp "$IMG" "$TMP/withfifo/a.png"
mkfifo "$TMP/withfifo/b.png"
refused "FIFO in an input folder" "$TMP/withfifo/b\.png: $FIFO_MSG" \
  "$BIN" run "$TMP/base.yaml" --input "$TMP/withfifo" --out "$OUTS/f4"
printf '%s\n%s\n' "$IMG" "$TMP/fifo.png" > "$TMP/names_fifo.txt"
refused "FIFO named in an @list" "$TMP/names_fifo\.txt:2: $TMP/fifo\.png: $FIFO_MSG" \
  "$BIN" run "$TMP/base.yaml" --input "@$TMP/names_fifo.txt" --out "$OUTS/f5"
refused "FIFO as the @list" "--input @$TMP/fifolist\.txt: $FIFO_MSG" \
  "$BIN" run "$TMP/base.yaml" --input "@$TMP/fifolist.txt" --out "$OUTS/f6"
refused "FIFO as --weights" "$TMP/fifo\.safetensors: $FIFO_MSG" \
  "$BIN" run "$TMP/base.yaml" --weights "$TMP/fifo.safetensors" --input "$IMG" --out "$OUTS/f7"
sed -e "s#^  weights: .*#  weights: $TMP/fifo.safetensors#" "$TMP/base.yaml" > "$TMP/wfifo.yaml"
L=$(grep -n '^  weights:' "$TMP/wfifo.yaml" | cut -d: -f1)
refused "FIFO as model.weights" "$TMP/wfifo\.yaml:$L:[0-9]+: model\.weights: $TMP/fifo\.safetensors: $FIFO_MSG" \
  "$BIN" info "$TMP/wfifo.yaml"
refused "FIFO as the pipeline" "$TMP/fifo\.yaml: $FIFO_MSG" "$BIN" info "$TMP/fifo.yaml"
sed -e "s#^  labels: .*#  labels: $TMP/fifo.txt#" "$TMP/base.yaml" > "$TMP/lfifo.yaml"
L=$(grep -n '^  labels:' "$TMP/lfifo.yaml" | cut -d: -f1)
refused "FIFO as the labels" "$TMP/lfifo\.yaml:$L:[0-9]+: labels: $TMP/fifo\.txt: $FIFO_MSG" \
  "$BIN" run "$TMP/lfifo.yaml" --input "$IMG" --out "$OUTS/f8"
# A FIFO where the previous run's manifest.json would be: never read (it
# would block); the run either refuses the folder or replaces the FIFO.
mkdir -p "$OUTS/fman"
mkfifo "$OUTS/fman/manifest.json"
run_t "FIFO at OUT/manifest.json" "$BIN" run "$TMP/base.yaml" --input "$IMG" --out "$OUTS/fman" --no-taps -q
if [ "$rc" -eq 0 ] && [ -f "$OUTS/fman/manifest.json" ] && [ ! -p "$OUTS/fman/manifest.json" ]; then ok
elif [ "$rc" -eq 2 ] && [ "$(grep -c '^cnnviz-cl: error: .*manifest\.json' "$TMP/err")" -eq 1 ]; then ok
else bad "FIFO at OUT/manifest.json: exit $rc"; head -3 "$TMP/err" | sed 's/^/  /' >&2; fi

# ================================================================== @lists
printf '%s\n\n@self.txt\n' "$IMG" > "$TMP/self.txt"
refused "@list naming itself" "$TMP/self\.txt:3: @$TMP/self\.txt: this list is being read already" \
  "$BIN" run "$TMP/base.yaml" --input "@$TMP/self.txt" --out "$OUTS/l1"
printf '# ping\n@pong.txt\n' > "$TMP/ping.txt"
printf '%s\n@ping.txt\n' "$IMG" > "$TMP/pong.txt"
refused "@lists naming each other" "$TMP/pong\.txt:2: @$TMP/ping\.txt: this list is being read already" \
  "$BIN" run "$TMP/base.yaml" --input "@$TMP/ping.txt" --out "$OUTS/l2"
printf '%s\n# next one is gone\nmissing.png\n' "$IMG" > "$TMP/gone.txt"
refused "@list with a missing entry" "$TMP/gone\.txt:3: $TMP/missing\.png: No such file or directory" \
  "$BIN" run "$TMP/base.yaml" --input "@$TMP/gone.txt" --out "$OUTS/l3"
# Spaces, tabs and CRs around the entries, a comment, blank lines: fine.
mkdir -p "$TMP/sp"
cp "$IMAGES/1_trouser.png" "$TMP/sp/t.png"
printf '  %s \t\r\n\r\n# comment\r\n\tsp/t.png  \r\n' "$IMG" > "$TMP/spaced.txt"
run_t "@list with spaces and CRLF" "$BIN" run "$TMP/base.yaml" --input "@$TMP/spaced.txt" --out "$OUTS/l4" --no-taps -q
if [ "$rc" -eq 0 ] && [ "$(grep -c '"input"' "$OUTS/l4/predictions.json")" -eq 2 ]; then ok; else
  bad "@list with spaces and CRLF: exit $rc"; head -3 "$TMP/err" | sed 's/^/  /' >&2; fi

# ====================================================== names, not UTF-8 text
mkdir -p "$TMP/names"
NL_NAME=$'two\nlines.png'
RAW_NAME=$'raw\xff\xfe.png'
cp "$IMAGES/0_tshirt.png" "$TMP/names/$NL_NAME"
cp "$IMAGES/1_trouser.png" "$TMP/names/$RAW_NAME"
run_t "odd file names" "$BIN" run "$TMP/base.yaml" --input "$TMP/names" --out "$OUTS/names" --npy --no-taps
if [ "$rc" -eq 0 ]; then ok; else bad "odd file names: exit $rc"; head -3 "$TMP/err" | sed 's/^/  /' >&2; fi
if "$PY" - "$OUTS/names" "$TMP/names" > "$TMP/py.out" 2>&1 <<'EOF'
import base64, json, os, sys
out, src = sys.argv[1], os.fsencode(sys.argv[2])
for name in ("predictions.json", "manifest.json"):
    with open(os.path.join(out, name), encoding="utf-8", errors="strict") as f:   # strict UTF-8
        doc = json.load(f)
preds = json.load(open(os.path.join(out, "predictions.json"), encoding="utf-8"))
want = {os.path.join(src, b"two\nlines.png"), os.path.join(src, b"raw\xff\xfe.png")}
got = set()
for p in preds:
    if "input_b64" in p:
        raw = base64.b64decode(p["input_b64"], validate=True)
        assert raw.decode("utf-8", "replace") == p["input"], (raw, p["input"])
        got.add(raw)
    else:
        got.add(p["input"].encode("utf-8"))
assert got == want, (got, want)
assert sum("input_b64" in p for p in preds) == 1, "input_b64 only where the name is not UTF-8"
EOF
then ok; else bad "odd file names: JSON check"; sed 's/^/  /' "$TMP/py.out" >&2; fi
# stdout: one line per name (the newline shown as \n).
if grep -qxF "$TMP/names/two\\nlines.png" "$TMP/out" && grep -qxF "$TMP/names/raw\\xff\\xfe.png" "$TMP/out"; then ok
else bad "odd file names: stdout lines"; head -4 "$TMP/out" | sed 's/^/  /' >&2; fi
# Unreadable files with such names: each message on one line.
printf 'junk' > "$TMP/names/"$'bad\n\x1b[31m\xff.png'
refused "unreadable file with a newline, an escape and a stray byte in its name" \
  "^cnnviz-cl: error: $TMP/names/bad\\\\n\\\\x1b\[31m\\\\xff\.png: not a PNG or JPEG image" \
  "$BIN" run "$TMP/base.yaml" --input "$TMP/names/"$'bad\n\x1b[31m\xff.png' --out "$OUTS/badname" -q
run_t "skipped line for such a name" "$BIN" run "$TMP/base.yaml" --input "$TMP/names" --out "$OUTS/names2" --no-taps -q
if [ "$rc" -eq 2 ] && grep -qF "cnnviz-cl: skipped: $TMP/names/bad\\n\\x1b[31m\\xff.png: not a PNG" "$TMP/err" &&
   [ "$(wc -l < "$TMP/err")" -eq 2 ]; then ok
else bad "skipped line for such a name: exit $rc"; sed 's/^/  /' "$TMP/err" | head -4 >&2; fi

# ================================================ SIGINT while kernels build
# Empty caches, so the run spends seconds compiling.  The run gets a session
# of its own, and the signal goes to the whole process group, as Ctrl-C
# does: the compiler's child processes get it too.
CACHE="$TMP/cold"
mkdir -p "$CACHE"
POCL_CACHE_DIR="$CACHE/pocl" CNNVIZ_CACHE_DIR="$CACHE/cnnviz" setsid "$BIN" run "$TMP/base.yaml" --input "$IMG" \
  --out "$OUTS/sigint" -q > /dev/null 2> "$TMP/err" &
pid=$!
for _ in $(seq 200); do
  [ -n "$(find "$CACHE" -type f 2> /dev/null | head -1)" ] && break
  sleep 0.05
done
building=$([ -n "$(find "$CACHE" -type f 2> /dev/null | head -1)" ] && echo yes || echo no)
if [ "$(ps -o pgid= -p "$pid" | tr -d ' ')" = "$pid" ]; then kill -INT -- "-$pid"; else kill -INT "$pid"; fi
t0=$(date +%s)
wait "$pid"
rc=$?
took=$(($(date +%s) - t0))
if [ "$building" = yes ]; then ok; else bad "SIGINT test: the kernel build never started"; fi
if [ "$rc" -eq 130 ]; then ok; else bad "SIGINT during the first build: exit $rc, expected 130"; head -5 "$TMP/err" | sed 's/^/  /' >&2; fi
if [ "$(wc -l < "$TMP/err")" -eq 1 ] && grep -q '^cnnviz-cl: error: interrupted by SIGINT' "$TMP/err"; then ok; else
  bad "SIGINT during the first build: stderr is not one line naming SIGINT"; head -5 "$TMP/err" | sed 's/^/  /' >&2; fi
if [ "$took" -le 30 ]; then ok; else bad "SIGINT during the first build: took $took s to stop"; fi
if [ ! -e "$OUTS/sigint/manifest.json" ]; then ok; else bad "SIGINT during the first build: manifest.json written"; fi

# ===================================================== write limit (SIGXFSZ)
run_t "ulimit -f" bash -c 'ulimit -f 4; exec "$@"' - "$BIN" run "$TMP/base.yaml" --input "$IMAGES" --out "$OUTS/xfsz" -q
if [ "$rc" -eq 1 ]; then ok; else bad "ulimit -f 4: exit $rc, expected 1 (153 is death by SIGXFSZ)"; fi
if [ "$(grep -c '^cnnviz-cl: error: .*File too large' "$TMP/err")" -eq 1 ]; then ok; else
  bad "ulimit -f 4: no 'File too large' error line"; head -3 "$TMP/err" | sed 's/^/  /' >&2; fi
if [ -z "$(find "$OUTS/xfsz" -name '*.tmp.*' 2> /dev/null)" ]; then ok; else bad "ulimit -f 4: temporary files left"; fi

finish
