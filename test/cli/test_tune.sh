#!/usr/bin/env bash
# `tune`: a short search on the sample pipeline writes one tuning file into
# the cache folder; `run` applies it and predicts as before; a damaged or
# dangerous tuning file gives one warning and a normal run; Ctrl-C keeps the
# file; usage errors exit 2.  About 40 s on a 2-core CPU.
. "$(dirname "$0")/lib.sh"

CFG="$SRC/configs/fashion_mnist.yaml"
IMAGES="$SRC/samples/fashion_mnist/images"
export CNNVIZ_CACHE_DIR="$TMP/cache"

# top1 DIR: "image,class" per input, from predictions.csv (rank 1 rows)
top1() {
  awk -F, 'NR > 1 && !seen[$1]++ { print $1 "," $2 }' "$1/predictions.csv"
}

# run_ok NAME DESCRIPTION: run the sample pipeline into $TMP/NAME; exit 0
run_ok() {
  expect_rc 0 "$2" -- "$BIN" run "$CFG" --input "$IMAGES" --out "$TMP/$1" --no-taps --no-report -q
}

# same_top1 NAME DESCRIPTION: $TMP/NAME predicts the top class of each input as $TMP/before
same_top1() {
  if [ -s "$TMP/$1/predictions.csv" ] && [ "$(top1 "$TMP/$1")" = "$(top1 "$TMP/before")" ]; then ok; else
    bad "$2: top-1 predictions differ from the untuned run"; diff <(top1 "$TMP/before") <(top1 "$TMP/$1") | head -5 >&2; fi
}

# warnings: lines of $TMP/err that are tuning warnings
warnings() { grep -c '^cnnviz-cl: warning: tuning file ' "$TMP/err"; }

# ------------------------------------------------------------ usage
expect_rc 0 "tune --help" -- "$BIN" tune --help
expect_grep "$TMP/out" 'tune/<platform>-<device>-<driver>-<hash>\.txt' "help says where the result goes"
expect_grep "$TMP/out" 'CNNVIZ_CACHE_DIR=off' "help says how to undo"
expect_grep "$TMP/out" '--budget' "help documents --budget"
expect_rc 2 "tune --budget 0" -- "$BIN" tune "$CFG" --budget 0
expect_grep "$TMP/err" "^cnnviz-cl: error: --budget '0'" "--budget 0 is refused"
expect_rc 2 "tune --bogus" -- "$BIN" tune --bogus
expect_rc 2 "tune with two configs" -- "$BIN" tune "$CFG" "$CFG"
expect_rc 2 "tune with a missing config" -- "$BIN" tune "$TMP/missing.yaml" --budget 5
CNNVIZ_CACHE_DIR=off expect_rc 2 "tune with the cache off" -- "$BIN" tune "$CFG" --budget 5
expect_grep "$TMP/err" 'cache folder is off' "the cache being off is explained"
if [ ! -e "$TMP/cache/tune" ]; then ok; else bad "a refused tune wrote into the cache"; fi

# ------------------------------------------------------------ before tuning
run_ok before "run without a tuning file"
if [ "$(warnings)" -eq 0 ]; then ok; else bad "warning without a tuning file"; fi

# ------------------------------------------------------------ tune
t0=$(date +%s)
expect_rc 0 "tune --budget 20" -- "$BIN" tune "$CFG" --budget 20
t1=$(date +%s)
cp "$TMP/out" "$TMP/tune.out"
expect_grep "$TMP/tune.out" '^\[ *1\] defaults .* GFLOP/s' "a progress line for the defaults"
expect_grep "$TMP/tune.out" '^tune: best [0-9.]+ GFLOP/s' "a summary line"
if [ $((t1 - t0)) -le 45 ]; then ok; else bad "tune --budget 20 took $((t1 - t0)) s"; fi
FILES=("$TMP"/cache/tune/*.txt)
if [ "${#FILES[@]}" -eq 1 ] && [ -f "${FILES[0]}" ]; then ok; else bad "expected one tuning file, got: ${FILES[*]}"; fi
TF="${FILES[0]}"
expect_grep "$TF" '^cnnviz-cl-tune 1$' "the tuning file's header"
expect_grep "$TF" '^MWG [0-9]+$' "the tuning file holds the parameters"
expect_grep "$TMP/tune.out" "saved to $TF" "tune names the file it wrote"
if ls -a "$TMP/cache/tune" | grep -q '\.tmp\.'; then bad "a temporary file was left"; else ok; fi

run_ok tuned "run with the tuning file"
same_top1 tuned "tuned run"
if [ "$(warnings)" -eq 0 ]; then ok; else bad "the fresh tuning file gave a warning"; sed 's/^/  /' "$TMP/err" >&2; fi

# Another valid set (different tiles: CLBlast pads internally) predicts the same.
sed -e 's/^MWG .*/MWG 32/' -e 's/^NWG .*/NWG 64/' -e 's/^KWG .*/KWG 32/' -e 's/^MDIMC .*/MDIMC 8/' \
    -e 's/^NDIMC .*/NDIMC 8/' -e 's/^MDIMA .*/MDIMA 8/' -e 's/^NDIMB .*/NDIMB 8/' -e 's/^KWI .*/KWI 2/' \
    -e 's/^VWM .*/VWM 4/' -e 's/^VWN .*/VWN 4/' -e 's/^GEMMK .*/GEMMK 0/' \
    -e 's/^KREG .*/KREG 1/' -e 's/^SA .*/SA 0/' -e 's/^SB .*/SB 0/' "$TF" > "$TMP/good.txt"
cp "$TF" "$TMP/tuned.txt"
cp "$TMP/good.txt" "$TF"
run_ok other "run with another valid parameter set"
same_top1 other "run with another valid set"
if [ "$(warnings)" -eq 0 ]; then ok; else bad "a valid set gave a warning"; sed 's/^/  /' "$TMP/err" >&2; fi

# ------------------------------------------------------------ damaged files
# bad NAME DESCRIPTION: the file in $TF is refused with one warning, the run is normal
bad_file() {
  run_ok "$1" "run with $2"
  if [ "$(warnings)" -eq 1 ]; then ok; else bad "$2: $(warnings) tuning warnings, expected 1"; sed 's/^/  /' "$TMP/err" | head -5 >&2; fi
  if grep -q '^cnnviz-cl: error' "$TMP/err"; then bad "$2: an error line"; else ok; fi
  same_top1 "$1" "$2"
}
sed 's/^MWG .*/MWG 48/' "$TMP/tuned.txt" > "$TF"
bad_file mwg48 "MWG 48 (not a power of two)"
sed 's/^KWI .*/KWI two/' "$TMP/tuned.txt" > "$TF"
bad_file kwi "a non-numeric value"
sed '/^VWN /d' "$TMP/tuned.txt" > "$TF"
bad_file novwn "a missing parameter"
sed 's/^VWN \(.*\)/VWN \1\nBOGUS 1/' "$TMP/tuned.txt" > "$TF"
bad_file unknown "an unknown name"
sed 's/^device .*/device some other device/' "$TMP/tuned.txt" > "$TF"
bad_file otherdev "another device's file"
sed -e 's/^GEMMK .*/GEMMK 1/' -e 's/^MWG .*/MWG 16/' -e 's/^KWG .*/KWG 1/' -e 's/^KWI .*/KWI 1/' \
    -e 's/^NWG .*/NWG 64/' -e 's/^MDIMA .*/MDIMA 8/' -e 's/^MDIMC .*/MDIMC 8/' -e 's/^NDIMB .*/NDIMB 8/' \
    -e 's/^NDIMC .*/NDIMC 8/' -e 's/^VWM .*/VWM 2/' -e 's/^VWN .*/VWN 2/' -e 's/^KREG .*/KREG 2/' "$TMP/tuned.txt" > "$TF"
bad_file crasher "a known crasher (GEMMK 1, MWG 16)"
expect_grep "$TMP/err" 'crasher' "the crasher is named"
head -c 100 /dev/urandom > "$TF"
bad_file random "random bytes"
: > "$TF"
bad_file empty "an empty file"
cp "$TMP/tuned.txt" "$TF"

# CNNVIZ_CACHE_DIR=off: the file is not read at all.
sed 's/^MWG .*/MWG 48/' "$TMP/tuned.txt" > "$TF"
CNNVIZ_CACHE_DIR=off run_ok off "run with the cache off"
if [ "$(warnings)" -eq 0 ]; then ok; else bad "CNNVIZ_CACHE_DIR=off still read the tuning file"; fi
cp "$TMP/tuned.txt" "$TF"

# ------------------------------------------------------------ Ctrl-C keeps the file
rm -f "$TF"
"$BIN" tune "$CFG" --budget 120 > "$TMP/int.out" 2> "$TMP/int.err" &
pid=$!
for _ in $(seq 1 1200); do
  grep -q '^\[ *1\] defaults' "$TMP/int.out" 2> /dev/null && break
  sleep 0.1
done
sleep 1
kill -INT "$pid"
wait "$pid"
rc=$?
if [ "$rc" -eq 130 ]; then ok; else bad "interrupted tune: exit $rc, expected 130"; sed 's/^/  /' "$TMP/int.err" | head -5 >&2; fi
if [ -f "$TF" ] && grep -q '^cnnviz-cl-tune 1$' "$TF"; then ok; else bad "the interrupted tune left no tuning file"; fi
run_ok afterint "run after the interrupted tune"
same_top1 afterint "run after the interrupted tune"
if [ "$(warnings)" -eq 0 ]; then ok; else bad "the interrupted tune's file gave a warning"; fi

finish
