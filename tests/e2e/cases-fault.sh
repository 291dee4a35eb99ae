# shellcheck shell=bash
# tests/e2e/cases-fault.sh: the fault layer's power-cut emulator (lose_unflushed), sourced by
# cases.sh. A fault layer over one file keeps writes in memory until a FLUSH; `ctl ... crash on`
# drops the rest, as a power cut would. The daemon is then killed and the file served plain.
#   powercut-fio    a pattern written and fsynced survives, a pattern written after it is gone
#   powercut-ext4   ext4 with files synced, more files written, power cut: the journal replays,
#                   e2fsck is clean and every synced file is intact

# powercut_conf NAME [RECOVERY]: fault(lose_unflushed) over $E2E_WORK/file/pc-NAME.img (256M), and
# the same file plain; sets PC_CONF, PC_PLAIN
powercut_conf() {
  local d=$E2E_WORK/$VOL/pc
  mkdir -p "$d"; rm -f "$d/$1.img"
  PC_CONF=$d/$1-fault.conf PC_PLAIN=$d/$1-plain.conf
  {
    echo "device = { queues = 2; depth = 64; max_io = \"512K\"; block_size = 4096;${2:+ recovery = \"$2\";} };"
    echo "volume = { type = \"fault\"; name = \"disk\"; lose_unflushed = true; unflushed_max = \"128M\";"
    echo "  children = ( { type = \"file\"; path = \"$1.img\"; size = \"256M\"; } ); };"
  } > "$PC_CONF"
  {
    echo 'device = { queues = 2; depth = 64; max_io = "512K"; block_size = 4096; };'
    echo "volume = { type = \"file\"; path = \"$1.img\"; size = \"256M\"; };"
  } > "$PC_PLAIN"
}

# power_cut TAG: `ctl ID disk crash on`; the reply says how much was lost; sets LOST (bytes)
power_cut() {
  uc_cli "$1" 60 ctl "$DID" disk crash on
  [ "$CRC" = 0 ] || fail "ctl crash on: rc $CRC: $(cat "$CASE_DIR/$1.err")"
  LOST=$(sed -n 's/^crash=on: \([0-9]*\) bytes.*/\1/p' "$CASE_DIR/$1.out")
  [ -n "$LOST" ] || fail "crash reply: $(cat "$CASE_DIR/$1.out")"
  log "power cut: $LOST bytes lost"
}

case_powercut_fio() {
  local id
  powercut_conf fio
  start_daemon "$PC_CONF"
  # A: 0-32M, fsynced at the end; B: 64M-80M, never flushed
  run_fio a --rw=write --bs=64k --iodepth=8 --offset=0 --size=32M --verify=crc32c --do_verify=0 --end_fsync=1
  run_fio b --rw=write --bs=64k --iodepth=8 --offset=64M --size=16M --do_verify=0
  timeout 30 "$UC_BIN" status "$DID" > "$CASE_DIR/status.txt" 2>&1
  grep -q 'lose_unflushed unflushed=16777216' "$CASE_DIR/status.txt" ||
    fail "status does not show B unflushed: $(grep ' disk ' "$CASE_DIR/status.txt")"
  power_cut crash
  [ "$LOST" = $((16 * MIB)) ] || fail "lost $LOST bytes, want 16M (B)"
  timeout 30 dd if="$DDEV" of=/dev/null bs=4k count=1 iflag=direct status=none 2> "$CASE_DIR/dd-after.err" &&
    fail "a read after the power cut succeeded"
  id=$DID
  kill9_daemon
  uc_cli del 60 del "$id"
  DID=
  # the file alone: A is there, B never reached it
  start_daemon "$PC_PLAIN" plain
  run_fio a-check --rw=write --bs=64k --iodepth=8 --offset=0 --size=32M --verify=crc32c --verify_only=1
  timeout 60 dd if="$DDEV" bs=1M skip=64 count=16 iflag=direct status=none | cmp -n $((16 * MIB)) - /dev/zero ||
    fail "B (never flushed) reached the file"
  stop_daemon_ok
  check_daemon_logs crash
}

case_powercut_ext4() {
  local id sums=$CASE_DIR/synced.sha256 d
  # recovery off: the device dies with the daemon, so the dead mount can go
  powercut_conf ext4 off
  start_daemon "$PC_CONF"
  # no lazy inode-table init: ext4lazyinit zeroes tables in the background and FLUSHes after
  # each group, at moments the test does not choose (one such flush made r2 below durable)
  timeout 300 mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$DDEV" || fail "mkfs.ext4 failed"
  MNT=$E2E_WORK/mnt-pc; mkdir -p "$MNT"
  timeout 60 mount -o commit=60,noinit_itable "$DDEV" "$MNT" || fail "mount failed"
  mkdir -p "$MNT/synced" "$MNT/late"
  for d in bash coreutils fio e2fsprogs; do
    [ -d "/usr/share/doc/$d" ] && { timeout 120 cp -r "/usr/share/doc/$d" "$MNT/synced/" || fail "cp $d failed"; }
  done
  timeout 120 dd if=/dev/urandom of="$MNT/synced/r1" bs=1M count=8 status=none || fail "dd failed"
  timeout 120 sync || fail "sync hung"
  (cd "$MNT" && find synced -type f -print0 | sort -z | xargs -0 sha256sum) > "$sums" || fail "sha256sum failed"
  # not synced: lost with the power (ext4 commits every 60 s here); r2 goes to the device at
  # once (O_DIRECT) but is never flushed
  timeout 30 "$UC_BIN" status "$DID" > "$CASE_DIR/status-synced.txt" 2>&1
  timeout 120 cp -r /usr/share/doc/util-linux "$MNT/late/" 2>/dev/null
  timeout 120 dd if=/dev/urandom of="$MNT/late/r2" bs=1M count=8 oflag=direct status=none
  timeout 30 "$UC_BIN" status "$DID" > "$CASE_DIR/status-late.txt" 2>&1
  power_cut crash
  [ "$LOST" -ge $((8 * MIB)) ] || fail "$LOST bytes unflushed at the power cut, want at least r2's 8M" \
    "(after sync: $(grep -o 'flush_epochs=[0-9]*' "$CASE_DIR/status-synced.txt"), before the cut:" \
    "$(grep -o 'flush_epochs=[0-9]*' "$CASE_DIR/status-late.txt"))"
  id=$DID
  kill9_daemon
  timeout 60 umount -l "$MNT" 2>/dev/null
  wait_until 30 gone "/dev/ublkb$id" || fail "/dev/ublkb$id still there after kill -9 with recovery off"
  [ ! -e "/dev/ublkc$id" ] || uc_cli del 60 del "$id"
  DID=
  start_daemon "$PC_PLAIN" plain
  # the journal replays on mount; then the filesystem is consistent and the synced files intact
  timeout 60 mount "$DDEV" "$MNT" || fail "mount after the power cut failed: $(dmesg | tail -n 3 | tr '\n' ' ')"
  (cd "$MNT" && timeout 300 sha256sum --quiet -c "$sums") > "$CASE_DIR/sha256-check.log" 2>&1 ||
    fail "a synced file changed after the power cut: $(head -n1 "$CASE_DIR/sha256-check.log")"
  timeout 120 umount "$MNT" || fail "umount failed"
  timeout 300 e2fsck -fn "$DDEV" > "$CASE_DIR/e2fsck.log" 2>&1 || fail "e2fsck -fn not clean after the power cut (rc $?), see e2fsck.log"
  stop_daemon_ok
  check_daemon_logs crash
}

FAULT_CASES=(
  "powercut-fio case_powercut_fio file"
  "powercut-ext4 case_powercut_ext4 file"
)
