#!/usr/bin/env bash
# The output folder never costs a user a file.  Each case runs the real
# binary and compares files byte for byte (sha256 of every file, with its
# path) before and after:
#  * --out in a project folder whose manifest.json is not ours (a web app's,
#    an older unmarked one): exit 2, one error line, nothing changed;
#  * a link inside OUT and a manifest naming files "inside" it: nothing
#    outside OUT is removed; a rerun never writes through the link;
#  * a file of the user's where the run would write, a file or a dangling
#    link where a folder goes: refused before the device is touched;
#  * two runs at once: the second stops at once naming the first's pid, or
#    waits with --wait-lock; the folder ends as the last manifest says;
#  * a rerun that fails (its only input unreadable) leaves the earlier
#    complete run byte for byte;
#  * kill -9 at several points, then a rerun: the earlier run intact after
#    the kill, the dead run's files and temporaries cleared by the rerun;
#  * layers named like the files the run writes (input.png, model,
#    index.html, output.npy): every output has a name of its own;
#  * disk full (a 2 MiB tmpfs where mounting is allowed, a RLIMIT_FSIZE
#    write limit always) and a read-only OUT: exit 1 naming a path under
#    OUT, no partial file, no manifest naming missing files, no stage.
. "$(dirname "$0")/lib.sh"
section() { echo "[${SECONDS}s] $*"; }

PY=/usr/bin/python3
CFG="$SRC/configs/fashion_mnist.yaml"
IMAGES="$SRC/samples/fashion_mnist/images"
IMG="$IMAGES/0_tshirt.png"

# snapshot DIR: every file (links as links) with its checksum, sorted; a
# live run's lock and stage aside (consistent checks that none is left).
snapshot() {
  (cd "$1" && find . -path './.cnnviz-run.*' -prune -o \( -type f -o -type l \) ! -name '.cnnviz.lock' -print0 |
    sort -z |
    while IFS= read -r -d '' f; do
      if [ -L "$f" ]; then echo "link $f -> $(readlink "$f")"; else echo "$(sha256sum < "$f" | cut -c1-16) $f"; fi
    done)
}

# same_as DIR SNAPSHOT DESCRIPTION
same_as() {
  if diff <(snapshot "$1") "$2" > "$TMP/snapdiff"; then ok; else
    bad "$3: the folder changed"; head -8 "$TMP/snapdiff" | sed 's/^/  /' >&2; fi
}

# one_error WANT_RC ERE DESCRIPTION: the last expect_rc'd command printed one error line matching ERE
one_error() {
  local n
  n=$(grep -c '^cnnviz-cl: error: ' "$TMP/err")
  if [ "$n" -eq 1 ]; then ok; else bad "$2: $n error lines, expected 1"; head -5 "$TMP/err" >&2; fi
  expect_grep "$TMP/err" "$1" "$2"
}

# consistent DIR DESCRIPTION: the manifest lists exactly the files of the
# tool in DIR (files named in EXTRA are the user's), each with its size
# and time, and nothing of a stage or lock is left.
consistent() {
  if "$PY" - "$1" "${EXTRA:-}" > "$TMP/mcheck" 2>&1 <<'EOF'
import json, os, sys
d, extra = sys.argv[1], set(filter(None, sys.argv[2].split(",")))
m = json.load(open(os.path.join(d, "manifest.json"), encoding="utf-8"))
assert m["tool"] == "cnnviz-cl" and m["schema"] == 2, "marker"
listed = {e["path"]: e for e in m["files"]}
present = {os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs}
present -= {"manifest.json"} | extra
hidden = [p for p in present if any(c.startswith(".") for c in p.split("/"))]
assert not hidden, "left behind: %s" % hidden[:5]
assert set(listed) == present, "listed-not-present %s present-not-listed %s" % (
    sorted(set(listed) - present)[:5], sorted(present - set(listed))[:5])
for p, e in listed.items():
    st = os.lstat(os.path.join(d, p))
    assert e["bytes"] == st.st_size and e["mtime"] == [st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9], p
empty = [r for r, ds, fs in os.walk(d) if not ds and not fs]
assert not empty, "empty folders %s" % empty[:3]
print("ok", len(listed))
EOF
  then ok; else bad "$2: the folder does not match its manifest"; tail -3 "$TMP/mcheck" >&2; fi
}

# --- a manifest that is not ours -------------------------------------------
section "a manifest that is not ours"
proj="$TMP/project"
mkdir -p "$proj/src" "$proj/.git"
echo "# my project" > "$proj/README.md"
echo "int main(void) { return 0; }" > "$proj/src/main.c"
echo "[core]" > "$proj/.git/config"
echo '{"name": "app", "icons": [{"path": "README.md"}, {"path": "src/main.c"}, {"path": ".git/config"}]}' \
  > "$proj/manifest.json"
snap="$TMP/proj.snap"
snapshot "$proj" > "$snap"
(cd "$proj" && "$BIN" run "$CFG" --input "$IMG" --out . -q > "$TMP/out" 2> "$TMP/err")
rc=$?
if [ $rc -eq 2 ]; then ok; else bad "--out . with a web app's manifest.json: exit $rc, expected 2"; fi
one_error "holds a manifest.json not written by this version of cnnviz-cl.*choose another --out or remove it" \
  "a foreign manifest is refused"
same_as "$proj" "$snap" "a foreign manifest"
# The unmarked manifest of an older version is not trusted either.
echo '{"files": [{"path": "README.md", "kind": "report", "format": "html"}]}' > "$proj/manifest.json"
snapshot "$proj" > "$snap"
expect_rc 2 "an unmarked manifest" -- "$BIN" run "$CFG" --input "$IMG" --out "$proj" -q
one_error "not written by this version of cnnviz-cl \(an earlier version" "an unmarked manifest is refused"
same_as "$proj" "$snap" "an unmarked manifest"
# A manifest.json that is a link or a FIFO is refused, never followed or opened for blocking.
rm "$proj/manifest.json"
ln -s "$proj/README.md" "$proj/manifest.json"
expect_rc 2 "manifest.json is a link" -- timeout 60 "$BIN" run "$CFG" --input "$IMG" --out "$proj" -q
one_error "symbolic link" "manifest.json as a link"
rm "$proj/manifest.json"
mkfifo "$proj/manifest.json"
expect_rc 2 "manifest.json is a FIFO" -- timeout 60 "$BIN" run "$CFG" --input "$IMG" --out "$proj" -q
one_error "not a regular file" "manifest.json as a FIFO"
rm "$proj/manifest.json"

# --- links inside OUT --------------------------------------------------------
section "links inside OUT"
out="$TMP/linked"
victim="$TMP/victim"
mkdir -p "$victim/sub"
echo precious > "$victim/v.txt"
echo precious2 > "$victim/sub/w.png"
vsnap="$TMP/victim.snap"
snapshot "$victim" > "$vsnap"
expect_rc 0 "first run into linked" -- "$BIN" run "$CFG" --input "$IMAGES" --out "$out" -q
ln -s "$victim" "$out/elsewhere"
# A manifest of ours (marker and all) that names the victim's files through
# the link, with their true sizes and times, plus escapes.
"$PY" - "$out" "$victim" <<'EOF'
import json, os, sys
out, victim = sys.argv[1], sys.argv[2]
m = json.load(open(os.path.join(out, "manifest.json")))
for rel, real in [("elsewhere/v.txt", "v.txt"), ("elsewhere/sub/w.png", "sub/w.png")]:
    st = os.stat(os.path.join(victim, real))
    m["files"].append({"path": rel, "kind": "x", "bytes": st.st_size,
                       "mtime": [st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9]})
for rel in ["../victim/v.txt", victim + "/v.txt", "a/../../victim/v.txt"]:
    m["files"].append({"path": rel, "kind": "x", "bytes": 9, "mtime": [0, 0]})
json.dump(m, open(os.path.join(out, "manifest.json"), "w"))
EOF
expect_rc 0 "rerun with fewer files over a link" -- "$BIN" run "$CFG" --input "$IMG" --out "$out" --no-taps
same_as "$victim" "$vsnap" "files outside OUT named through a link"
if [ -L "$out/elsewhere" ]; then ok; else bad "the link itself was removed"; fi
# A folder the run writes into that is a link: refused before the run.
rm "$out/elsewhere"
rm -r "$out/0_tshirt"
ln -s "$victim" "$out/0_tshirt"
expect_rc 2 "an input's folder is a link" -- "$BIN" run "$CFG" --input "$IMG" --out "$out" -q
one_error "0_tshirt exists and is a symbolic link" "writing through a link is refused"
same_as "$victim" "$vsnap" "a link where the run writes"
rm "$out/0_tshirt"
ln -s "$TMP/nowhere" "$out/0_tshirt"
expect_rc 2 "a dangling link where a folder goes" -- "$BIN" run "$CFG" --input "$IMG" --out "$out" -q
one_error "0_tshirt exists and is a symbolic link" "a dangling link is refused"
rm "$out/0_tshirt"
echo "my notes" > "$out/0_tshirt"
expect_rc 2 "a file where a folder goes" -- "$BIN" run "$CFG" --input "$IMG" --out "$out" -q
one_error "0_tshirt exists and is not a folder" "a file where a folder goes is refused"
rm "$out/0_tshirt"
echo "<html>mine</html>" > "$out/index.html"
snap="$TMP/linked.snap"
snapshot "$out" > "$snap"
expect_rc 2 "the user's index.html" -- "$BIN" run "$CFG" --input "$IMG" --out "$out" -q
one_error "index.html exists and (was not written by cnnviz-cl|changed since)" "the user's index.html is not replaced"
same_as "$out" "$snap" "a refused run"

# --- two runs at once --------------------------------------------------------
section "two runs at once"
out="$TMP/shared"
mkdir -p "$TMP/many"
for i in 1 2 3; do for f in "$IMAGES"/*.png; do cp "$f" "$TMP/many/${i}_$(basename "$f")"; done; done
"$BIN" run "$CFG" --input "$IMAGES" --out "$out" --tap input:occlusion -q > /dev/null 2> "$TMP/err1" &
pid=$!
for _ in $(seq 1 600); do [ -e "$out/.cnnviz.lock" ] && break; sleep 0.1; done
expect_rc 2 "a second run into a folder in use" -- "$BIN" run "$CFG" --input "$IMG" --out "$out" -q
one_error "is in use by another cnnviz-cl run \(pid $pid\).*--wait-lock" "the second run names the first's pid"
"$BIN" run "$CFG" --input "$IMG" --out "$out" --no-taps --wait-lock > /dev/null 2> "$TMP/err2"
rc2=$?
wait $pid
rc1=$?
if [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ]; then ok; else bad "first run exit $rc1, waiting run exit $rc2"; cat "$TMP/err2" >&2; fi
expect_grep "$TMP/err2" "in use by another run \(pid $pid\); waiting" "the waiting run says so"
EXTRA="" consistent "$out" "after two runs, one waiting"

# --- a failed rerun leaves the earlier run as it was ---------------------------
section "a failed rerun"
out="$TMP/earlier"
expect_rc 0 "a complete run" -- "$BIN" run "$CFG" --input "$IMAGES/0_tshirt.png" --input "$IMAGES/1_trouser.png" \
  --out "$out" --npy -q
snap="$TMP/earlier.snap"
snapshot "$out" > "$snap"
printf 'not an image' > "$TMP/broken.png"
expect_rc 2 "a rerun whose only input is unreadable" -- "$BIN" run "$CFG" --input "$TMP/broken.png" --out "$out" -q
same_as "$out" "$snap" "a failed rerun"
consistent "$out" "the earlier run after a failed rerun"

# --- kill -9, then a rerun -----------------------------------------------------
section "kill -9, then a rerun"
# files_appear DIR: waits until PNGs are being written under DIR (120 s at most).
files_appear() {
  for _ in $(seq 1 1200); do
    if [ -n "$(find "$1" -name '*.png' -print -quit 2> /dev/null)" ]; then break; fi
    sleep 0.1
  done
}
for when in 0.2 1.5 4; do
  out="$TMP/killed_$when"
  expect_rc 0 "kill -9 ($when s): the earlier run" -- "$BIN" run "$CFG" --input "$IMG" --out "$out" -q
  snap="$TMP/killed.snap"
  snapshot "$out" > "$snap"
  "$BIN" run "$CFG" --input "$TMP/many" --out "$out" --tap input:occlusion --npy -q > /dev/null 2>&1 &
  pid=$!
  files_appear "$out/.cnnviz-run.$pid"
  sleep "$when"
  kill -9 $pid 2> /dev/null
  wait $pid 2> /dev/null
  same_as "$out" "$snap" "kill -9 after ${when}s: the earlier run's files"
  # An older version's temporary file of a dead writer, in a listed folder.
  echo partial > "$out/0_tshirt/.input.png.tmp.999999.7"
  expect_rc 0 "kill -9 ($when s): rerun" -- "$BIN" run "$CFG" --input "$IMG" --out "$out" --no-taps
  expect_grep "$TMP/err" "removed the unfinished files of an interrupted run \(pid $pid\)" \
    "kill -9 ($when s): the rerun clears the dead run's files"
  expect_grep "$TMP/err" "removed 1 temporary file of interrupted runs" "kill -9 ($when s): temporaries counted"
  EXTRA="" consistent "$out" "kill -9 after ${when}s, then a rerun"
done

# --- names that could collide --------------------------------------------------
section "names that could collide"
sed -e "s#\.\./samples/#$SRC/samples/#" "$CFG" > "$TMP/base.yaml"
"$PY" - "$TMP/base.yaml" "$TMP/names.yaml" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
# Rename the layers to names the run also gives files and folders.
names = {"conv1": "input.png", "pool1": "model", "conv2": "index.html", "relu1": "output.npy"}
for old, new in names.items():
    text = re.sub(r"\b%s\b" % re.escape(old), new, text)
open(sys.argv[2], "w").write(text)
EOF
out="$TMP/names"
expect_rc 0 "layers named input.png, model, index.html, output.npy" -- \
  "$BIN" run "$TMP/names.yaml" --input "$IMAGES" --out "$out" --npy -q --tap input.png --tap model --tap output.npy \
  --tap index.html:gradcam --tap input:saliency
EXTRA="" consistent "$out" "colliding layer names"
if [ -f "$out/0_tshirt/input.png" ] && [ -d "$out/0_tshirt/input.png_" ] && [ -f "$out/0_tshirt/output.npy" ]; then ok
else bad "the input image, the raw output and the layer folders each have their own name"; ls "$out/0_tshirt" >&2; fi

# --- disk full, read-only --------------------------------------------------------
section "disk full, read-only"
# check_full DIR DESCRIPTION: after a failed write, exit 1 naming a path
# under DIR (not the stage), no partial file, no stage, and the earlier
# run's manifest and files as they were ($snap).
check_full() {
  local dir=$1 what=$2
  if [ "$rc" -eq 1 ]; then ok; else bad "$what: exit $rc, expected 1"; head -3 "$TMP/err" >&2; fi
  one_error "$dir/[^ ]*: .*(No space left|File too large|write failed|cannot)" "$what: the error names the path"
  if grep -q 'cnnviz-run' "$TMP/err"; then bad "$what: the error names the stage, not OUT"; else ok; fi
  same_as "$dir" "$snap" "$what: the earlier run"
  if [ -z "$(find "$dir" -name '.cnnviz-run.*' -o -name '*.tmp.*')" ]; then ok; else
    bad "$what: a stage or temporary file is left"; fi
}
can_mount=0
if unshare -rm true 2> /dev/null; then can_mount=1; fi
if [ $can_mount -eq 1 ]; then
  small="$TMP/small"
  mkdir -p "$small"
  # Inside a private mount namespace: a 2 MiB tmpfs, an earlier small run,
  # then a run that writes 20 MB.
  unshare -rm bash -c '
    mount -t tmpfs -o size=2m tmpfs "$1" || exit 99
    "$2" run "$3" --input "$4" --out "$1/o" --no-taps -q > /dev/null 2>&1 || exit 98
    (cd "$1/o" && find . -type f | sort | xargs sha256sum) > "$5.before"
    "$2" run "$3" --input "$6" --out "$1/o" --npy -q > /dev/null 2> "$5.err"; echo $? > "$5.rc"
    (cd "$1/o" && find . -type f | sort | xargs sha256sum) > "$5.after"
    find "$1/o" -name ".cnnviz-run.*" -o -name "*.tmp.*" > "$5.left"
    sed "s#$1#SMALL#g" -i "$5.err"' _ "$small" "$BIN" "$CFG" "$IMG" "$TMP/full" "$TMP/many"
  st=$?
  if [ $st -eq 0 ]; then ok; else bad "tmpfs setup failed ($st)"; fi
  rc=$(cat "$TMP/full.rc" 2> /dev/null || echo none)
  cp "$TMP/full.err" "$TMP/err" 2> /dev/null
  if [ "$rc" = 1 ]; then ok; else bad "disk full (tmpfs): exit $rc, expected 1"; head -3 "$TMP/err" >&2; fi
  one_error "SMALL/o/[^ ]*: .*No space left" "disk full (tmpfs): the error names the path under OUT"
  if diff "$TMP/full.before" "$TMP/full.after" > /dev/null; then ok; else bad "disk full (tmpfs): the earlier run changed"; fi
  if [ ! -s "$TMP/full.left" ]; then ok; else bad "disk full (tmpfs): left $(head -2 "$TMP/full.left")"; fi
  # Read-only OUT (a read-only tmpfs holding an earlier run).
  unshare -rm bash -c '
    mount -t tmpfs -o size=8m tmpfs "$1" || exit 99
    "$2" run "$3" --input "$4" --out "$1/o" --no-taps -q > /dev/null 2>&1 || exit 98
    mount -o remount,ro "$1" || exit 97
    "$2" run "$3" --input "$4" --out "$1/o" -q > /dev/null 2> "$5.err"; echo $? > "$5.rc"
    sed "s#$1#SMALL#g" -i "$5.err" 2> /dev/null || true' _ "$small" "$BIN" "$CFG" "$IMG" "$TMP/ro"
  rc=$(cat "$TMP/ro.rc" 2> /dev/null || echo none)
  cp "$TMP/ro.err" "$TMP/err" 2> /dev/null
  if [ "$rc" = 1 ]; then ok; else bad "read-only OUT: exit $rc, expected 1"; head -3 "$TMP/err" >&2; fi
  one_error "SMALL/o.*Read-only file system" "read-only OUT: the error names the folder"
else
  echo "note: no mount namespaces here: disk full is tested with a write limit only" >&2
  if [ "$(id -u)" -ne 0 ]; then
    out="$TMP/readonly"
    expect_rc 0 "read-only OUT: an earlier run" -- "$BIN" run "$CFG" --input "$IMG" --out "$out" --no-taps -q
    chmod a-w "$out"
    expect_rc 1 "read-only OUT" -- "$BIN" run "$CFG" --input "$IMG" --out "$out" -q
    one_error "$out.*Permission denied" "read-only OUT: the error names the folder"
    chmod u+w "$out"
  fi
fi
# A write limit (RLIMIT_FSIZE, 64 KiB): every file past it fails with EFBIG.
out="$TMP/limited"
expect_rc 0 "write limit: an earlier run" -- "$BIN" run "$CFG" --input "$IMG" --out "$out" --no-taps -q
snap="$TMP/limited.snap"
snapshot "$out" > "$snap"
(ulimit -f 64; "$BIN" run "$CFG" --input "$IMAGES" --out "$out" --npy -q > /dev/null 2> "$TMP/err")
rc=$?
check_full "$out" "write limit"

finish
