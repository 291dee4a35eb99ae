# shellcheck shell=bash
# tests/e2e/cases-mirror.sh: end-to-end cases of the mirror (RAID1) layer, sourced by cases.sh.
#
# Volumes (gen_conf in cases.sh): mirror2 (2 legs), mirror3 (3 legs), raid10 (a stripe over two
# 2-way mirrors); every leg a 256M file: a 4K superblock + write-intent bitmap, data from 1M on.
# Cases (CASES in cases.sh; all data checked with fio crc32c verify or by comparing the legs):
#   legs-identical       fio randwrite verify, clean stop: every leg's data area equals its partner's
#                        and `examine` says clean and in-sync
#   kill9-dirty-resync   kill -9 under writes to the first 32M (bitmap_chunk 4M), del, restart: only
#                        the dirty regions (<= 36M) are resynced, a pattern elsewhere verifies
#   fault-write          leg 1 under a fault layer that starts failing writes mid-run: no fio error,
#                        leg 1 faulty (log and superblock); restart without the fault: rebuilt
#   dm-flakey            leg 1 on dm-flakey over a loop device, switched to error_writes under fio
#   read-errors          leg 0 fails reads in part of its data area: reads are served from leg 1
#                        and the range is rewritten on leg 0 ("rewrote" lines)
#   assembly             legs found in any order; a leg of another array is refused, no device left
#   nodiscard-leg        leg 1 a loop device without discard (over ramfs): blkdiscard, mkfs.ext4 and
#                        fstrim do not fail it, write-zeroes reads back as zeroes, fio verify, e2fsck
# The cases read the daemon's -v log (info lines), so -v is added to E2E_DAEMON_ARGS when missing.

# ---------------------------------------------------------------- helpers
# mirror_legs VOL: the leg files of a gen_conf volume, one mirror per line
mirror_legs() {
  local d=$E2E_WORK/$1
  case $1 in
    mirror2) echo "$d/m0.img $d/m1.img" ;;
    mirror3) echo "$d/m0.img $d/m1.img $d/m2.img" ;;
    raid10) echo "$d/m0a.img $d/m0b.img"; echo "$d/m1a.img $d/m1b.img" ;;
  esac
}

# mirror_conf CONF OPTS LEG...: a config (queues 2) whose volume is a mirror named m0 with mirror
# options OPTS (e.g. 'bitmap_chunk = "4M";') over the LEG config snippets; prints CONF
mirror_conf() {
  local conf=$1 opts=$2 n i=0 leg
  shift 2; n=$#
  {
    echo 'device = { queues = 2; depth = 128; max_io = "512K"; block_size = 4096; id = -1; };'
    echo "volume = { type = \"mirror\"; name = \"m0\";${opts:+ $opts} children = ("
    for leg; do
      i=$((i + 1))
      if [ "$i" -lt "$n" ]; then echo "  $leg,"; else echo "  $leg"; fi
    done
    echo '); };'
  } > "$conf"
  echo "$conf"
}

# file_leg PATH [SIZE]: config snippet of a file leg
file_leg() { echo "{ type = \"file\"; path = \"$1\";${2:+ size = \"$2\";} }"; }

# mirror_verbose: the cases read info lines (resync, faulty legs, rewrites): -v is needed
mirror_verbose() {
  [[ " $E2E_DAEMON_ARGS " == *" -v"* ]] || E2E_DAEMON_ARGS+=" -v"
}

# examine LEG TAG: `ublk-compose examine LEG` into $CASE_DIR/TAG.examine (fails the case if it fails)
examine() {
  local out=$CASE_DIR/$2.examine
  timeout 30 "$UC_BIN" examine "$1" > "$out" 2>&1 || fail "ublk-compose examine $1 failed (rc $?): $(head -n2 "$out" | tr '\n' ' ')"
  grep -q 'Array UUID' "$out" || fail "examine $1 shows no superblock: $(head -n2 "$out" | tr '\n' ' ')"
}

# ex_field TAG FIELD: a field of an examine output ("Data offset" -> 1048576)
ex_field() { sed -n "s/^ *$2 : *//p" "$CASE_DIR/$1.examine" | head -n1 | awk '{ print $1 }'; }

# ex_leg_state TAG IDX: the state of leg IDX in an examine output's leg table
ex_leg_state() {
  awk -v i="$2" '/Leg +State +Errors/ { t = 1; next }
    t { if ($1 == "*") { $1 = "" ; $0 = $0 }; if ($1 == i) { $1 = ""; sub(/^ +/, ""); sub(/ +[0-9]+ +[0-9a-f-]+$/, ""); print; exit } }' \
    "$CASE_DIR/$1.examine"
}

# legs_identical WHAT MIRROR...: the legs of every MIRROR (its leg files, space separated) are clean,
# all in sync, of one array, and hold byte-identical data areas
legs_identical() {
  local what=$1 legs leg first tag off size n=0 uuid st i group
  shift
  for group; do
    read -r -a legs <<< "$group"
    first='' uuid=''
    for leg in "${legs[@]}"; do
      n=$((n + 1)); tag=$what-leg$n
      examine "$leg" "$tag"
      [ "$(ex_field "$tag" State)" = clean ] ||
        fail "$what: $(basename "$leg"): superblock state '$(sed -n 's/^ *State : //p' "$CASE_DIR/$tag.examine")', want clean"
      for ((i = 0; i < ${#legs[@]}; i++)); do
        st=$(ex_leg_state "$tag" "$i")
        [ "$st" = in-sync ] || fail "$what: $(basename "$leg") lists leg $i as '$st', want in-sync"
      done
      [ -z "$uuid" ] || [ "$(ex_field "$tag" 'Array UUID')" = "$uuid" ] ||
        fail "$what: $(basename "$leg") is of array $(ex_field "$tag" 'Array UUID'), not $uuid"
      uuid=$(ex_field "$tag" 'Array UUID')
      off=$(ex_field "$tag" 'Data offset'); size=$(ex_field "$tag" 'Data size')
      [ -n "$off" ] && [ -n "$size" ] && [ "$size" -gt 0 ] || fail "$what: no data offset/size in examine of $leg"
      if [ -z "$first" ]; then
        first=$leg
        continue
      fi
      # compare the data areas (the superblocks differ: each names its own leg)
      timeout 300 cmp --ignore-initial="$off:$off" -n "$size" "$first" "$leg" > "$CASE_DIR/$tag.cmp" 2>&1 ||
        fail "$what: data of $(basename "$leg") differs from $(basename "$first"): $(head -n1 "$CASE_DIR/$tag.cmp") (offsets from data offset $off)"
      log "$what: $(basename "$leg") == $(basename "$first") ($size bytes from $off)"
    done
  done
  [ "$n" -gt 0 ] || fail "$what: no legs to compare"
}

# resync_counts ERR: "STARTED FINISHED" resync lines in a daemon log
resync_counts() { echo "$(grep -c ': resync of ' "$1") $(grep -c ': resync finished' "$1")"; }
resyncs_done() { local c; c=$(resync_counts "$1"); [ "${c% *}" = "${c#* }" ]; }

# wait_resyncs ERR SECS [WHAT]: every resync the log announced has finished (bounded)
wait_resyncs() {
  local why
  if ! wait_until "$2" resyncs_done "$1"; then
    why="resync not finished within ${2}s${3:+ $3} ($(resync_counts "$1") started/finished): $(grep -E ': resync' "$1" | tail -n 2 | tr '\n' ' ')"
    resync_nudge "$1"
    fail "$why$NUDGE"
  fi
  if grep -q ': resync stopped' "$1"; then fail "resync stopped: $(grep -m1 ': resync stopped' "$1")"; fi
}

# resync_nudge ERR: diagnosis of a stalled resync: does one read served by queue 0 (which runs
# resync) get it going? Sets NUDGE (text for the failure message)
resync_nudge() {
  local cpu
  NUDGE=
  [ -n "$DID" ] && [ -b "/dev/ublkb$DID" ] || return 0
  cpu=$(sed 's/[,-].*//' "/sys/block/ublkb$DID/mq/0/cpu_list" 2>/dev/null)
  [ -n "$cpu" ] || return 0
  log "stalled resync: one 4k read from CPU $cpu (queue 0)"
  timeout 60 taskset -c "$cpu" dd if="/dev/ublkb$DID" of=/dev/null bs=4k count=1 skip=7 iflag=direct status=none
  if wait_until 60 resyncs_done "$1"; then
    NUDGE="; it finished at once after one read served by queue 0 (CPU $cpu): $(grep ': resync finished' "$1" | tail -n 1)"
  else
    NUDGE="; still not finished 60s after a read served by queue 0"
  fi
  log "stalled resync$NUDGE"
}

# wait_log ERR RE SECS WHAT: bounded wait for a line matching RE in a daemon log
wait_log() { wait_until "$3" grep -Eq -- "$2" "$1" || fail "$4: no '$2' in $(basename "$1") within ${3}s"; }

# size_mib SIZE: uc_size_str output ("32M", "1.5G", "512K", "4096") in whole MiB, rounded up
size_mib() {
  awk -v s="$1" 'BEGIN { n = s + 0; u = substr(s, length(s)); m = 1 / 1048576;
    if (u == "K") m = 1 / 1024; else if (u == "M") m = 1; else if (u == "G") m = 1024; else if (u == "T") m = 1048576;
    v = n * m; printf "%d\n", (v == int(v)) ? v : int(v) + 1 }'
}

# pattern_fio TAG write|write-only|verify OFF SIZE [fio args]: write a crc32c pattern (sequential
# 64k, one pass; write: then read it back) or check it (verify_only: the same job, nothing written)
pattern_fio() {
  local tag=$1 mode=$2 off=$3 size=$4 how
  shift 4
  case $mode in
    write) how=--do_verify=1 ;;
    write-only) how=--do_verify=0 ;;
    *) how=--verify_only=1 ;;
  esac
  run_fio "$tag" --rw=write --bs=64k --iodepth=8 --offset="$off" --size="$size" \
    --verify=crc32c --verify_fatal=1 "$how" "$@"
}

# status_says ID HEALTH RE: `ublk-compose status ID` has HEALTH (clean, degraded, ...; empty: any)
# in its first line and a line matching RE
status_says() {
  local out=$CASE_DIR/status-$RANDOM.txt
  timeout 30 "$UC_BIN" status "$1" > "$out" 2>&1 || fail "status $1 failed: $(head -n1 "$out")"
  [ -z "$2" ] || head -n1 "$out" | grep -q ", $2, " || fail "status says '$(head -n1 "$out")', want $2"
  grep -Eq -- "$3" "$out" || fail "status has no line like '$3': $(grep -m1 ' m0 ' "$out")"
  log "status: $(grep -m1 ' m0 ' "$out" | sed 's/^ *//')"
}

# check_log_strict ERR: one daemon log has no error line (check_daemon_logs strict, for one log)
check_log_strict() {
  local hit
  hit=$(grep -E -m1 -- "$E2E_ERR_RE" "$1" || true)
  [ -z "$hit" ] || fail "daemon stderr ($(basename "$1")): ${hit:0:200}"
}

# ---------------------------------------------------------------- cases
# a. fio randwrite verify, clean stop, then the legs of every mirror are identical and clean
case_mirror_legs_identical() {
  mirror_verbose
  start_daemon "$(gen_conf "$VOL" 2)" daemon
  check_size
  # an earlier case may have left the legs unclean (kill9-del): that resync must finish on its own,
  # with no I/O to the device (64M takes about 2 s under TCG)
  wait_resyncs "$DERR" 60 "on an idle device"
  run_fio randwrite --rw=randwrite --bs=8k --iodepth=32 --size=64M \
    --verify=crc32c --verify_fatal=1 --do_verify=1
  run_fio mixed --rw=randwrite --bsrange=4k-512k --iodepth=16 --offset=128M --size=64M \
    --verify=crc32c --verify_fatal=1 --do_verify=1
  wait_resyncs "$DERR" 60
  stop_daemon_ok
  check_daemon_logs strict
  grep -q 'marked faulty' "$DERR" && fail "a leg was marked faulty: $(grep -m1 'marked faulty' "$DERR")"
  local groups
  mapfile -t groups <<< "$(mirror_legs "$VOL")"   # (no /dev/fd in the VM: no <(...))
  legs_identical "$VOL" "${groups[@]}"
}

# b. kill -9 under writes to the first 32M (bitmap_chunk 4M), del, restart: the resync covers only
#    the dirty chunks (<= 36M, not 255M), then finishes; a pattern written before stays intact
case_mirror_kill9_resync() {
  local d=$E2E_WORK/$VOL/k9 conf base id line sz mib t0
  mirror_verbose
  rm -rf "$d"; mkdir -p "$d"
  conf=$(mirror_conf "$d/k9.conf" 'bitmap_chunk = "4M";' "$(file_leg "$d/l0.img" 256M)" "$(file_leg "$d/l1.img" 256M)")
  start_daemon "$conf" daemon
  grep -q ': resync of ' "$DERR" && fail "a new array started a resync: $(grep -m1 ': resync of ' "$DERR")"
  # a pattern outside the region written at the kill: its bitmap bits are cleared once idle
  pattern_fio pattern write 128M 32M
  t0=$SECONDS
  base=$(dev_writes "$DID")
  bg_fio hot --name=hot --filename="$DDEV" --rw=randwrite --bs=16k --iodepth=32 --offset=0 --size=32M \
    --time_based=1 --runtime=600
  wait_until 120 writes_ge "$DID" $((base + 1000)) || fail "fio: fewer than 1000 writes in 120s"
  # the pattern's chunks have been idle for two bitmap scans (2 s each)
  while [ $((SECONDS - t0)) -lt 8 ]; do sleep 0.5; done
  exited "$FIO_PID" && fail "fio finished before the kill: $(tail -n 2 "$CASE_DIR/hot.fio.log" | tr '\n' ' ')"
  id=$DID
  kill9_daemon
  sleep 0.5
  uc_cli del 60 del "$id"
  [ "$CRC" = 0 ] || fail "ublk-compose del $id failed (rc $CRC): $(head -n1 "$CASE_DIR/del.err")"
  wait_until 10 gone "/dev/ublkc$id" || fail "/dev/ublkc$id still exists after del"
  wait_bg_fio 120
  [ "$FRC" != 0 ] || fail "fio exited 0 although the device was deleted under it"
  DID=
  examine "$d/l0.img" killed-l0
  [ "$(ex_field killed-l0 State)" != clean ] || fail "leg 0 says clean after kill -9 under writes"
  # restart: resync of the dirty chunks only
  start_daemon "$conf" restart
  wait_log "$DERR" ': resync of ' 60 "restart after kill -9"
  line=$(grep -m1 ': resync of ' "$DERR")
  log "restart: $line"
  [[ $line == *"not shut down cleanly"* ]] || fail "resync after kill -9 not reported as unclean: $line"
  sz=$(sed -E 's/.*: resync of ([0-9.]+[KMGT]?) .*/\1/' <<< "$line")
  mib=$(size_mib "$sz")
  [ "$mib" -ge 4 ] || fail "resync of $sz after kill -9 under writes to 0-32M: want 4M-36M (at least one dirty chunk)"
  [ "$mib" -le 36 ] || fail "resync of $sz after kill -9 under writes to 0-32M only (bitmap chunk 4M): want <= 36M: $line"
  wait_resyncs "$DERR" 60
  log "restart: $(grep -m1 ': resync finished' "$DERR")"
  check_log_strict "$DERR"
  pattern_fio pattern-check verify 128M 32M
  run_fio after --rw=randwrite --bs=8k --iodepth=16 --offset=0 --size=32M \
    --verify=crc32c --verify_fatal=1 --do_verify=1
  stop_daemon_ok
  check_daemon_logs crash
  legs_identical final "$d/l0.img $d/l1.img"
}

# c. leg 1 is a fault layer that starts failing writes after N requests: fio verify passes, leg 1
#    is marked faulty (log, superblock of leg 0); restarted without the fault, leg 1 is rebuilt
case_mirror_fault_write() {
  local d=$E2E_WORK/$VOL/fw conf conf2 st
  mirror_verbose
  rm -rf "$d"; mkdir -p "$d"
  conf=$(mirror_conf "$d/fault.conf" '' "$(file_leg "$d/l0.img" 256M)" \
    "{ type = \"fault\"; name = \"flt\"; errors = \"write\"; after = 3000; children = ( $(file_leg "$d/l1.img" 256M) ); }")
  start_daemon "$conf" daemon
  run_fio randwrite --rw=randwrite --bs=8k --iodepth=32 --size=64M \
    --verify=crc32c --verify_fatal=1 --do_verify=1
  grep -q 'leg 1 .*marked faulty' "$DERR" ||
    fail "no 'leg 1 ... marked faulty' in the log (fault layer: $(timeout 30 "$UC_BIN" status "$DID" 2>&1 | grep -m1 flt | sed 's/^ *//'))"
  log "$(grep -m1 'marked faulty' "$DERR")"
  grep -q 'leg 0 .*marked faulty' "$DERR" && fail "leg 0 marked faulty: $(grep -m1 'leg 0 .*marked faulty' "$DERR")"
  grep -q 'no leg left' "$DERR" && fail "the mirror failed: $(grep -m1 'no leg left' "$DERR")"
  status_says "$DID" degraded ' m0 .*degraded .*\[1 faulty errors=[1-9]'
  # the pattern reads back from the surviving leg
  run_fio readback --rw=randwrite --bs=8k --iodepth=32 --size=64M --verify=crc32c --verify_fatal=1 --verify_only=1
  stop_daemon_ok
  check_daemon_logs crash
  examine "$d/l0.img" degraded-l0
  st=$(ex_leg_state degraded-l0 1)
  [ "$st" = faulty ] || fail "examine of leg 0 after the clean stop lists leg 1 as '$st', want faulty"
  st=$(ex_leg_state degraded-l0 0)
  [ "$st" = in-sync ] || fail "examine of leg 0 lists leg 0 as '$st', want in-sync"
  # the same files without the fault layer: leg 1 comes back and is rebuilt
  conf2=$(mirror_conf "$d/plain.conf" '' "$(file_leg "$d/l0.img" 256M)" "$(file_leg "$d/l1.img" 256M)")
  start_daemon "$conf2" rebuild
  wait_log "$DERR" ': resync of ' 60 "restart without the fault"
  log "rebuild: $(grep -m1 ': resync of ' "$DERR")"
  wait_resyncs "$DERR" 60
  log "rebuild: $(grep -m1 ': resync finished' "$DERR")"
  run_fio readback2 --rw=randwrite --bs=8k --iodepth=32 --size=64M --verify=crc32c --verify_fatal=1 --verify_only=1
  stop_daemon_ok
  check_daemon_logs crash
  check_log_strict "$DERR"
  legs_identical rebuilt "$d/l0.img $d/l1.img"
}

# d. leg 1 on dm-flakey (over a loop device): up, then switched to error_writes while fio runs
FLAKEY_DM='' FLAKEY_LOOP=''
flakey_cleanup() {
  local rc=$? p
  # the daemon holds the dm device open: stop it (and fio) first
  for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  if [ -n "$DPID" ] && alive "$DPID"; then
    kill -TERM "$DPID" 2>/dev/null
    wait_until 30 exited "$DPID" || kill -KILL "$DPID" 2>/dev/null
    wait_until 10 exited "$DPID"
    wait "$DPID" 2>/dev/null
    DPID=
  fi
  if [ -n "$FLAKEY_DM" ]; then
    timeout 30 dmsetup resume --noudevsync "$FLAKEY_DM" 2>/dev/null
    timeout 60 dmsetup remove --noudevsync --retry "$FLAKEY_DM" >&2 2>&1 || log "dmsetup remove $FLAKEY_DM failed"
  fi
  [ -z "$FLAKEY_LOOP" ] || losetup -d "$FLAKEY_LOOP" 2>/dev/null
  ( exit "$rc" )
  case_cleanup
}

# flakey_table MODE: the table of $FLAKEY_DM over $FLAKEY_LOOP: up (always up) or error_writes
flakey_table() {
  local sz
  sz=$(blockdev --getsz "$FLAKEY_LOOP")
  case $1 in
    up) echo "0 $sz flakey $FLAKEY_LOOP 0 1000 0" ;;                 # up 1000 s, down 0: always up
    error_writes) echo "0 $sz flakey $FLAKEY_LOOP 0 0 1 1 error_writes" ;;  # always down: writes fail
  esac
}

# flakey_set MODE: load a new table (suspend, load, resume; bounded)
flakey_set() {
  log "dm-flakey $FLAKEY_DM -> $1: $(flakey_table "$1")"
  timeout 60 dmsetup suspend --noudevsync "$FLAKEY_DM" || fail "dmsetup suspend $FLAKEY_DM failed or hung"
  timeout 60 dmsetup load "$FLAKEY_DM" --table "$(flakey_table "$1")" || fail "dmsetup load ($1) failed"
  timeout 60 dmsetup resume --noudevsync "$FLAKEY_DM" || fail "dmsetup resume $FLAKEY_DM failed"
  dmsetup table "$FLAKEY_DM" >> "$CASE_DIR/dm-table.log" 2>&1
}

case_mirror_dm_flakey() {
  local d=$E2E_WORK/$VOL/fl conf dev mm base st img
  mirror_verbose
  command -v dmsetup > /dev/null || fail "dmsetup missing"
  rm -rf "$d"; mkdir -p "$d"
  trap flakey_cleanup EXIT
  # (in the volume's directory: the suite's drop_loops detaches it too)
  img=$E2E_WORK/$VOL/loop-flakey.img
  rm -f "$img"; truncate -s 256M "$img" || fail "truncate failed"
  FLAKEY_LOOP=$(losetup --direct-io=on -f --show "$img" 2>/dev/null || losetup -f --show "$img") ||
    fail "losetup failed"
  FLAKEY_DM=uce2e-flakey-$$
  timeout 60 dmsetup create --noudevsync "$FLAKEY_DM" --table "$(flakey_table up)" > "$CASE_DIR/dmsetup.log" 2>&1 ||
    { FLAKEY_DM=; fail "dmsetup create (flakey) failed: $(head -n2 "$CASE_DIR/dmsetup.log" | tr '\n' ' ')"; }
  dmsetup table "$FLAKEY_DM" > "$CASE_DIR/dm-table.log" 2>&1
  mm=$(dmsetup info -c --noheadings -o minor "$FLAKEY_DM" | tr -d ' ')
  dev=/dev/mapper/$FLAKEY_DM
  [ -b "$dev" ] || dev=/dev/dm-$mm
  wait_until 10 test -b "$dev" || fail "no block device node for $FLAKEY_DM (minor $mm)"
  log "dm-flakey $FLAKEY_DM ($dev) over $FLAKEY_LOOP"
  conf=$(mirror_conf "$d/flakey.conf" '' "$(file_leg "$d/l0.img" 256M)" "$(file_leg "$dev")")
  start_daemon "$conf" daemon
  check_size
  base=$(dev_writes "$DID")
  # (rate_iops: at least 4 s of writes on fast hardware too; TCG does about 1500/s)
  bg_fio flakey --name=flakey --filename="$DDEV" --rw=randwrite --bs=8k --iodepth=32 --size=64M \
    --rate_iops=2000 --verify=crc32c --verify_fatal=1 --do_verify=1
  wait_until 120 writes_ge "$DID" $((base + 1000)) || fail "fio: fewer than 1000 writes in 120s"
  exited "$FIO_PID" && fail "fio finished before the switch to error_writes (too fast to test)"
  flakey_set error_writes
  base=$(dev_writes "$DID")
  wait_bg_fio "$E2E_FIO_TIMEOUT"
  fio_check flakey "$FRC"
  [ "$(dev_writes "$DID")" -gt "$base" ] || log "warning: no writes after the switch"
  grep -q 'leg 1 .*marked faulty' "$DERR" || fail "no 'leg 1 ... marked faulty' in the log after error_writes"
  log "$(grep -m1 'marked faulty' "$DERR")"
  grep -q 'leg 0 .*marked faulty' "$DERR" && fail "leg 0 marked faulty: $(grep -m1 'leg 0 .*marked faulty' "$DERR")"
  status_says "$DID" degraded ' m0 .*degraded .*\[1 faulty errors=[1-9]'
  run_fio readback --rw=randwrite --bs=8k --iodepth=32 --size=64M --verify=crc32c --verify_fatal=1 --verify_only=1
  stop_daemon_ok
  check_daemon_logs crash
  examine "$d/l0.img" degraded-l0
  st=$(ex_leg_state degraded-l0 1)
  [ "$st" = faulty ] || fail "examine of leg 0 after the clean stop lists leg 1 as '$st', want faulty"
  [ "$(ex_field degraded-l0 State)" = clean ] || fail "leg 0 not clean after a clean stop: $(ex_field degraded-l0 State)"
}

# e. leg 0 fails reads in leg bytes 2M-10M (its data area 1M-9M; not the metadata): reads are
#    served by leg 1, the ranges are rewritten on leg 0, the pattern verifies
case_mirror_read_errors() {
  local d=$E2E_WORK/$VOL/re conf n bad off len
  mirror_verbose
  rm -rf "$d"; mkdir -p "$d"
  conf=$(mirror_conf "$d/re.conf" '' \
    "{ type = \"fault\"; name = \"flt\"; errors = \"read\"; ranges = ( \"2M+8M\" ); children = ( $(file_leg "$d/l0.img" 256M) ); }" \
    "$(file_leg "$d/l1.img" 256M)")
  start_daemon "$conf" daemon
  pattern_fio pattern write-only 0 16M
  grep -q ': rewrote ' "$DERR" && fail "a read error before anything was read: $(grep -m1 ': rewrote ' "$DERR")"
  # read it back at queue depth 1 (least-pending then reads from leg 0), then at depth 8
  pattern_fio readback verify 0 16M --iodepth=1
  pattern_fio readback-qd8 verify 0 16M
  n=$(grep -c ': rewrote .* on leg 0 after a read error' "$DERR")
  [ "$n" -gt 0 ] || fail "no 'rewrote ... on leg 0 after a read error' line in the log"
  log "$n rewrite lines, e.g. $(grep -m1 ': rewrote' "$DERR")"
  # every rewritten range lies in the failing one (device bytes 1M-9M)
  bad=$(grep -oE ': rewrote [0-9]+\+[0-9]+ on leg' "$DERR" | sed -E 's/.* ([0-9]+)\+([0-9]+) .*/\1 \2/' |
    while read -r off len; do
      [ "$off" -ge $((MIB)) ] && [ $((off + len)) -le $((9 * MIB)) ] || echo "$off+$len"
    done | head -n3 | tr '\n' ' ')
  [ -z "$bad" ] || fail "rewrites outside the failing range (1M-9M of the device): $bad"
  grep -q 'leg 1 .*marked faulty' "$DERR" && fail "leg 1 marked faulty: $(grep -m1 'leg 1 .*marked faulty' "$DERR")"
  grep -q 'no leg left' "$DERR" && fail "the mirror failed: $(grep -m1 'no leg left' "$DERR")"
  grep -q 'leg 0 .*marked faulty' "$DERR" && log "note: $(grep -m1 'leg 0 .*marked faulty' "$DERR")"
  # leg 0's error counter rose, and the corrections are counted
  status_says "$DID" '' ' m0 .*\[0 [a-z-]+ errors=[1-9]'
  timeout 30 "$UC_BIN" status --json "$DID" > "$CASE_DIR/status.json" 2>&1
  grep -Eq '"read_errors_corrected": [1-9]' "$CASE_DIR/status.json" ||
    fail "status --json counts no corrected read errors: $(grep -o '"read_errors_corrected": [0-9]*' "$CASE_DIR/status.json")"
  stop_daemon_ok
  check_daemon_logs crash
}

# f. assembly: legs are matched by UUID (swapped in the config: same data); a leg of another array
#    is refused with one clear line, nothing written, no device left
case_mirror_assembly() {
  local d=$E2E_WORK/$VOL/as conf rc nodes ev0 ev1 lines
  mirror_verbose
  rm -rf "$d"; mkdir -p "$d"
  conf=$(mirror_conf "$d/a.conf" '' "$(file_leg "$d/a0.img" 256M)" "$(file_leg "$d/a1.img" 256M)")
  start_daemon "$conf" daemon
  pattern_fio pattern write 0 32M
  run_fio pattern2 --rw=randwrite --bs=8k --iodepth=16 --offset=64M --size=32M \
    --verify=crc32c --verify_fatal=1 --do_verify=1
  stop_daemon_ok
  # the legs swapped
  conf=$(mirror_conf "$d/swapped.conf" '' "$(file_leg "$d/a1.img" 256M)" "$(file_leg "$d/a0.img" 256M)")
  start_daemon "$conf" swapped
  check_size
  grep -q ': resync of ' "$DERR" && fail "swapped legs started a resync: $(grep -m1 ': resync of ' "$DERR")"
  pattern_fio pattern-swapped verify 0 32M
  run_fio pattern2-swapped --rw=randwrite --bs=8k --iodepth=16 --offset=64M --size=32M \
    --verify=crc32c --verify_fatal=1 --verify_only=1
  stop_daemon_ok
  check_daemon_logs strict
  legs_identical swapped "$d/a0.img $d/a1.img"
  # another array
  conf=$(mirror_conf "$d/b.conf" '' "$(file_leg "$d/b0.img" 256M)" "$(file_leg "$d/b1.img" 256M)")
  start_daemon "$conf" other
  stop_daemon_ok
  examine "$d/a0.img" a0-before; examine "$d/b1.img" b1-before
  conf=$(mirror_conf "$d/mixed.conf" '' "$(file_leg "$d/a0.img" 256M)" "$(file_leg "$d/b1.img" 256M)")
  nodes=$(ublk_nodes)
  log "mixed legs: $UC_BIN -c $conf (no -v)"
  timeout -k 10 120 "$UC_BIN" -c "$conf" > "$CASE_DIR/mixed.out" 2> "$CASE_DIR/mixed.err" </dev/null; rc=$?
  [ "$rc" != 124 ] && [ "$rc" != 137 ] || fail "the daemon on legs of two arrays hung (rc $rc)"
  [ "$rc" != 0 ] || fail "the daemon on legs of two arrays exited 0"
  log "mixed legs: rc $rc: $(tr '\n' '|' < "$CASE_DIR/mixed.err")"
  grep -q 'another array' "$CASE_DIR/mixed.err" ||
    fail "legs of two arrays: no message mentioning 'another array': $(head -n3 "$CASE_DIR/mixed.err" | tr '\n' ' ')"
  lines=$(grep -c . "$CASE_DIR/mixed.err")
  [ "$lines" = 1 ] || fail "legs of two arrays: want a one-line message, got $lines lines: $(head -n4 "$CASE_DIR/mixed.err" | tr '\n' '|')"
  grep -q ublkb "$CASE_DIR/mixed.out" && fail "the refused daemon printed a device: $(head -n1 "$CASE_DIR/mixed.out")"
  [ "$(ublk_nodes)" = "$nodes" ] || fail "the refused daemon left ublk nodes: before '$nodes', after '$(ublk_nodes)'"
  # refusing wrote nothing
  examine "$d/a0.img" a0-after; examine "$d/b1.img" b1-after
  cmp -s "$CASE_DIR/a0-before.examine" "$CASE_DIR/a0-after.examine" || fail "the refused start changed a0's superblock"
  cmp -s "$CASE_DIR/b1-before.examine" "$CASE_DIR/b1-after.examine" || fail "the refused start changed b1's superblock"
  ev0=$(ex_field a0-after Events); ev1=$(ex_field b1-after Events)
  log "a0 events $ev0, b1 events $ev1: unchanged"
}

# g. leg 1 is a loop device over a file on ramfs, which has no fallocate: the loop device has no
#    discard (and no write-zeroes). Discards (blkdiscard, mkfs.ext4, fstrim) must not fail that
#    leg (md ignores discard errors); a write-zeroes (BLKZEROOUT) reads back as zeroes; data verifies
ND_LOOP='' ND_RAM=''
nodiscard_cleanup() {
  local rc=$? p
  # the daemon holds the loop device open: stop it (and fio) first
  for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  if [ -n "${MNT:-}" ] && is_mounted "$MNT"; then timeout 60 umount "$MNT" 2>/dev/null || umount -l "$MNT"; fi
  if [ -n "$DPID" ] && alive "$DPID"; then
    kill -TERM "$DPID" 2>/dev/null
    wait_until 30 exited "$DPID" || kill -KILL "$DPID" 2>/dev/null
    wait_until 10 exited "$DPID"
    wait "$DPID" 2>/dev/null
    DPID=
  fi
  [ -z "$ND_LOOP" ] || losetup -d "$ND_LOOP" 2>/dev/null
  [ -z "$ND_RAM" ] || timeout 30 umount "$ND_RAM" 2>/dev/null || umount -l "$ND_RAM" 2>/dev/null
  ( exit "$rc" )
  case_cleanup
}

case_mirror_nodiscard_leg() {
  local d=$E2E_WORK/$VOL/nd conf dmax ldev
  mirror_verbose
  rm -rf "$d"; mkdir -p "$d/ram"
  trap nodiscard_cleanup EXIT
  timeout 30 mount -t ramfs ramfs "$d/ram" || fail "mount ramfs failed"
  ND_RAM=$d/ram
  truncate -s 64M "$d/ram/l1.img" || fail "truncate failed"
  ND_LOOP=$(losetup -f --show "$d/ram/l1.img") || fail "losetup failed"
  ldev=$(basename "$ND_LOOP")
  dmax=$(cat "/sys/block/$ldev/queue/discard_max_bytes" 2>/dev/null || echo '?')
  [ "$dmax" = 0 ] || fail "$ND_LOOP over ramfs has discard (discard_max_bytes=$dmax): the case needs a leg without"
  conf=$(mirror_conf "$d/nd.conf" '' "$(file_leg "$d/l0.img" 64M)" "$(file_leg "$ND_LOOP")")
  start_daemon "$conf" daemon
  dmax=$(cat "/sys/block/ublkb$DID/queue/discard_max_bytes" 2>/dev/null || echo 0)
  [ "${dmax:-0}" -gt 0 ] || fail "the mirror offers no discard (discard_max_bytes=$dmax)"
  timeout 120 blkdiscard "$DDEV" || fail "blkdiscard of the whole device failed"
  status_says "$DID" clean ' m0 .*clean .*\[1 in-sync errors=0\]'
  grep -q 'leg 1 .*failed a discard.*ignored' "$DERR" || fail "no 'leg 1 ... failed a discard ... ignored' in the log"
  run_fio randwrite --rw=randwrite --bs=8k --iodepth=16 --size=24M \
    --verify=crc32c --verify_fatal=1 --do_verify=1
  # BLKZEROOUT over random bytes (the file layer zeroes the loop device through the kernel's
  # zero-page fallback)
  timeout 120 dd if=/dev/urandom of="$DDEV" bs=1M seek=32 count=4 oflag=direct status=none || fail "dd failed"
  timeout 120 blkdiscard -z -o $((32 * MIB)) -l $((4 * MIB)) "$DDEV" || fail "blkdiscard -z failed"
  timeout 120 dd if="$DDEV" bs=1M skip=32 count=4 iflag=direct status=none | cmp -n $((4 * MIB)) - /dev/zero ||
    fail "the zeroed range does not read back as zeroes"
  run_fio readback --rw=randwrite --bs=8k --iodepth=16 --size=24M --verify=crc32c --verify_fatal=1 --verify_only=1
  # mkfs.ext4 discards the whole device, fstrim the free space
  timeout 300 mkfs.ext4 -q -F "$DDEV" || fail "mkfs.ext4 failed"
  MNT=$E2E_WORK/mnt-nd; mkdir -p "$MNT"
  timeout 60 mount "$DDEV" "$MNT" || fail "mount failed"
  timeout 120 cp -r /usr/share/doc/fio "$MNT/" || fail "cp failed"
  timeout 120 rm -rf "$MNT/fio"
  timeout 120 fstrim -v "$MNT" > "$CASE_DIR/fstrim.log" 2>&1 || fail "fstrim failed: $(cat "$CASE_DIR/fstrim.log")"
  log "$(cat "$CASE_DIR/fstrim.log")"
  timeout 120 umount "$MNT" || fail "umount failed"
  timeout 300 e2fsck -fn "$DDEV" > "$CASE_DIR/e2fsck.log" 2>&1 || fail "e2fsck -fn not clean (rc $?), see e2fsck.log"
  status_says "$DID" clean ' m0 .*clean .*\[1 in-sync errors=0\]'
  grep -q 'marked faulty' "$DERR" && fail "a leg was marked faulty: $(grep -m1 'marked faulty' "$DERR")"
  stop_daemon_ok
  check_daemon_logs strict
}
