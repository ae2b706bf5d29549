#!/usr/bin/env bash
# Several devices in one process.  PoCL shows two CPU devices with
# POCL_DEVICES="pthread pthread"; a run over 200 Fashion-MNIST test images
# (batches of 4, activations, gradient maps with curves, .npy) on both
# (--device all; --device 0,1) writes the files of a run on device 0 byte
# for byte, the manifest alike but for file times and the device list,
# the report alike but for that list.  A device that fails in the middle
# (a test hook) is reported, its batch is run again on the other, and the
# result is the same.  Parts (--shard) on two devices equal parts on one.
# Selections that name a device twice or nothing, and options that time or
# gather on one device, exit 2 with one line.
. "$(dirname "$0")/lib.sh"
use_sample
need_fashion_test
# PoCL's platform may already list other devices; the test names its own
export POCL_DEVICES="pthread pthread"
n=$("$BIN" devices | grep -c '^  device ')
if [ "$n" -lt 2 ]; then
  echo "SKIP: POCL_DEVICES='pthread pthread' gives $n device(s) here (not PoCL?)"
  finish
  exit $?
fi
fashion_images "$TMP/imgs" 200
RUN=("$BIN" run "$CFG" --input "$TMP/imgs" -q --batch 4 --no-taps --tap pool2 --tap input:saliency
     --tap conv4:gradcam --tap conv1:filters --curves 4 --npy)

# alike ONE MANY: the same files and bytes; the manifest alike but for file
# times and the record's device list; the report alike once the device
# list reads as the single device
alike() {
  "$PY" - "$1" "$2" <<'EOF'
import json, os, sys
a, b = sys.argv[1:]
def files(d):
    return sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)
fa, fb = files(a), files(b)
assert fa == fb, "files differ: %s" % sorted(set(fa) ^ set(fb))[:5]
ma, mb = (json.load(open(os.path.join(d, "manifest.json"))) for d in (a, b))
da, db = ma["run"].pop("device"), mb["run"].pop("device")
assert db.count(";") >= 1 and da in db, (da, db)
for f in fa:
    if f in ("manifest.json", "index.html"):
        continue
    assert open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read(), f + " differs"
ra = open(os.path.join(a, "index.html"), encoding="utf-8").read()
rb = open(os.path.join(b, "index.html"), encoding="utf-8").read()
esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
assert ra == rb.replace(esc(db), esc(da)), "index.html differs beyond the device list"
for m in (ma, mb):
    for e in m["files"]:
        e.pop("mtime")
        if e["path"] == "index.html":
            e.pop("bytes")
assert ma == mb, [k for k in ma if ma[k] != mb[k]]
print(len(fa), "files alike")
EOF
}

t0=$SECONDS
expect_rc 0 "one device" -- "${RUN[@]}" --device 0 --out "$OUTS/one"
t_one=$((SECONDS - t0))
t0=$SECONDS
expect_rc 0 "--device all" -- "${RUN[@]}" --device all --out "$OUTS/all"
t_all=$((SECONDS - t0))
echo "200 images: one device ${t_one}s, two PoCL devices on the same CPU ${t_all}s (no speed-up expected; shared machine)"
if alike "$OUTS/one" "$OUTS/all" > "$TMP/alike" 2>&1; then ok; else bad "two devices differ from one"; tail -3 "$TMP/alike" >&2; fi

# a device that fails in its second batch: its batch goes to the other
runcmd env CNNVIZ_TEST_FAIL_DEVICE=1:2 "${RUN[@]}" --device 0,1 --out "$OUTS/failover"
[ "$rc" -eq 0 ] && ok || { bad "a failing device: exit $rc"; tail -3 "$TMP/err" >&2; }
expect_grep "$TMP/err" "warning: device 1 .* failed: .*its batch and the rest go to the other devices" "the failure is reported"
if alike "$OUTS/one" "$OUTS/failover" > "$TMP/alike" 2>&1; then ok; else bad "after a failure"; tail -3 "$TMP/alike" >&2; fi
runcmd env CNNVIZ_TEST_FAIL_DEVICE=0:1 "${RUN[@]}" --device all --out "$OUTS/failover0"
if [ "$rc" -eq 0 ] && alike "$OUTS/one" "$OUTS/failover0" > "$TMP/alike" 2>&1; then ok; else
  bad "the first device failing (exit $rc)"; tail -3 "$TMP/alike" "$TMP/err" >&2; fi

# a part of a run on two devices is the part on one
SMALL=("$BIN" run "$CFG" --input "$IMAGES" -q --batch 2)
expect_rc 0 "part on one device" -- "${SMALL[@]}" --device 0 --shard 1/2 --out "$OUTS/part-one"
expect_rc 0 "part on two devices" -- "${SMALL[@]}" --device all --shard 1/2 --out "$OUTS/part-two"
if alike "$OUTS/part-one" "$OUTS/part-two" > "$TMP/alike" 2>&1; then ok; else bad "a part on two devices"; tail -3 "$TMP/alike" >&2; fi

expect_rc 0 "two devices, not quiet" -- "$BIN" run "$CFG" --input "$IMAGES" --no-taps --device all --out "$OUTS/said"
expect_grep "$TMP/err" "device 1 \(.*\): [0-9]+ batch(es)?, [0-9]+ inputs" "each device says what it ran"

# --- refusals ---------------------------------------------------------------
runcmd "${SMALL[@]}" --device 0,0 --out "$OUTS/refused"
check_error "a device named twice" "--device 0,0: '0' names device 0 of platform 0 again"
runcmd "${SMALL[@]}" --device 0,9 --out "$OUTS/refused"
check_error "a device that is not there" "--device 0,9: '9' matches no device"
runcmd "${SMALL[@]}" --device all --profile --out "$OUTS/refused"
check_error "--profile on two devices" "--profile runs on one device"
runcmd "${SMALL[@]}" --device all --repeat 2 --out "$OUTS/refused"
check_error "--repeat on two devices" "--repeat runs on one device"
[ ! -e "$OUTS/refused" ] && ok || bad "a refused run wrote its folder"
finish
