# shellcheck shell=bash
# tests/e2e/lib.sh: helpers for the ublk-compose end-to-end cases (sourced, bash).
#
# Model: the suite (cases.sh) runs each case in a fresh `bash cases.sh --one FUNC NAME` child under
# `timeout` (which kills the child's whole process group when the case overruns). Inside a case:
#   start_daemon CONF TAG   -> sets DPID, DDEV (/dev/ublkbN), DID (N); daemon logs in $CASE_DIR/TAG.{out,err}
#   stop_daemon [SECS]      -> SIGTERM + bounded wait; sets DRC (exit code)
#   fail "reason"           -> ends the case as FAIL with that reason
#   uc_recover TAG / uc_upgrade TAG -> `ublk-compose recover|upgrade $DID`; the detached server it
#                              starts becomes DPID (DDETACHED=1: not our child, no exit code)
#   bg_fio TAG args / wait_bg_fio SECS -> fio in the background (FIO_PID), bounded wait (FRC)
# Every wait is bounded (timeouts are generous: QEMU TCG is 5-10x slower than hardware).

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$E2E_DIR/../.." && pwd)
UC_BIN=${UC_BIN:-$REPO/build/ublk-compose}
E2E_START_TIMEOUT=${E2E_START_TIMEOUT:-60}   # daemon: seconds until /dev/ublkbN is printed
E2E_STOP_TIMEOUT=${E2E_STOP_TIMEOUT:-60}     # daemon: seconds to exit after SIGTERM
E2E_FIO_TIMEOUT=${E2E_FIO_TIMEOUT:-300}      # one fio step
E2E_CASE_TIMEOUT=${E2E_CASE_TIMEOUT:-900}    # one whole case
E2E_DAEMON_ARGS=${E2E_DAEMON_ARGS:--v}
# daemon stderr lines that fail a case (strict mode); crash-only mode uses E2E_CRASH_RE
E2E_CRASH_RE=${E2E_CRASH_RE:-'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|ThreadSanitizer|runtime error:|Assertion .*failed|Segmentation fault|stack smashing|double free|corrupted'}
E2E_ERR_RE=${E2E_ERR_RE:-"$E2E_CRASH_RE"'|(^|[^a-z_])(error|ERROR|Error|fatal|FATAL|Fatal|panic|PANIC)([^a-z_]|$)'}
# kernel log lines that fail a case
E2E_KERN_RE=${E2E_KERN_RE:-'BUG:|WARNING:|Oops|general protection|Call Trace:|hung_task|blocked for more than'}

log() { echo "[$(date +%T)] $*" >&2; }

# ---------------------------------------------------------------- inside a case (child process)
DPID='' DDEV='' DID='' DRC='' DERR='' DDETACHED=''
BG_PIDS=()
UC_RUN_DIR=${UC_RUN_DIR:-/run/ublk-compose}   # the daemon's run state: ID.conf, ID.pid, ID.log
RUNLOG_IDS=' '

fail() {
  log "FAIL: $*"
  [ -n "${CASE_DIR:-}" ] && [ ! -s "$CASE_DIR/reason" ] && printf '%s\n' "$*" > "$CASE_DIR/reason"
  exit 1
}

# wait_until SECS CMD...: poll CMD (every 0.2 s) until it succeeds; returns 1 on timeout
wait_until() {
  local secs=$1; shift
  local end=$((SECONDS + secs))
  while ! "$@" 2>/dev/null; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.2
  done
}

alive() { kill -0 "$1" 2>/dev/null; }
dead() { ! kill -0 "$1" 2>/dev/null; }
# a pid that was our child and has exited but not been reaped is still "alive" for kill -0: check /proc state
exited() { [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
gone() { [ ! -e "$1" ]; }

# start_daemon CONF TAG: start ublk-compose in the background, wait until it prints /dev/ublkbN
start_daemon() {
  local conf=$1 tag=${2:-daemon}
  local out=$CASE_DIR/$tag.out
  DERR=$CASE_DIR/$tag.err
  DDEV='' DID='' DRC='' DDETACHED=''
  [ -x "$UC_BIN" ] || fail "binary $UC_BIN missing"
  log "start: $UC_BIN -c $conf $E2E_DAEMON_ARGS"
  # shellcheck disable=SC2086
  "$UC_BIN" -c "$conf" $E2E_DAEMON_ARGS >"$out" 2>"$DERR" </dev/null &
  DPID=$!
  echo "$DPID" >> "${E2E_PIDFILE:-/dev/null}"
  echo "$DERR" >> "$CASE_DIR/daemon-logs"
  local end=$((SECONDS + E2E_START_TIMEOUT))
  while :; do
    DDEV=$(grep -m1 -oE '^/dev/ublkb[0-9]+' "$out" 2>/dev/null || true)
    [ -n "$DDEV" ] && break
    if exited "$DPID"; then
      wait "$DPID"; DRC=$?; DPID=
      fail "daemon ($tag) exited rc=$DRC before printing its device: $(tail -n 3 "$DERR" | tr '\n' ' ')"
    fi
    if [ "$SECONDS" -ge "$end" ]; then
      fail "daemon ($tag) printed no /dev/ublkbN within ${E2E_START_TIMEOUT}s (stdout not flushed?)"
    fi
    sleep 0.2
  done
  DID=${DDEV#/dev/ublkb}
  wait_until 10 test -b "$DDEV" || fail "daemon printed $DDEV but it is not a block device after 10s"
  log "daemon pid $DPID serves $DDEV (id $DID)"
}

# stop_daemon [SECS]: SIGTERM, wait bounded, set DRC; fails the case on a hang
stop_daemon() {
  local secs=${1:-$E2E_STOP_TIMEOUT}
  [ -n "$DPID" ] || return 0
  log "stop: SIGTERM $DPID"
  kill -TERM "$DPID" 2>/dev/null
  if ! wait_until "$secs" exited "$DPID"; then
    kill -KILL "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; DPID=
    fail "daemon did not exit within ${secs}s of SIGTERM (killed with -9)"
  fi
  if [ -n "$DDETACHED" ]; then
    # not our child (started by recover/upgrade): no exit code; its log is checked instead
    DRC=0; DPID=; DDETACHED=
    log "detached daemon exited"
    return 0
  fi
  wait "$DPID"; DRC=$?; DPID=
  log "daemon exited rc=$DRC"
  return 0
}

# kill9_daemon: kill -9 the daemon (child or detached), bounded wait until it is gone
kill9_daemon() {
  [ -n "$DPID" ] || fail "kill9_daemon: no daemon"
  log "kill -9 $DPID"
  kill -KILL "$DPID" 2>/dev/null
  wait_until 30 exited "$DPID" || fail "daemon $DPID still there 30s after kill -9"
  [ -n "$DDETACHED" ] || wait "$DPID" 2>/dev/null
  DPID= DDETACHED=
}

# ---------------------------------------------------------------- run state, recover, upgrade
# run_pid ID: the server pid recorded in the run state (empty if none)
run_pid() { tr -dc 0-9 2>/dev/null < "$UC_RUN_DIR/$1.pid"; }

# dev_state ID: the STATE column of `ublk-compose list` (live, quiesced, fail-io, dead; empty if absent)
dev_state() { timeout 30 "$UC_BIN" list 2>/dev/null | awk -v id="$1" '$1 == id { print $2 }'; }
state_is() { [ "$(dev_state "$1")" = "$2" ]; }

# dev_writes ID / dev_reads ID: completed write / read requests of /dev/ublkbID
dev_writes() { awk '{ print $5 }' "/sys/block/ublkb$1/stat" 2>/dev/null || echo 0; }
dev_reads() { awk '{ print $1 }' "/sys/block/ublkb$1/stat" 2>/dev/null || echo 0; }
writes_ge() { [ "$(dev_writes "$1")" -ge "$2" ]; }
reads_ge() { [ "$(dev_reads "$1")" -ge "$2" ]; }

# runlog_track: servers started by recover/upgrade log to $UC_RUN_DIR/$DID.log (appended): start it
# empty once per case and device id, and scan it with the other daemon logs
runlog_track() {
  local f=$UC_RUN_DIR/$DID.log
  [[ $RUNLOG_IDS == *" $DID "* ]] && return 0
  RUNLOG_IDS+="$DID "
  mkdir -p "$UC_RUN_DIR"; : > "$f"
  echo "$f" >> "$CASE_DIR/daemon-logs"
}

# adopt_server WHAT: the server recorded for $DID (started detached by recover/upgrade) becomes DPID
adopt_server() {
  local p
  p=$(run_pid "$DID")
  [ -n "$p" ] && alive "$p" || fail "$1: no running server recorded in $UC_RUN_DIR/$DID.pid (pid '$p')"
  grep -q ublk-compose "/proc/$p/cmdline" 2>/dev/null || fail "$1: pid $p in $UC_RUN_DIR/$DID.pid is not ublk-compose"
  DPID=$p DDETACHED=1
  echo "$p" >> "${E2E_PIDFILE:-/dev/null}"
  log "$1: server pid $p serves $DDEV"
}

# uc_cli TAG SECS ARGS...: run `ublk-compose ARGS` bounded, output in $CASE_DIR/TAG.{out,err}; sets CRC
uc_cli() {
  local tag=$1 secs=$2; shift 2
  log "run: ublk-compose $*"
  timeout -k 10 "$secs" "$UC_BIN" "$@" >"$CASE_DIR/$tag.out" 2>"$CASE_DIR/$tag.err" </dev/null
  CRC=$?
  [ "$CRC" = 124 ] || [ "$CRC" = 137 ] && fail "ublk-compose $* did not return within ${secs}s"
  log "ublk-compose $1 rc=$CRC: $(cat "$CASE_DIR/$tag.out" "$CASE_DIR/$tag.err" 2>/dev/null | head -c 300 | tr '\n' ' ')"
  return 0
}

# uc_recover TAG: `ublk-compose recover $DID` (its server died); the new server becomes DPID
uc_recover() {
  local tag=${1:-recover} t0=$SECONDS
  [ -z "$DPID" ] || fail "uc_recover: daemon $DPID still tracked"
  runlog_track
  uc_cli "$tag" 180 recover "$DID"
  [ "$CRC" = 0 ] || fail "ublk-compose recover $DID: rc $CRC: $(head -n2 "$CASE_DIR/$tag.err" | tr '\n' ' ') log: $(tail -n 3 "$UC_RUN_DIR/$DID.log" 2>/dev/null | tr '\n' ' ')"
  grep -qx "$DDEV" "$CASE_DIR/$tag.out" || fail "ublk-compose recover $DID printed '$(head -c 80 "$CASE_DIR/$tag.out")', want $DDEV"
  adopt_server "$tag"
  state_is "$DID" live || fail "$tag: device state '$(dev_state "$DID")' after recover, want live"
  log "$tag: recovered in $((SECONDS - t0))s"
}

# uc_upgrade TAG: `ublk-compose upgrade $DID` while the server runs; the new server becomes DPID
uc_upgrade() {
  local tag=${1:-upgrade} old=$DPID old_child t0=$SECONDS rc
  [ -n "$old" ] || fail "uc_upgrade: no daemon"
  old_child=$([ -z "$DDETACHED" ] && echo 1)
  runlog_track
  uc_cli "$tag" 180 upgrade "$DID"
  [ "$CRC" = 0 ] || fail "ublk-compose upgrade $DID: rc $CRC: $(head -n2 "$CASE_DIR/$tag.err" | tr '\n' ' ') log: $(tail -n 3 "$UC_RUN_DIR/$DID.log" 2>/dev/null | tr '\n' ' ')"
  grep -qx "$DDEV" "$CASE_DIR/$tag.out" || fail "ublk-compose upgrade $DID printed '$(head -c 80 "$CASE_DIR/$tag.out")', want $DDEV"
  wait_until 30 exited "$old" || fail "$tag: the old server $old still runs after upgrade returned"
  if [ -n "$old_child" ]; then
    wait "$old"; rc=$?
    [ "$rc" = 0 ] || fail "$tag: the old server exited rc=$rc after the hand-over (want 0)"
  fi
  DPID=
  adopt_server "$tag"
  [ "$DPID" != "$old" ] || fail "$tag: server pid unchanged ($old)"
  state_is "$DID" live || fail "$tag: device state '$(dev_state "$DID")' after upgrade, want live"
  log "$tag: pid $old -> $DPID in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- fio
# bg_fio TAG ARGS...: fio in the background (give --filename and jobs yourself); sets FIO_PID, FIO_TAG
bg_fio() {
  FIO_TAG=$1; shift
  log "fio $FIO_TAG (background): $*"
  fio --ioengine=io_uring --direct=1 "$@" </dev/null >"$CASE_DIR/$FIO_TAG.fio.log" 2>&1 &
  FIO_PID=$!; BG_PIDS+=("$FIO_PID")
}

# wait_bg_fio SECS: bounded wait for the background fio; sets FRC; fails on a hang
wait_bg_fio() {
  local secs=${1:-$E2E_FIO_TIMEOUT}
  if ! wait_until "$secs" exited "$FIO_PID"; then
    kill -KILL "$FIO_PID" 2>/dev/null
    fail "fio $FIO_TAG still running after ${secs}s (hang?): $(tail -n 2 "$CASE_DIR/$FIO_TAG.fio.log" | tr '\n' ' ')"
  fi
  wait "$FIO_PID"; FRC=$?
  log "fio $FIO_TAG exited rc=$FRC"
}

# stop_daemon_ok: stop and require exit 0 and the device nodes gone within 10 s
stop_daemon_ok() {
  local dev=$DDEV id=$DID
  stop_daemon
  [ "$DRC" = 0 ] || fail "daemon exit code $DRC after SIGTERM (want 0)"
  wait_until 10 gone "$dev" || fail "$dev still exists 10s after the daemon exited"
  wait_until 10 gone "/dev/ublkc$id" || fail "/dev/ublkc$id still exists 10s after the daemon exited"
}

# check_daemon_logs strict|crash: scan every daemon stderr of this case
check_daemon_logs() {
  local mode=${1:-strict} re f hit
  re=$E2E_ERR_RE; [ "$mode" = crash ] && re=$E2E_CRASH_RE
  [ -f "$CASE_DIR/daemon-logs" ] || return 0
  while read -r f; do
    [ -f "$f" ] || continue
    hit=$(grep -E -m1 -- "$re" "$f" || true)
    [ -z "$hit" ] || fail "daemon stderr ($(basename "$f")): ${hit:0:200}"
  done < "$CASE_DIR/daemon-logs"
}

# run_fio TAG [fio args...]: run fio against $DDEV (io_uring, O_DIRECT), bounded; checks exit code,
# per-job err= and verify messages. Output in $CASE_DIR/TAG.fio.log
run_fio() {
  local tag=$1; shift
  local out=$CASE_DIR/$tag.fio.log rc
  log "fio $tag: $*"
  timeout -k 10 "$E2E_FIO_TIMEOUT" fio --name="$tag" --filename="$DDEV" --ioengine=io_uring --direct=1 \
    "$@" </dev/null >"$out" 2>&1
  rc=$?
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && fail "fio $tag timed out after ${E2E_FIO_TIMEOUT}s"
  fio_check "$tag" "$rc"
}

# fio_check TAG RC: the checks of run_fio on $CASE_DIR/TAG.fio.log and exit code RC
fio_check() {
  local tag=$1 rc=$2 out=$CASE_DIR/$1.fio.log
  # verify complaints (job header lines name the job and options: leave them out)
  local vre='verify: bad|verify failed|verify error|bad magic|bad header|mismatch|wanted [0-9a-f]+ at'
  if grep -Ev '\(g(roupid)?=[0-9]+' "$out" | grep -Eiq "$vre"; then
    fail "fio $tag verify error: $(grep -Ev '\(g(roupid)?=[0-9]+' "$out" | grep -Ei -m1 "$vre" | cut -c1-160)"
  fi
  [ "$rc" = 0 ] || fail "fio $tag exit code $rc: $(grep -Ei -m1 'error|err=' "$out" | cut -c1-160)"
  if grep -E 'err= *[0-9]+' "$out" | grep -Evq 'err= *0[^0-9]'; then
    fail "fio $tag reported job errors: $(grep -E -m1 'err= *[1-9]' "$out" | cut -c1-160)"
  fi
  grep -Eq 'err= *0' "$out" || fail "fio $tag: no job result in output"
  log "fio $tag ok: $(grep -E -m2 '(READ|WRITE):' "$out" | sed 's/^ *//' | tr '\n' ' ')"
}

is_mounted() { mountpoint -q "$1"; }

# case_cleanup: EXIT trap of a case: unmount, kill helpers and our daemon, delete its device
case_cleanup() {
  local rc=$? p
  for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  if [ -n "${MNT:-}" ] && is_mounted "$MNT"; then
    timeout 60 umount "$MNT" 2>/dev/null || timeout 30 umount -l "$MNT" 2>/dev/null
  fi
  if [ -n "$DPID" ] && alive "$DPID"; then
    kill -TERM "$DPID" 2>/dev/null
    wait_until 30 exited "$DPID" || kill -KILL "$DPID" 2>/dev/null
    wait "$DPID" 2>/dev/null
  fi
  # a detached server (recover/upgrade) of our device that we did not track (yet)
  if [ -n "$DID" ]; then
    p=$(run_pid "$DID")
    if [ -n "$p" ] && alive "$p" && grep -q ublk-compose "/proc/$p/cmdline" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null
      wait_until 30 exited "$p" || kill -KILL "$p" 2>/dev/null
    fi
  fi
  for p in $RUNLOG_IDS; do cp "$UC_RUN_DIR/$p.log" "$CASE_DIR/run-$p.log" 2>/dev/null; done
  if [ -n "$DID" ] && [ -e "/dev/ublkc$DID" ]; then
    timeout 30 "$UC_BIN" del "$DID" >&2 2>&1 || true
  fi
  exit "$rc"
}

# ---------------------------------------------------------------- suite level (parent process)
E2E_PASSED=0 E2E_FAILED=0
E2E_FAILED_NAMES=()

# case_selected NAME: $E2E_CASES (space/comma separated globs, empty = all)
case_selected() {
  local name=$1 pat skips pats skip=${E2E_SKIP_CASES:-} sel=${E2E_CASES:-}
  # read -a: a pattern like systemd/* must not expand to files of the current directory
  read -r -a skips <<< "${skip//,/ }"
  read -r -a pats <<< "${sel//,/ }"
  for pat in "${skips[@]}"; do
    [[ $name == *$pat* ]] && return 1
  done
  [ -z "${E2E_CASES:-}" ] && return 0
  for pat in "${pats[@]}"; do
    # shellcheck disable=SC2053
    [[ $name == $pat ]] && return 0
    [[ $name == *$pat* ]] && [[ $pat != *[*?]* ]] && return 0
  done
  return 1
}

ublk_nodes() { ls /dev/ublkc* /dev/ublkb* 2>/dev/null | tr '\n' ' '; }

# run_case NAME FUNC [SECS]: run FUNC in a fresh child (bounded by SECS, default $E2E_CASE_TIMEOUT),
# print PASS/FAIL, keep counts
run_case() {
  local name=$1 func=$2 ctimeout=${3:-$E2E_CASE_TIMEOUT} cdir rc reason kmark leftover t0
  case_selected "$name" || return 0
  cdir=$E2E_LOGDIR/${name//\//_}
  rm -rf "$cdir"; mkdir -p "$cdir"
  kmark=$(dmesg 2>/dev/null | wc -l)
  t0=$SECONDS
  CASE_DIR=$cdir CASE_NAME=$name timeout -k 30 "$ctimeout" \
    bash "$E2E_CASES_SH" --one "$func" </dev/null >"$cdir/case.log" 2>&1
  rc=$?
  reason=$(head -n1 "$cdir/reason" 2>/dev/null)
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && reason="case timed out after ${ctimeout}s${reason:+; $reason}"
  [ "$rc" != 0 ] && [ -z "$reason" ] && reason="exit code $rc (see $cdir/case.log)"
  # kernel log since the case began
  dmesg 2>/dev/null | tail -n +"$((kmark + 1))" > "$cdir/dmesg.log"
  if [ "$rc" = 0 ] && grep -Eq "$E2E_KERN_RE" "$cdir/dmesg.log"; then
    rc=1; reason="kernel: $(grep -E -m1 "$E2E_KERN_RE" "$cdir/dmesg.log" | cut -c1-160)"
  fi
  # a case must not leave daemons or devices behind
  suite_reap
  leftover=$(ublk_nodes)
  if [ -n "$leftover" ]; then
    timeout 60 "$UC_BIN" del --all >>"$cdir/case.log" 2>&1
    sleep 1
    if [ "$rc" = 0 ]; then rc=1; reason="left ublk devices behind: $leftover"; fi
  fi
  if [ "$rc" = 0 ]; then
    echo "PASS: $name"
    E2E_PASSED=$((E2E_PASSED + 1))
  else
    echo "FAIL: $name ($reason)"
    E2E_FAILED=$((E2E_FAILED + 1)); E2E_FAILED_NAMES+=("$name")
    tail -n 15 "$cdir/case.log" | sed 's/^/  | /'
  fi
  log "$name: $((SECONDS - t0))s, logs in $cdir"
}

# suite_reap: kill daemons still running from the pid file (only if they are ublk-compose)
suite_reap() {
  local p
  [ -f "${E2E_PIDFILE:-}" ] || return 0
  while read -r p; do
    [ -n "$p" ] && [ -e "/proc/$p" ] || continue
    grep -q ublk-compose "/proc/$p/cmdline" 2>/dev/null || continue
    kill -TERM "$p" 2>/dev/null
    wait_until 20 test ! -e "/proc/$p" || kill -KILL "$p" 2>/dev/null
  done < "$E2E_PIDFILE"
  : > "$E2E_PIDFILE"
}

suite_cleanup() {
  local m
  suite_reap
  if [ -n "${E2E_WORK:-}" ] && [ -d "$E2E_WORK" ]; then
    for m in $(findmnt -rn -o TARGET 2>/dev/null | grep "^$E2E_WORK" | sort -r); do
      timeout 60 umount "$m" 2>/dev/null || timeout 30 umount -l "$m" 2>/dev/null
    done
  fi
  [ -n "$(ublk_nodes)" ] && [ -x "$UC_BIN" ] && timeout 60 "$UC_BIN" del --all >&2 2>&1
  if [ -n "${E2E_WORK:-}" ] && type drop_loops >/dev/null 2>&1; then
    for m in "$E2E_WORK"/*/; do drop_loops "$m"; done
  fi
  if [ -n "${E2E_WORK:-}" ] && [ -z "${E2E_KEEP:-}" ]; then rm -rf "$E2E_WORK"; fi
}

# child mode (cases*.sh --one NAME FUNC): run one case, cleaned up however it ends
case_child() {
  trap case_cleanup EXIT
  trap 'fail "interrupted (signal)"' TERM INT
  log "case $CASE_NAME ($1) on $(uname -r)"
  "$1"
  exit 0
}

# suite_start: the work dir, log dir and pid file every case of a suite shares; cleanup at exit
suite_start() {
  E2E_WORK=$(mktemp -d "${E2E_WORKDIR:-/var/tmp}/uc-e2e.XXXXXX")
  E2E_LOGDIR=${E2E_LOGDIR:-${VMRUN_OUT:-$REPO/build}/e2e-logs}
  E2E_PIDFILE=$E2E_WORK/pids
  mkdir -p "$E2E_LOGDIR"; : > "$E2E_PIDFILE"
  export E2E_WORK E2E_LOGDIR E2E_PIDFILE E2E_CASES_SH UC_BIN
  trap suite_cleanup EXIT
  trap 'exit 130' INT TERM
  # keep kernel I/O error messages off the (VM serial) console so they don't garble our output
  [ -n "${VMRUN_OUT:-}" ] && dmesg -n 1 2>/dev/null
  echo "E2E-KERNEL: $(uname -r)"
}

suite_summary() {
  echo "$E2E_PASSED passed, $E2E_FAILED failed"
  [ "$E2E_FAILED" = 0 ]
}
