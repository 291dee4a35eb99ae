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
#        E2E_VOLUMES (default "file stripe4 loop2 raid10 mirror2 mirror3 compress nbd"), timeouts: see lib.sh,
#        E2E_BATCH (true|false: device.batch in the generated configs; default: the daemon's),
#        E2E_NOBATCH_CASES (the cases run again with batch = false where the kernel batches, see
#        below; "" for none),
#        E2E_STRESS_ROUNDS (default 2): rounds of the stress case (each round: stop --force under I/O,
#        kill -9 + del, kill -9 + recover). The full count is 10:
#          E2E_STRESS_ROUNDS=10 bash tests/e2e/run.sh 'stripe4/stress*'
# Crash recovery / live upgrade cases (file and/or stripe4): recover-ext4-fio, upgrade-under-fio,
# lock, recovery-{reissue,requeue,off,fail}, stress. Servers started by `recover`/`upgrade` run
# detached (not our children): they are tracked through /run/ublk-compose/ID.pid (see lib.sh).
# Mirror (RAID1) cases: cases-mirror.sh (mirror2, mirror3 run only those and fio-randwrite-verify).
# nbd cases: cases-nbd.sh (the nbd "volume" runs only those; each starts its own nbdkit servers).
# Output: one `PASS: NAME` / `FAIL: NAME (reason)` line per case, then `N passed, N failed`.
set -u -o pipefail
E2E_CASES_SH=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$E2E_CASES_SH")/lib.sh"
# shellcheck source=tests/e2e/cases-mirror.sh
. "$(dirname "$E2E_CASES_SH")/cases-mirror.sh"
# shellcheck source=tests/e2e/cases-admin.sh
. "$(dirname "$E2E_CASES_SH")/cases-admin.sh"
# shellcheck source=tests/e2e/cases-fault.sh
. "$(dirname "$E2E_CASES_SH")/cases-fault.sh"
# shellcheck source=tests/e2e/cases-compress.sh
. "$(dirname "$E2E_CASES_SH")/cases-compress.sh"
# shellcheck source=tests/e2e/cases-nbd.sh
. "$(dirname "$E2E_CASES_SH")/cases-nbd.sh"

MIB=$((1 << 20))

# ---------------------------------------------------------------- configs
# gen_conf VOL QUEUES [RECOVERY] -> prints the config path; backing files live next to it (one set
# per VOL); RECOVERY sets device.recovery (reissue, requeue, fail, off; default: the daemon's)
gen_conf() {
  local vol=$1 q=$2 rec=${3:-} dir=$E2E_WORK/$1 batch=${E2E_BATCH:-}
  local conf=$dir/q$q${rec:+-$rec}.conf
  # "requeue" is per-tag by default (the @nobatch pass runs that): here it runs batched
  [ "$rec" = requeue ] && [ -z "$batch" ] && batch=true
  mkdir -p "$dir"
  {
    echo "device = { queues = $q; depth = 128; max_io = \"512K\"; block_size = 4096; id = -1;${rec:+ recovery = \"$rec\";}${batch:+ batch = $batch;} };"
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
      mirror2|mirror3)
        # RAID1 over 2 or 3 files (mirror_legs in cases-mirror.sh lists them)
        echo 'volume = { type = "mirror"; name = "m0"; children = ('
        echo '  { type = "file"; path = "m0.img"; size = "256M"; },'
        if [ "$vol" = mirror3 ]; then echo '  { type = "file"; path = "m1.img"; size = "256M"; },'
          echo '  { type = "file"; path = "m2.img"; size = "256M"; }'
        else echo '  { type = "file"; path = "m1.img"; size = "256M"; }'; fi
        echo '); };' ;;
      raid10)
        # a stripe over two 2-way mirrors
        echo 'volume = { type = "stripe"; chunk = "64K"; children = ('
        echo '  { type = "mirror"; name = "m0"; children = ('
        echo '    { type = "file"; path = "m0a.img"; size = "256M"; },'
        echo '    { type = "file"; path = "m0b.img"; size = "256M"; } ); },'
        echo '  { type = "mirror"; name = "m1"; children = ('
        echo '    { type = "file"; path = "m1a.img"; size = "256M"; },'
        echo '    { type = "file"; path = "m1b.img"; size = "256M"; } ); }'
        echo '); };' ;;
      compress)
        # 1G of zstd volume over a 512M file (thin)
        echo 'volume = { type = "compress"; name = "cz"; size = "1G"; children = ('
        echo '  { type = "file"; path = "c0.img"; size = "512M"; } ); };' ;;
      *) echo "unknown volume $vol" >&2; return 1 ;;
    esac
  } > "$conf"
  echo "$conf"
}

vol_bytes() { case $1 in file) echo $((256 * MIB));; stripe4) echo $((1024 * MIB));; loop2) echo $((512 * MIB));;
  mirror2|mirror3) echo $((255 * MIB));; raid10) echo $((510 * MIB));; compress) echo $((1024 * MIB));; esac; }  # mirror: 1M metadata per leg

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

# f. SIGTERM while fio runs: a kernel with UBLK_F_SAFE_STOP_DEV (7.0) sees the opener and the
#    stop is refused (the daemon keeps serving, fio keeps running); `stop --force` then stops it.
#    6.12 only refuses exclusive users (a mount): SIGTERM stops it. Either way: fio errors out
#    (no hang), daemon exits 0, the device nodes go away
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
  if grep -q 'added device .*SAFE_STOP' "$DERR"; then
    wait_until 30 grep -q "refusing to stop $dev .*in use (open)" "$DERR" ||
      fail "SIGTERM with fio holding $dev open was not refused: $(tail -n 2 "$DERR" | tr '\n' ' ')"
    sleep 1
    alive "$DPID" && alive "$fio_pid" || fail "the refused SIGTERM stopped the daemon or fio"
    uc_cli force-stop 120 stop --force "$did"
    [ "$CRC" = 0 ] || fail "stop --force under I/O: rc $CRC: $(cat "$CASE_DIR/force-stop.err")"
  fi
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

# g. kill -9 the daemon; a config of another name over the same (now unlocked) files is refused
#    with one line and makes no device; then `ublk-compose del ID` removes the device
case_kill9_del() {
  local id conf other nodes rc
  conf=$(gen_conf "$VOL" 2)
  start_daemon "$conf" daemon
  id=$DID
  kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
  sleep 1
  other=$(dirname "$conf")/other-name.conf nodes=$(ublk_nodes)
  cp "$conf" "$other"
  timeout -k 10 120 "$UC_BIN" -c "$other" > "$CASE_DIR/other.out" 2> "$CASE_DIR/other.err" </dev/null; rc=$?
  rm -f "$other"
  [ "$rc" = 1 ] && [ "$(wc -l < "$CASE_DIR/other.err")" = 1 ] &&
    grep -q "a backing file of /dev/ublkb$id (q2), whose server died" "$CASE_DIR/other.err" ||
    fail "a config over the files of a device without server: rc $rc: $(head -n 2 "$CASE_DIR/other.err" | tr '\n' ' ')"
  [ "$(ublk_nodes)" = "$nodes" ] || fail "the refused start changed the ublk nodes: '$(ublk_nodes)'"
  timeout 30 "$UC_BIN" list > "$CASE_DIR/list-before.txt" 2>&1 || log "list rc=$? (before del)"
  [ -e "/dev/ublkc$id" ] || log "note: /dev/ublkc$id already gone before del"
  timeout 60 "$UC_BIN" del "$id" > "$CASE_DIR/del.log" 2>&1 || fail "ublk-compose del $id failed (rc $?): $(head -n1 "$CASE_DIR/del.log")"
  wait_until 10 gone "/dev/ublkc$id" || fail "/dev/ublkc$id still exists after del"
  wait_until 10 gone "/dev/ublkb$id" || fail "/dev/ublkb$id still exists after del"
  timeout 30 "$UC_BIN" list > "$CASE_DIR/list-after.txt" 2>&1 || log "list rc=$? (after del)"
  DID=
  check_daemon_logs crash
}

# ---------------------------------------------------------------- crash recovery, live upgrade
kver_ge() {  # kver_ge MAJOR MINOR: the running kernel is at least MAJOR.MINOR
  local v ma mi
  v=$(uname -r | grep -oE '^[0-9]+\.[0-9]+'); ma=${v%%.*}; mi=${v#*.}
  [ "$ma" -gt "$1" ] || { [ "$ma" = "$1" ] && [ "$mi" -ge "$2" ]; }
}

# wait_quiesced: after kill -9 the device must be left quiesced (I/O waits for a new server)
wait_quiesced() {
  wait_until 30 state_is "$DID" quiesced ||
    fail "device $DID state '$(dev_state "$DID")' 30s after kill -9, want quiesced"
  timeout 30 "$UC_BIN" list > "$CASE_DIR/list-quiesced.txt" 2>&1
  log "device $DID quiesced: $(grep -E "^$DID " "$CASE_DIR/list-quiesced.txt")"
}

# h. ext4 + fio verify on a file; kill -9 the daemon mid-write; `recover ID`: fio completes and
#    verifies (a SIGHUP meanwhile reopens the server's rotated log), e2fsck clean, SIGTERM to the
#    recovered server removes the device
case_recover_ext4_fio() {
  local base dev id
  start_daemon "$(gen_conf "$VOL" 2)" daemon
  dev=$DDEV id=$DID
  timeout 300 mkfs.ext4 -q -F "$DDEV" || fail "mkfs.ext4 failed"
  MNT=$E2E_WORK/mnt-$VOL; mkdir -p "$MNT"
  timeout 60 mount "$DDEV" "$MNT" || fail "mount failed"
  base=$(dev_writes "$DID")
  bg_fio ext4 --name=ext4 --filename="$MNT/fio.dat" --rw=randwrite --bs=8k --iodepth=32 --size=48M \
    --verify=crc32c --verify_fatal=1 --do_verify=1 --fsync_on_close=1
  wait_until 120 writes_ge "$DID" $((base + 600)) || fail "fio: fewer than 600 writes in 120s"
  exited "$FIO_PID" && fail "fio finished before the kill (too fast to test): $(tail -n 2 "$CASE_DIR/ext4.fio.log" | tr '\n' ' ')"
  kill9_daemon
  sleep 1.5
  wait_quiesced
  exited "$FIO_PID" && fail "fio exited while no server ran (I/O must wait): $(grep -m1 -i err "$CASE_DIR/ext4.fio.log")"
  uc_recover recover
  # SIGHUP: the detached server reopens its log (rotated away), the device keeps serving
  mv "$UC_RUN_DIR/$DID.log" "$CASE_DIR/run-$DID-rotated.log"
  echo "$CASE_DIR/run-$DID-rotated.log" >> "$CASE_DIR/daemon-logs"
  kill -HUP "$DPID"
  wait_until 30 grep -q 'SIGHUP: re-read' "$UC_RUN_DIR/$DID.log" || fail "no SIGHUP line in a reopened $UC_RUN_DIR/$DID.log"
  alive "$DPID" || fail "SIGHUP stopped the server"
  wait_bg_fio "$E2E_FIO_TIMEOUT"
  fio_check ext4 "$FRC"
  rm -f "$MNT/fio.dat"
  timeout 120 umount "$MNT" || fail "umount failed"
  timeout 300 e2fsck -fn "$DDEV" > "$CASE_DIR/e2fsck.log" 2>&1 || fail "e2fsck -fn not clean after recovery (rc $?), see e2fsck.log"
  stop_daemon_ok
  [ -z "$(run_pid "$id")" ] || fail "run state $UC_RUN_DIR/$id.pid left after the server stopped"
  check_daemon_logs strict
}

# i. live upgrade twice while fio writes with verify (verify_backlog: reads interleave): no error
# kernel_has_quiesce: UBLK_F_QUIESCE (Linux >= 6.16), which live upgrade needs
kernel_has_quiesce() {
  local v; v=$(uname -r); v=${v%%-*}
  [ "$(printf '%s\n6.16\n' "${v%.*}" | sort -V | head -n1)" = 6.16 ]
}

case_upgrade_under_fio() {
  local base pids
  start_daemon "$(gen_conf "$VOL" 2)" daemon
  pids=$DPID
  base=$(dev_writes "$DID")
  if ! kernel_has_quiesce; then
    # without QUIESCE, exiting a server under load raced 6.12 into an io_uring refcount
    # underflow (kernel BUG): upgrade is refused there, and the server keeps serving
    bg_fio upg --name=upg --filename="$DDEV" --rw=randwrite --bs=8k --iodepth=32 --size=32M \
      --verify=crc32c --verify_fatal=1 --do_verify=1
    uc_cli upgrade-refused 60 upgrade "$DID"
    [ "$CRC" = 1 ] || fail "upgrade without QUIESCE: rc $CRC, want 1"
    grep -q "needs UBLK_F_QUIESCE" "$CASE_DIR/upgrade-refused.err" ||
      fail "upgrade without QUIESCE: no clear message: $(head -n1 "$CASE_DIR/upgrade-refused.err")"
    alive "$DPID" || fail "the server died after a refused upgrade"
    wait_bg_fio "$E2E_FIO_TIMEOUT"
    fio_check upg "$FRC"
    stop_daemon_ok
    check_daemon_logs strict
    return
  fi
  # 2 x 128M: with BATCH_IO on 7.x 2 x 64M were written before the second upgrade came
  bg_fio upg --name=upg --filename="$DDEV" --rw=randwrite --bs=8k --iodepth=32 --numjobs=2 --size=128M \
    --offset_increment=128M --verify=crc32c --verify_fatal=1 --do_verify=1 --verify_backlog=512
  for n in 1 2; do
    wait_until 180 writes_ge "$DID" $((base + n * 2500)) || fail "fio: fewer than $((n * 2500)) writes in 180s"
    exited "$FIO_PID" && fail "fio finished before upgrade $n (too fast to test)"
    uc_upgrade "upgrade$n"
    [[ " $pids " != *" $DPID "* ]] || fail "upgrade $n: server pid $DPID was used before ($pids)"
    pids+=" $DPID"
  done
  exited "$FIO_PID" && log "note: fio finished right after the second upgrade"
  wait_bg_fio "$E2E_FIO_TIMEOUT"
  fio_check upg "$FRC"
  log "server pids: $pids"
  stop_daemon_ok
  check_daemon_logs strict
}

# j. a second server of the same config is refused (exit 1, "already running", the name is taken);
#    one on the same backing files under another name too ("locked"); neither leaves a device;
#    `recover` of a live device is refused; the first server keeps serving
case_lock() {
  local conf other nodes pid1 rc
  conf=$(gen_conf "$VOL" 2)
  start_daemon "$conf" daemon
  pid1=$DPID nodes=$(ublk_nodes)
  log "second server on $conf"
  timeout -k 10 120 "$UC_BIN" -c "$conf" -v > "$CASE_DIR/second.out" 2> "$CASE_DIR/second.err" </dev/null; rc=$?
  [ "$rc" = 1 ] || fail "second server of the same config: exit $rc, want 1: $(head -n2 "$CASE_DIR/second.err" | tr '\n' ' ')"
  grep -q "q2 is already running: $DDEV, server pid $pid1" "$CASE_DIR/second.err" ||
    fail "second server: no 'already running' message: $(head -n2 "$CASE_DIR/second.err" | tr '\n' ' ')"
  other=$(dirname "$conf")/other.conf
  cp "$conf" "$other"
  timeout -k 10 120 "$UC_BIN" -c "$other" > "$CASE_DIR/third.out" 2> "$CASE_DIR/third.err" </dev/null; rc=$?
  [ "$rc" = 1 ] || fail "a server on the same files under another name: exit $rc, want 1: $(head -n2 "$CASE_DIR/third.err" | tr '\n' ' ')"
  [ "$(wc -l < "$CASE_DIR/third.err")" = 1 ] && grep -q 'in use by another ublk-compose (locked)' "$CASE_DIR/third.err" ||
    fail "another name on the same files: want one 'in use by another ublk-compose (locked)' line: $(head -n2 "$CASE_DIR/third.err" | tr '\n' ' ')"
  rm -f "$other"
  grep -q ublkb "$CASE_DIR/second.out" "$CASE_DIR/third.out" && fail "a refused server printed a device"
  [ "$(ublk_nodes)" = "$nodes" ] || fail "refused servers left ublk nodes: before '$nodes', after '$(ublk_nodes)'"
  alive "$pid1" || fail "the first server died"
  uc_cli recover-live 180 recover "$DID"
  [ "$CRC" != 0 ] || fail "recover of a device whose server runs succeeded"
  [ "$(run_pid "$DID")" = "$pid1" ] || fail "recover of a live device changed the recorded pid to '$(run_pid "$DID")'"
  [ "$(ublk_nodes)" = "$nodes" ] || fail "refused recover changed ublk nodes: '$(ublk_nodes)'"
  alive "$pid1" || fail "the first server died after the refused recover"
  state_is "$DID" live || fail "device state '$(dev_state "$DID")' after the refused recover"
  run_fio after-lock --rw=randwrite --bs=8k --iodepth=16 --size=16M --verify=crc32c --verify_fatal=1 --do_verify=1
  stop_daemon_ok
  check_daemon_logs strict
}

# k. reissue / requeue: I/O issued while no server runs waits (> 3 s) and completes after `recover`
recovery_wait() {
  local mode=$1 rpid wpid rc w=$E2E_WORK/$VOL
  start_daemon "$(gen_conf "$VOL" 2 "$mode")" daemon
  head -c $((1 * MIB)) /dev/urandom > "$w/pat1.bin"; head -c $((1 * MIB)) /dev/urandom > "$w/pat2.bin"
  timeout 60 dd if="$w/pat1.bin" of="$DDEV" bs=1M seek=4 oflag=direct conv=fsync status=none || fail "dd write failed"
  kill9_daemon
  wait_quiesced
  timeout -k 5 300 dd if="$DDEV" of="$w/read1.bin" bs=1M skip=4 count=1 iflag=direct status=none &
  rpid=$!; BG_PIDS+=("$rpid")
  timeout -k 5 300 dd if="$w/pat2.bin" of="$DDEV" bs=1M seek=8 oflag=direct conv=fsync status=none &
  wpid=$!; BG_PIDS+=("$wpid")
  sleep 3
  exited "$rpid" && fail "a read while no server ran did not wait (recovery=$mode)"
  exited "$wpid" && fail "a write while no server ran did not wait (recovery=$mode)"
  uc_recover recover
  wait_until 60 exited "$rpid" || fail "the waiting read did not complete within 60s of recover"
  wait "$rpid"; rc=$?; [ "$rc" = 0 ] || fail "the waiting read failed (rc $rc)"
  wait_until 60 exited "$wpid" || fail "the waiting write did not complete within 60s of recover"
  wait "$wpid"; rc=$?; [ "$rc" = 0 ] || fail "the waiting write failed (rc $rc)"
  cmp -s "$w/read1.bin" "$w/pat1.bin" || fail "data read across the recovery differs from what was written"
  timeout 60 dd if="$DDEV" bs=1M skip=8 count=1 iflag=direct status=none | cmp -s - "$w/pat2.bin" ||
    fail "data written across the recovery does not read back"
  rm -f "$w"/pat?.bin "$w/read1.bin"
  stop_daemon_ok
  check_daemon_logs strict
}
case_recovery_reissue() { recovery_wait reissue; }
case_recovery_requeue() { recovery_wait requeue; }

# l. recovery = "off": the device dies with its server (node gone, I/O fails), `del` cleans up
case_recovery_off() {
  local dev id base p
  start_daemon "$(gen_conf "$VOL" 2 off)" daemon
  dev=$DDEV id=$DID
  base=$(dev_reads "$DID")
  bg_fio off --name=off --filename="$DDEV" --rw=randread --bs=16k --iodepth=32 --size=256M \
    --time_based=1 --runtime=600
  wait_until 60 reads_ge "$DID" $((base + 200)) || fail "fio: fewer than 200 reads in 60s"
  kill9_daemon
  wait_until 10 gone "$dev" || fail "$dev still exists 10s after kill -9 with recovery=off"
  wait_bg_fio 60
  [ "$FRC" != 0 ] || fail "fio exited 0 although its device died"
  timeout 30 dd if="$dev" of=/dev/null bs=4k count=1 iflag=direct status=none 2>/dev/null &&
    fail "a read of $dev succeeded after its server died"
  uc_cli recover-off 180 recover "$id"
  [ "$CRC" != 0 ] || fail "recover of a device created with recovery=off succeeded"
  p=$(run_pid "$id")
  if [ -n "$p" ] && alive "$p" && grep -q ublk-compose "/proc/$p/cmdline" 2>/dev/null; then
    fail "a server (pid $p) runs for device $id after the refused recover"
  fi
  if [ -e "/dev/ublkc$id" ]; then
    uc_cli del 60 del "$id"
    [ "$CRC" = 0 ] || fail "ublk-compose del $id failed (rc $CRC): $(head -n1 "$CASE_DIR/del.err")"
  else
    log "note: /dev/ublkc$id already gone without del"
  fi
  wait_until 10 gone "/dev/ublkc$id" || fail "/dev/ublkc$id still exists after del"
  DID=
  check_daemon_logs crash
}

# m. recovery = "fail": Linux >= 6.13: I/O while no server runs fails fast, `recover` brings the
#    device back; older kernels: the daemon refuses to start with a clear message, no device left
case_recovery_fail() {
  local conf rc t0 w=$E2E_WORK/$VOL
  conf=$(gen_conf "$VOL" 2 fail)
  if ! kver_ge 6 13; then
    log "kernel $(uname -r) < 6.13: recovery = \"fail\" must be refused"
    timeout -k 10 120 "$UC_BIN" -c "$conf" -v > "$CASE_DIR/daemon.out" 2> "$CASE_DIR/daemon.err" </dev/null; rc=$?
    [ "$rc" = 1 ] || [ "$rc" = 2 ] || fail "daemon with recovery=fail on $(uname -r): exit $rc, want 1 (or 2)"
    grep -Eq 'recovery = "fail" is not supported.*6\.13' "$CASE_DIR/daemon.err" ||
      fail "no clear message for recovery=fail on $(uname -r): $(head -n3 "$CASE_DIR/daemon.err" | tr '\n' ' ')"
    grep -q ublkb "$CASE_DIR/daemon.out" && fail "daemon printed a device: $(head -n1 "$CASE_DIR/daemon.out")"
    [ -z "$(ublk_nodes)" ] || fail "ublk nodes left behind: $(ublk_nodes)"
    log "refused: $(grep -m1 'not supported' "$CASE_DIR/daemon.err")"
    return 0
  fi
  start_daemon "$conf" daemon
  head -c $((1 * MIB)) /dev/urandom > "$w/pat1.bin"
  timeout 60 dd if="$w/pat1.bin" of="$DDEV" bs=1M seek=4 oflag=direct conv=fsync status=none || fail "dd write failed"
  kill9_daemon
  wait_until 30 state_is "$DID" fail-io || fail "device state '$(dev_state "$DID")' 30s after kill -9, want fail-io"
  t0=$SECONDS
  timeout -k 5 60 dd if="$DDEV" of=/dev/null bs=4k count=1 skip=100 iflag=direct status=none 2>"$CASE_DIR/dd-read.err"; rc=$?
  [ "$rc" != 0 ] || fail "a read while no server ran succeeded (recovery=fail)"
  [ "$rc" != 124 ] && [ "$rc" != 137 ] || fail "a read while no server ran hung (recovery=fail)"
  [ $((SECONDS - t0)) -le 10 ] || fail "a read while no server ran took $((SECONDS - t0))s to fail (want <= 10s)"
  log "read while no server ran failed after $((SECONDS - t0))s (rc $rc): $(head -c 120 "$CASE_DIR/dd-read.err")"
  t0=$SECONDS
  timeout -k 5 60 dd if=/dev/zero of="$DDEV" bs=4k count=1 seek=100 oflag=direct status=none 2>"$CASE_DIR/dd-write.err"; rc=$?
  [ "$rc" != 0 ] || fail "a write while no server ran succeeded (recovery=fail)"
  [ $((SECONDS - t0)) -le 10 ] || fail "a write while no server ran took $((SECONDS - t0))s to fail (want <= 10s)"
  log "write while no server ran failed after $((SECONDS - t0))s (rc $rc)"
  uc_recover recover
  timeout 60 dd if="$DDEV" bs=1M skip=4 count=1 iflag=direct status=none | cmp -s - "$w/pat1.bin" ||
    fail "data does not read back after recover from fail-io"
  rm -f "$w/pat1.bin"
  stop_daemon_ok
  check_daemon_logs strict
}

# n. stress: fio at QD256 (writes with verify + reads, 2 queues x 128 tags) while, each round,
#    (a) stop --force under I/O, (b) kill -9 + del, (c) kill -9 + recover (fio must then finish clean).
#    Rounds: E2E_STRESS_ROUNDS (default 2; 10 for the full run).
stress_fio() {
  bg_fio "$1" --filename="$DDEV" \
    --name=w --rw=randwrite --bssplit=4k/50:16k/30:64k/20 --iodepth=128 --offset=0 --size=128M \
    --verify=crc32c --verify_fatal=1 --do_verify=1 --verify_backlog=1024 \
    --name=r --rw=randread --bs=16k --iodepth=128 --offset=512M --size=256M
}

case_stress() {
  local rounds=${E2E_STRESS_ROUNDS:-2} r kind conf base dev id
  conf=$(gen_conf "$VOL" 2)
  for ((r = 1; r <= rounds; r++)); do
    for kind in sigterm kill-del kill-recover; do
      log "---- round $r/$rounds: $kind"
      start_daemon "$conf" "r$r-$kind"
      dev=$DDEV id=$DID
      base=$(dev_writes "$DID")
      stress_fio "r$r-$kind"
      wait_until 120 writes_ge "$DID" $((base + 300 + RANDOM % 1500)) || fail "round $r $kind: fio made too little progress in 120s"
      exited "$FIO_PID" && fail "round $r $kind: fio finished before the fault (too fast to test)"
      case $kind in
        sigterm)
          # a stop under I/O: forced (SIGTERM would be refused while fio has it open, 7.x)
          uc_cli "r$r-stop" 120 stop --force "$id"
          [ "$CRC" = 0 ] || fail "round $r: stop --force under I/O: rc $CRC: $(head -n1 "$CASE_DIR/r$r-stop.err")"
          wait_bg_fio 120
          [ "$FRC" != 0 ] || fail "round $r: fio exited 0 although the device was stopped under it"
          stop_daemon 60
          [ "$DRC" = 0 ] || fail "round $r: daemon exit code $DRC after stop --force under I/O (want 0)" ;;
        kill-del)
          kill9_daemon
          sleep "0.$((RANDOM % 10))"
          log "state before del: $(timeout 30 "$UC_BIN" list 2>&1 | grep -E "^$id ")"
          uc_cli "r$r-del" 60 del "$id"
          [ "$CRC" = 0 ] || fail "round $r: ublk-compose del $id failed (rc $CRC): $(head -n1 "$CASE_DIR/r$r-del.err")"
          wait_bg_fio 120
          [ "$FRC" != 0 ] || fail "round $r: fio exited 0 although the device was deleted under it" ;;
        kill-recover)
          kill9_daemon
          sleep "$((RANDOM % 2)).$((RANDOM % 10))"
          uc_recover "r$r-recover"
          wait_bg_fio "$E2E_FIO_TIMEOUT"
          fio_check "r$r-$kind" "$FRC"
          stop_daemon ;;
      esac
      wait_until 20 gone "$dev" || fail "round $r $kind: $dev still exists 20s after the end"
      wait_until 20 gone "/dev/ublkc$id" || fail "round $r $kind: /dev/ublkc$id still exists 20s after the end"
      [ -z "$(ublk_nodes)" ] || fail "round $r $kind: ublk nodes left: $(ublk_nodes)"
      DID=
    done
  done
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

# the volumes that run the generic cases (mirror2, mirror3 run their own; loop2 what its block
# devices add: size, discard, a filesystem; the stop cases need one volume of each kind)
GENERIC=file,stripe4,loop2,raid10,compress
CASES=(
  # NAME FUNC [VOLUMES]: only on these volumes (none: every volume)
  "fio-randwrite-verify case_fio_randwrite file,stripe4,loop2,raid10,compress,mirror2"
  "fio-mixed-bs-verify case_fio_mixed file,stripe4,raid10,compress"
  "ext4-write case_ext4_write $GENERIC"
  "ext4-restart-verify case_ext4_restart $GENERIC"
  "discard-zeroes case_discard $GENERIC"
  "sigterm-under-io case_sigterm_under_io file,raid10,compress"
  "kill9-del case_kill9_del file,raid10,compress"
  # mirror (RAID1) cases, cases-mirror.sh
  "legs-identical case_mirror_legs_identical mirror2,mirror3,raid10"
  "kill9-dirty-resync case_mirror_kill9_resync mirror2"
  "fault-write case_mirror_fault_write mirror2"
  "dm-flakey case_mirror_dm_flakey mirror2"
  "read-errors case_mirror_read_errors mirror2"
  "assembly case_mirror_assembly mirror2"
  "nodiscard-leg case_mirror_nodiscard_leg mirror2"
  "${ADMIN_CASES[@]}"
  "${FAULT_CASES[@]}"
  "${COMPRESS_CASES[@]}"
  "${NBD_CASES[@]}"
  "recover-ext4-fio case_recover_ext4_fio raid10,compress"
  "lock case_lock stripe4"
  "recovery-reissue case_recovery_reissue stripe4"
  "recovery-requeue case_recovery_requeue stripe4"
  "recovery-off case_recovery_off stripe4"
  "recovery-fail case_recovery_fail stripe4"
  "stress case_stress raid10"
  # last: on 6.12 a failing hand-over can wedge the kernel (see the report in git log)
  "upgrade-under-fio case_upgrade_under_fio file,stripe4"
)

# Which VM runs which case (E2E_KERNEL = lts | latest, set by run.sh; empty on a host with ublk:
# all). A case whose path depends on the kernel runs on both: the data path (copy on 6.12, zero
# copy with AUTO_BUF_REG on 7.x) and the control plane (stop, kill -9, recovery modes, upgrade,
# stress). A case that tests a layer's own logic (the same code on either kernel: compress always
# copies, mirror metadata and admin commands, the fault layer's write cache) runs on one of the
# two, split so that the two VMs take about as long. E2E_ALL_KERNELS=1, or naming cases
# (E2E_CASES or arguments), runs every selected case on both.
LTS_ONLY="config/check file/fio-mixed-bs-verify file/ext4-restart-verify stripe4/ext4-restart-verify
  loop2/ext4-restart-verify file/discard-zeroes stripe4/discard-zeroes raid10/discard-zeroes stripe4/lock
  file/powercut-fio file/powercut-ext4 raid10/admin-add raid10/sigterm-under-io raid10/kill9-del
  compress/fio-mixed-bs-verify compress/ext4-write compress/ext4-restart-verify compress/discard-zeroes
  compress/sigterm-under-io compress/kill9-del compress/compress-ratio compress/compress-ext4-tree
  compress/compress-crash compress/compress-enospc compress/compress-corrupt compress/compress-confs
  nbd/bad-input"
LATEST_ONLY="compress/compress-powercut compress/recover-ext4-fio raid10/admin-status raid10/admin-scrub
  raid10/admin-bad-input raid10/admin-resync-resume raid10/admin-replace-online raid10/legs-identical
  mirror2/legs-identical mirror2/kill9-dirty-resync mirror2/dm-flakey mirror2/assembly mirror3/legs-identical
  mirror2/nodiscard-leg nbd/hung-server nbd/mirror-user-copy"

# kernel_batches: the daemon uses UBLK_F_BATCH_IO on this kernel (it says so at -v)
kernel_batches() {
  local d=$E2E_WORK/probe pid rc=1
  mkdir -p "$d"
  printf 'device = { queues = 1; };\nvolume = { type = "file"; path = "p.img"; size = "16M"; };\n' > "$d/p.conf"
  "$UC_BIN" -c "$d/p.conf" -v > "$d/out" 2> "$d/err" </dev/null &
  pid=$!
  echo "$pid" >> "$E2E_PIDFILE"
  wait_until 60 grep -q ublkb "$d/out"
  grep -q 'batched commands' "$d/err" && rc=0
  kill -TERM "$pid" 2>/dev/null
  wait_until 60 exited "$pid" || kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  log "probe: $(grep -m1 'I/O path' "$d/err")"
  rm -rf "$d"
  return $rc
}

# kernel_split: this VM runs only its share (a VM run, no E2E_ALL_KERNELS, no cases named)
kernel_split() { [ -n "${E2E_KERNEL:-}" ] && [ -z "${E2E_ALL_KERNELS:-}" ] && [ -z "${E2E_CASES:-}" ]; }

# case_kernel_on NAME: NAME runs in this VM
case_kernel_on() {
  kernel_split || return 0
  case $E2E_KERNEL in
    lts) [[ " ${LATEST_ONLY//$'\n'/ } " != *" $1 "* ]] ;;
    latest) [[ " ${LTS_ONLY//$'\n'/ } " != *" $1 "* ]] ;;
    *) return 0 ;;
  esac
}

# case_on CASE-ENTRY VOL: the entry applies to VOL
case_on() {
  local vols
  read -r _ _ vols <<< "$1"
  [ -z "$vols" ] || [[ ",$vols," == *",$2,"* ]]
}

# the stress case gets more time: about 5 min per round under TCG, at least E2E_CASE_TIMEOUT
case_secs() {
  local s=$E2E_CASE_TIMEOUT
  if [ "$1" = case_stress ]; then
    s=$((300 * ${E2E_STRESS_ROUNDS:-2} + 300)); [ "$s" -ge "$E2E_CASE_TIMEOUT" ] || s=$E2E_CASE_TIMEOUT
  fi
  echo "$s"
}

all_names() {
  local v c
  echo "config/check"
  for v in ${E2E_VOLUMES:-file stripe4 loop2 raid10 mirror2 mirror3 compress nbd}; do
    for c in "${CASES[@]}"; do case_on "$c" "$v" && echo "$v/${c%% *}"; done
  done
}

# ---------------------------------------------------------------- child mode: one case
if [ "${1:-}" = --one ]; then
  VOL=${CASE_NAME%%/*}
  case_child "$2"
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

suite_start
log "work dir $E2E_WORK, logs $E2E_LOGDIR, binary $UC_BIN"
[ -n "$(ublk_nodes)" ] && log "warning: ublk devices exist before the run: $(ublk_nodes)"

# a name in LTS_ONLY/LATEST_ONLY that is no case, or is in both, would drop a case unseen
split_bad=$(all_names | awk -v lts="$LTS_ONLY" -v lat="$LATEST_ONLY" '
  { known[$1] = 1 }
  END { n = split(lts, a); for (i = 1; i <= n; i++) { in_lts[a[i]] = 1; if (!(a[i] in known)) print "unknown " a[i] }
        n = split(lat, b); for (i = 1; i <= n; i++) { if (!(b[i] in known)) print "unknown " b[i]; if (b[i] in in_lts) print "both " b[i] } }')
if [ -n "$split_bad" ]; then
  echo "FAIL: e2e/kernel-split (LTS_ONLY/LATEST_ONLY: $(echo $split_bad))"; E2E_FAILED=$((E2E_FAILED + 1))
fi
kernel_split && log "the $E2E_KERNEL VM: cases that depend on the kernel, and its share of the others (E2E_ALL_KERNELS=1: all)"
case_kernel_on config/check && run_case config/check case_check_config
for VOL in ${E2E_VOLUMES:-file stripe4 loop2 raid10 mirror2 mirror3 compress nbd}; do
  for c in "${CASES[@]}"; do
    case_on "$c" "$VOL" || continue
    read -r cname cfunc _ <<< "$c"
    case_kernel_on "$VOL/$cname" || continue
    run_case "$VOL/$cname" "$cfunc" "$(case_secs "$cfunc")"
  done
  drop_loops "$E2E_WORK/$VOL"
  rm -rf "${E2E_WORK:?}/$VOL"   # free the backing files (tmpfs in the VM)
done

# The control path of the per-tag commands where the kernel batches (UBLK_F_BATCH_IO, 7.x: the
# daemon's default there): the cases that stop, kill, recover and hand over a device under I/O run
# again with batch = false. The data path runs once (batched on 7.x, per-tag on 6.12).
NOBATCH_CASES=${E2E_NOBATCH_CASES-"file/sigterm-under-io file/kill9-del raid10/recover-ext4-fio
  stripe4/recovery-reissue stripe4/recovery-requeue stripe4/recovery-off stripe4/recovery-fail
  raid10/stress file/upgrade-under-fio stripe4/upgrade-under-fio"}
nobatch=()
for n in $NOBATCH_CASES; do case_selected "$n@nobatch" && nobatch+=("$n"); done
if [ ${#nobatch[@]} -gt 0 ] && kernel_batches; then
  log "the kernel batches: ${#nobatch[@]} cases again with batch = false"
  for n in "${nobatch[@]}"; do
    for c in "${CASES[@]}"; do
      read -r cname cfunc _ <<< "$c"
      [ "$cname" = "${n#*/}" ] && case_on "$c" "${n%%/*}" || continue
      E2E_BATCH=false run_case "$n@nobatch" "$cfunc" "$(case_secs "$cfunc")"
      drop_loops "$E2E_WORK/${n%%/*}"
      rm -rf "${E2E_WORK:?}/${n%%/*}"
    done
  done
fi

suite_summary
