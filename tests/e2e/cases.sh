#!/bin/bash
# tests/e2e/cases.sh: ublk-compose end-to-end cases. Needs root and /dev/ublk-control (run it through
# tests/e2e/run.sh, which boots a VM when the host has no ublk_drv).
#
# usage: cases.sh [PATTERN...]      PATTERN: glob or substring of case names (also $E2E_CASES,
#                                    comma/space separated), e.g. 'stripe4/*' or discard
#        cases.sh --list            print the case names
# env:   UC_BIN (default build/ublk-compose), E2E_WORKDIR (parent of the tmp dir holding configs and
#        backing files; default /var/tmp, a tmpfs in the VM), E2E_LOGDIR (default
#        $VMRUN_OUT/e2e-logs or build/e2e-logs), E2E_KEEP=1 keeps the work dir,
#        E2E_VOLUMES (default "file stripe4 loop2"), timeouts: see lib.sh.
# Output: one `PASS: NAME` / `FAIL: NAME (reason)` line per case, then `N passed, N failed`.
set -u -o pipefail
E2E_CASES_SH=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$E2E_CASES_SH")/lib.sh"

MIB=$((1 << 20))

# ---------------------------------------------------------------- configs
# gen_conf VOL QUEUES -> prints the config path; backing files live next to it (one set per VOL)
gen_conf() {
  local vol=$1 q=$2 dir=$E2E_WORK/$1
  local conf=$dir/q$q.conf
  mkdir -p "$dir"
  {
    echo "device = { queues = $q; depth = 128; max_io = \"512K\"; block_size = 4096; id = -1; };"
    case $vol in
      file)
        echo 'volume = { type = "file"; path = "f0.img"; size = "256M"; };' ;;
      stripe4)
        echo 'volume = { type = "stripe"; chunk = "64K"; children = ('
        echo '  { type = "file"; path = "d0.img"; size = "256M"; },'
        echo '  { type = "file"; path = "d1.img"; size = "256M"; },'
        echo '  { type = "file"; path = "d2.img"; size = "256M"; },'
        echo '  { type = "file"; path = "d3.img"; size = "256M"; }'
        echo '); };' ;;
      loop2)
        # a stripe over two loop block devices: the block-device leaf (size, discard)
        local l0 l1
        l0=$(loop_dev "$dir" 0) && l1=$(loop_dev "$dir" 1) || return 1
        echo 'volume = { type = "stripe"; chunk = "128K"; children = ('
        echo "  { type = \"file\"; path = \"$l0\"; },"
        echo "  { type = \"file\"; path = \"$l1\"; }"
        echo '); };' ;;
      *) echo "unknown volume $vol" >&2; return 1 ;;
    esac
  } > "$conf"
  echo "$conf"
}

vol_bytes() { case $1 in file) echo $((256 * MIB));; stripe4) echo $((1024 * MIB));; loop2) echo $((512 * MIB));; esac; }

# loop_dev DIR N: a direct-I/O loop device over DIR/loopN.img (256M), made once per volume
loop_dev() {
  local img=$1/loop$2.img dev
  dev=$(losetup -j "$img" -O NAME -n 2>/dev/null | head -n1)
  if [ -z "$dev" ]; then
    truncate -s 256M "$img" || return 1
    dev=$(losetup --direct-io=on -f --show "$img" 2>/dev/null || losetup -f --show "$img") || return 1
  fi
  echo "$dev"
}

# detach the loop devices of a volume's directory
drop_loops() {
  local img
  for img in "$1"/loop*.img; do
    [ -e "$img" ] || continue
    losetup -j "$img" -O NAME -n 2>/dev/null | xargs -r -n1 losetup -d 2>/dev/null
  done
}

check_size() {
  local want got
  want=$(vol_bytes "$VOL")
  got=$(blockdev --getsize64 "$DDEV" 2>/dev/null)
  [ "$got" = "$want" ] || fail "$DDEV size $got, want $want"
}

# ---------------------------------------------------------------- cases (run in a child, see lib.sh)
# a. random 8k writes, iodepth 32, crc32c verify
case_fio_randwrite() {
  start_daemon "$(gen_conf "$VOL" 2)" daemon
  check_size
  run_fio randwrite --rw=randwrite --bs=8k --iodepth=32 --size=64M \
    --verify=crc32c --verify_fatal=1 --do_verify=1
  stop_daemon_ok
  check_daemon_logs strict
}

# b. mixed block sizes (split over max_io), 2 jobs each in its own region, queues=2
case_fio_mixed() {
  start_daemon "$(gen_conf "$VOL" 2)" daemon
  run_fio mixed --rw=randwrite --bssplit=4k/25:16k/20:64k/20:256k/15:1m/20 --iodepth=16 \
    --numjobs=2 --size=48M --offset_increment=64M --verify=crc32c --verify_fatal=1 --do_verify=1
  run_fio mixed-rw --rw=randrw --bsrange=4k-1m --iodepth=16 --numjobs=2 --size=48M \
    --offset_increment=64M
  stop_daemon_ok
  check_daemon_logs strict
}

# c. ext4: mkfs, mount, write files, record sha256sums, umount, fsck
case_ext4_write() {
  local d sums=$E2E_WORK/$VOL/sha256sums
  rm -f "$sums"
  start_daemon "$(gen_conf "$VOL" 2)" daemon
  timeout 300 mkfs.ext4 -q -F "$DDEV" || fail "mkfs.ext4 failed"
  MNT=$E2E_WORK/mnt-$VOL; mkdir -p "$MNT"
  timeout 60 mount "$DDEV" "$MNT" || fail "mount failed"
  mkdir -p "$MNT/doc" "$MNT/rand"
  for d in bash coreutils fio e2fsprogs util-linux libc6 gcc-12 cmake; do
    [ -d "/usr/share/doc/$d" ] && { timeout 120 cp -r "/usr/share/doc/$d" "$MNT/doc/" || fail "cp $d failed"; }
  done
  for d in 1 2 3 4; do
    timeout 120 dd if=/dev/urandom of="$MNT/rand/r$d" bs=1M count=$((d * 4)) status=none || fail "dd r$d failed"
  done
  timeout 120 dd if=/dev/urandom of="$MNT/rand/small" bs=4097 count=3 status=none
  (cd "$MNT" && find . -type f ! -path './lost+found/*' -print0 | sort -z | xargs -0 sha256sum) > "$sums.tmp" \
    || fail "sha256sum failed"
  [ "$(wc -l < "$sums.tmp")" -ge 5 ] || fail "too few files written"
  timeout 120 sync || fail "sync hung"
  timeout 120 umount "$MNT" || fail "umount failed"
  timeout 300 e2fsck -fn "$DDEV" > "$CASE_DIR/e2fsck.log" 2>&1 || fail "e2fsck -fn not clean (rc $?), see e2fsck.log"
  stop_daemon_ok
  check_daemon_logs strict
  mv "$sums.tmp" "$sums"
  log "$(wc -l < "$sums") files recorded"
}

# d. restart the daemon on the same config: the files written by c are intact
case_ext4_restart() {
  local sums=$E2E_WORK/$VOL/sha256sums
  [ -s "$sums" ] || fail "no sha256sums from the ext4-write case (did it run and pass?)"
  start_daemon "$(gen_conf "$VOL" 2)" daemon-restart
  MNT=$E2E_WORK/mnt-$VOL; mkdir -p "$MNT"
  timeout 60 mount "$DDEV" "$MNT" || fail "mount after restart failed"
  (cd "$MNT" && timeout 300 sha256sum --quiet -c "$sums") > "$CASE_DIR/sha256-check.log" 2>&1 \
    || fail "sha256 mismatch after restart: $(head -n1 "$CASE_DIR/sha256-check.log")"
  timeout 120 umount "$MNT" || fail "umount failed"
  timeout 300 e2fsck -fn "$DDEV" > "$CASE_DIR/e2fsck.log" 2>&1 || fail "e2fsck -fn not clean after restart"
  stop_daemon_ok
  check_daemon_logs strict
}

# e. discard reads back as zeros
case_discard() {
  local off=$((8 * MIB)) len=$((16 * MIB)) dmax
  start_daemon "$(gen_conf "$VOL" 2)" daemon
  dmax=$(cat "/sys/block/ublkb$DID/queue/discard_max_bytes" 2>/dev/null || echo 0)
  [ "${dmax:-0}" -gt 0 ] || fail "discard not supported (discard_max_bytes=$dmax)"
  head -c "$len" /dev/urandom > "$E2E_WORK/rand.bin"
  timeout 120 dd if="$E2E_WORK/rand.bin" of="$DDEV" bs=1M seek=$((off / MIB)) oflag=direct conv=fsync status=none \
    || fail "dd write failed"
  timeout 120 dd if="$DDEV" bs=1M skip=$((off / MIB)) count=$((len / MIB)) iflag=direct status=none \
    | cmp -s - "$E2E_WORK/rand.bin" || fail "written data does not read back"
  timeout 120 blkdiscard -o "$off" -l "$len" "$DDEV" || fail "blkdiscard failed"
  timeout 120 dd if="$DDEV" bs=1M skip=$((off / MIB)) count=$((len / MIB)) iflag=direct status=none \
    | cmp -n "$len" - /dev/zero || fail "discarded range does not read back as zeros"
  rm -f "$E2E_WORK/rand.bin"
  stop_daemon_ok
  check_daemon_logs strict
}

# f. SIGTERM while fio runs: fio errors out (no hang), daemon exits, device node goes away
case_sigterm_under_io() {
  local fio_pid fout=$CASE_DIR/bg.fio.log dev did frc end
  start_daemon "$(gen_conf "$VOL" 2)" daemon
  dev=$DDEV did=$DID
  fio --name=bg --filename="$DDEV" --ioengine=io_uring --direct=1 --rw=randrw --bs=16k --iodepth=32 \
    --numjobs=2 --size=64M --time_based=1 --runtime=600 </dev/null >"$fout" 2>&1 &
  fio_pid=$!; BG_PIDS+=("$fio_pid")
  # let I/O get going (wait for the device to have in-flight I/O or 30 s)
  wait_until 30 awk '{exit !($1+$5 > 200)}' "/sys/block/ublkb$did/stat" || log "warning: little I/O seen before SIGTERM"
  sleep 2
  alive "$fio_pid" || fail "fio exited before SIGTERM: $(tail -n 3 "$fout" | tr '\n' ' ')"
  kill -TERM "$DPID"
  end=$((SECONDS + 120))
  wait_until 120 exited "$fio_pid" || fail "fio still running 120s after the daemon got SIGTERM (hang)"
  wait "$fio_pid"; frc=$?
  log "fio exited rc=$frc after $((SECONDS + 120 - end))s"
  wait_until 60 exited "$DPID" || fail "daemon did not exit within 60s+ of SIGTERM under I/O"
  wait "$DPID"; DRC=$?; DPID=
  [ "$frc" != 0 ] || fail "fio exited 0 although its device went away"
  wait_until 10 gone "$dev" || fail "$dev still exists 10s after daemon exit"
  wait_until 10 gone "/dev/ublkc$did" || fail "/dev/ublkc$did still exists 10s after daemon exit"
  [ "$DRC" = 0 ] || fail "daemon exit code $DRC after SIGTERM under I/O (want 0)"
  check_daemon_logs crash
}

# g. kill -9 the daemon, then `ublk-compose del ID` removes the device
case_kill9_del() {
  local id
  start_daemon "$(gen_conf "$VOL" 2)" daemon
  id=$DID
  kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
  sleep 1
  timeout 30 "$UC_BIN" list > "$CASE_DIR/list-before.txt" 2>&1 || log "list rc=$? (before del)"
  [ -e "/dev/ublkc$id" ] || log "note: /dev/ublkc$id already gone before del"
  timeout 60 "$UC_BIN" del "$id" > "$CASE_DIR/del.log" 2>&1 || fail "ublk-compose del $id failed (rc $?): $(head -n1 "$CASE_DIR/del.log")"
  wait_until 10 gone "/dev/ublkc$id" || fail "/dev/ublkc$id still exists after del"
  wait_until 10 gone "/dev/ublkb$id" || fail "/dev/ublkb$id still exists after del"
  timeout 30 "$UC_BIN" list > "$CASE_DIR/list-after.txt" 2>&1 || log "list rc=$? (after del)"
  DID=
  check_daemon_logs crash
}

# config validation (no device needed)
case_check_config() {
  local conf bad rc
  conf=$(gen_conf stripe4 2)
  timeout 30 "$UC_BIN" check -c "$conf" > "$CASE_DIR/check.out" 2> "$CASE_DIR/check.err" \
    || fail "check of a valid config failed (rc $?): $(head -n1 "$CASE_DIR/check.err")"
  grep -q stripe "$CASE_DIR/check.out" || fail "check output does not show the stripe layer"
  bad=$E2E_WORK/bad.conf
  printf 'device = { queues = 2; };\nvolume = { type = "stripe"; chunk = "64K";\n  children = ( { type = "file"; path = "x.img"; size = "1M"; } ); };\n' > "$bad"
  timeout 30 "$UC_BIN" check -c "$bad" > /dev/null 2> "$CASE_DIR/bad.err"; rc=$?
  [ "$rc" = 2 ] || fail "check of a stripe with 1 child: exit $rc, want 2"
  grep -Eq "^$bad:[0-9]+: " "$CASE_DIR/bad.err" || fail "bad config message not 'FILE:LINE: msg': $(head -n1 "$CASE_DIR/bad.err")"
  printf 'volume = { type = "file"; path = "x.img" \n' > "$bad"
  timeout 30 "$UC_BIN" check -c "$bad" > /dev/null 2> "$CASE_DIR/bad2.err"; rc=$?
  [ "$rc" = 2 ] || fail "check of a syntax error: exit $rc, want 2"
  grep -Eq "^$bad:[0-9]+: " "$CASE_DIR/bad2.err" || fail "syntax error message not 'FILE:LINE: msg': $(head -n1 "$CASE_DIR/bad2.err")"
}

CASES=(
  "fio-randwrite-verify case_fio_randwrite"
  "fio-mixed-bs-verify case_fio_mixed"
  "ext4-write case_ext4_write"
  "ext4-restart-verify case_ext4_restart"
  "discard-zeroes case_discard"
  "sigterm-under-io case_sigterm_under_io"
  "kill9-del case_kill9_del"
)

all_names() {
  local v c
  echo "config/check"
  for v in ${E2E_VOLUMES:-file stripe4 loop2}; do for c in "${CASES[@]}"; do echo "$v/${c%% *}"; done; done
}

# ---------------------------------------------------------------- child mode: one case
if [ "${1:-}" = --one ]; then
  VOL=${CASE_NAME%%/*}
  trap case_cleanup EXIT
  trap 'fail "interrupted (signal)"' TERM INT
  log "case $CASE_NAME ($2) on $(uname -r)"
  "$2"
  exit 0
fi

if [ "${1:-}" = --list ]; then all_names; exit 0; fi

# ---------------------------------------------------------------- suite
[ $# -gt 0 ] && E2E_CASES="${E2E_CASES:-} $*"
export E2E_CASES
[ "$(id -u)" = 0 ] || { echo "cases.sh: needs root" >&2; exit 2; }
[ -e /dev/ublk-control ] || { echo "cases.sh: no /dev/ublk-control (use tests/e2e/run.sh)" >&2; exit 2; }
[ -x "$UC_BIN" ] || { echo "cases.sh: $UC_BIN not built" >&2; exit 2; }
for t in fio mkfs.ext4 e2fsck blkdiscard blockdev cmp sha256sum timeout findmnt mountpoint; do
  command -v "$t" >/dev/null || { echo "cases.sh: missing tool $t" >&2; exit 2; }
done

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
log "work dir $E2E_WORK, logs $E2E_LOGDIR, binary $UC_BIN"
[ -n "$(ublk_nodes)" ] && log "warning: ublk devices exist before the run: $(ublk_nodes)"

run_case config/check case_check_config
for VOL in ${E2E_VOLUMES:-file stripe4 loop2}; do
  for c in "${CASES[@]}"; do
    run_case "$VOL/${c%% *}" "${c##* }"
  done
  drop_loops "$E2E_WORK/$VOL"
  rm -rf "${E2E_WORK:?}/$VOL"   # free the backing files (tmpfs in the VM)
done

suite_summary
