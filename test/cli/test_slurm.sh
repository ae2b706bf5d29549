#!/usr/bin/env bash
# samples/slurm on a real Slurm: munged, slurmctld and slurmd for one local
# node, started here with a slurm.conf of their own (no cgroups:
# proctrack/linuxproc, task/none; ports picked free) and stopped at the
# end whatever happens.  Over 40 Fashion-MNIST test images:
#  * submit.sh with 4 parts: the array job and the merge after it; the
#    merged folder equals a single run byte for byte (manifest but times);
#  * `scontrol requeue` of one finished part: Slurm runs it again into the
#    same folder, which holds the same files once, and the parts merge
#    again to the same result;
#  * submit.sh --global 2 with a tap that clips: both statistics rounds,
#    the parts and the merge as chained jobs equal a single run.
# Skips, saying why, where the daemons cannot run: Slurm or munge not
# installed (cmake/install-deps.sh installs slurm-wlm and munge), or not
# root (slurmd launches jobs as root).
. "$(dirname "$0")/lib.sh"
use_sample
skip() {
  echo "SKIP: $*"
  finish
  exit $?
}
for c in munged munge slurmctld slurmd sbatch squeue sinfo scontrol; do
  command -v "$c" > /dev/null || skip "$c is not installed (Debian packages slurm-wlm and munge: cmake/install-deps.sh)"
done
[ "$(id -u)" -eq 0 ] || skip "slurmd must run as root to launch jobs; this test runs as $(id -un)"
need_fashion_test

# --- the daemons -------------------------------------------------------------
# their files live in a short path (a unix socket's name is at most 107 bytes)
D=$(mktemp -d /tmp/cnnviz-slurm.XXXXXX)
chmod 700 "$D"
stop_daemons() {
  if [ -f "$D/slurm.conf" ]; then
    SLURM_CONF="$D/slurm.conf" scancel --quiet --user "$(id -un)" 2> /dev/null
    sleep 1
  fi
  local f p
  for f in slurmd slurmctld munged; do
    [ -f "$D/$f.pid" ] || continue
    p=$(cat "$D/$f.pid")
    # only the process this test started: its pid file and its name agree
    if [ -n "$p" ] && [ "$(ps -o comm= -p "$p" 2> /dev/null)" = "$f" ]; then
      kill "$p" 2> /dev/null
      for _ in $(seq 50); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
    fi
  done
  rm -rf "$D"
}
trap stop_daemons EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
H=$(hostname -s)
P1=$(free_port)
P2=$(free_port)
mkdir -p "$D/state" "$D/spool"
head -c 1024 /dev/urandom > "$D/munge.key"
chmod 600 "$D/munge.key"
cat > "$D/slurm.conf" <<EOF
ClusterName=cnnviztest
SlurmctldHost=$H(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$P1
SlurmdPort=$P2
AuthType=auth/munge
AuthInfo=socket=$D/munge.sock
CredType=cred/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
JobRequeue=1
NodeName=$H NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=test Nodes=$H Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$D/slurm.conf"
started=1
munged -f --socket="$D/munge.sock" --key-file="$D/munge.key" --log-file="$D/munged.log" --pid-file="$D/munged.pid" \
  --seed-file="$D/munged.seed" || started=0
[ "$started" -eq 1 ] && { slurmctld -i || started=0; }
[ "$started" -eq 1 ] && { slurmd -N "$H" || started=0; }
for _ in $(seq 100); do
  [ "$(sinfo -h -n "$H" -o %t 2> /dev/null)" = idle ] && break
  sleep 0.2
done
if [ "$started" -eq 1 ] && [ "$(sinfo -h -n "$H" -o %t 2> /dev/null)" = idle ]; then ok; else
  bad "the local Slurm did not come up (node: $(sinfo -h -o %t 2>&1))"
  tail -n 5 "$D"/*.log >&2
  finish
  exit 1
fi

# wait_jobs: until none of ours is queued or running (at most 10 minutes)
wait_jobs() {
  local t t0=$SECONDS
  for t in $(seq 1200); do
    if [ -z "$(squeue -h -o %i 2> /dev/null)" ]; then
      echo "[${SECONDS}s] jobs done after $((SECONDS - t0))s"
      return 0
    fi
    sleep 0.5
  done
  bad "jobs still queued after 10 minutes: $(squeue -h 2>&1 | head -3)"
  return 1
}

fashion_images "$TMP/imgs" 40
export CNNVIZ="$BIN"
SLURM_DIR="$SRC/samples/slurm"
OPTS=(--batch 2 --no-taps --tap pool2 --tap conv4:gradcam --curves 4)
expect_rc 0 "single run" -- "$BIN" run "$CFG" --input "$TMP/imgs" -q "${OPTS[@]}" --out "$OUTS/single"

# --- 4 parts and the merge ---------------------------------------------------
expect_rc 0 "submit.sh 4 parts" -- "$SLURM_DIR/submit.sh" 4 "$CFG" "$TMP/imgs" "$OUTS/slurm" "${OPTS[@]}"
expect_grep "$TMP/out" "parts: array job [0-9]+ \(4 tasks\), merge: job [0-9]+" "submit.sh names its jobs"
array=$(sed -n 's/^parts: array job \([0-9]*\).*/\1/p' "$TMP/out")
wait_jobs
ls "$OUTS/slurm/parts" > "$TMP/parts" 2>&1
if [ "$(tr '\n' ' ' < "$TMP/parts")" = "0 1 2 3 " ]; then ok; else bad "4 part folders: $(cat "$TMP/parts")"; fi
if grep -q "merged 4 parts: 40 inputs" "$OUTS/slurm/logs/merge.out" 2> /dev/null; then ok; else
  bad "the merge job's log"; tail -3 "$OUTS/slurm/logs/"* >&2; fi
if same_run "$OUTS/single" "$OUTS/slurm/all" > "$TMP/same" 2>&1; then ok; else
  bad "the Slurm-merged run differs from the single run"; tail -3 "$TMP/same" >&2; fi

# --- a finished part run again by Slurm --------------------------------------
before=$(cd "$OUTS/slurm/parts/2" && find . -type f | sort | md5sum)
written=$(stat -c %y "$OUTS/slurm/parts/2/manifest.json")
runcmd scontrol requeue "${array}_2"
[ "$rc" -eq 0 ] && ok || { bad "scontrol requeue ${array}_2: exit $rc"; cat "$TMP/err" >&2; }
# Slurm holds a requeued job back for two minutes: let it start now
scontrol update JobId="${array}_2" StartTime=now > /dev/null 2>&1
wait_jobs
after=$(cd "$OUTS/slurm/parts/2" && find . -type f | sort | md5sum)
[ "$before" = "$after" ] && ok || bad "the requeued part's folder holds other files than before"
[ "$(stat -c %y "$OUTS/slurm/parts/2/manifest.json")" != "$written" ] && ok || bad "the requeued part did not run again"
if "$PY" - "$OUTS/slurm/parts/2" <<'EOF'
import json, os, sys
d = sys.argv[1]
m = json.load(open(os.path.join(d, "manifest.json")))
listed = {e["path"] for e in m["files"]}
present = {os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs} - {"manifest.json"}
assert listed == present and len(listed) == len(m["files"]), sorted(listed ^ present)[:5]
EOF
then ok; else bad "the requeued part's manifest does not match its files"; fi
expect_rc 0 "merge after the requeue" -- "$BIN" merge -q "$OUTS/again" "$OUTS"/slurm/parts/*
if same_run "$OUTS/single" "$OUTS/again" > "$TMP/same" 2>&1; then ok; else bad "merge after the requeue"; tail -3 "$TMP/same" >&2; fi

# --- normalize: global with clip: two statistics rounds as jobs ---------------
sed '/^taps:/,$d' "$TMP/base.yaml" > "$TMP/g.yaml"
cat >> "$TMP/g.yaml" <<'EOF'
taps:
  - {layer: conv2, show: activations, normalize: global}
  - {layer: pool2, show: activations, normalize: global, clip: [1, 99]}
EOF
expect_rc 0 "single run, global taps" -- "$BIN" run "$TMP/g.yaml" --input "$TMP/imgs" -q --batch 2 --out "$OUTS/gsingle"
expect_rc 0 "submit.sh --global 2" -- "$SLURM_DIR/submit.sh" --global 2 4 "$TMP/g.yaml" "$TMP/imgs" "$OUTS/gslurm" --batch 2
wait_jobs
if same_run "$OUTS/gsingle" "$OUTS/gslurm/all" > "$TMP/same" 2>&1; then ok; else
  bad "global ranges through Slurm differ from the single run"; tail -3 "$TMP/same" "$OUTS/gslurm/logs/"*merge* >&2; fi
[ -f "$OUTS/gslurm/ranges2.json" ] && ok || bad "no ranges2.json"
finish
