# shellcheck shell=bash
# tests/e2e/cases-compress.sh: end-to-end cases of the compress layer, sourced by cases.sh.
# The generic cases (fio verify, ext4, discard, SIGTERM, kill -9, recover) also run on the
# "compress" volume of gen_conf (1G of zstd over a 512M file). These are its own:
#   compress-ratio        fio verify with 2:1 data (buffer_compress_percentage=50, 64k blocks) and random data:
#                         status --json reports about 2:1 and about 1:1
#   compress-ext4-tree    ext4, a real tree (/usr/share/perl and /usr/share/i18n) copied in, restart: e2fsck clean,
#                         files byte-identical, ratio > 1.5
#   compress-crash        E2E_CRASH_ROUNDS (default 20) rounds: fio writes with O_DSYNC (each
#                         completed write is durable), kill -9 at a random moment, del, reopen:
#                         every completed write verifies (fio verify_state)
#   compress-powercut     the same with the fault layer's power cut under compress
#   compress-enospc       a 64M file under 1G: ENOSPC, what came before intact, space back after a discard
#   compress-corrupt      4K of one stored extent corrupted: EIO and a counted checksum error; under a
#                         mirror with one leg corrupted: the data is right, the copy rewritten
#   compress-confs        conf/compress.conf and conf/compressed-raid10.conf as written
#   compress-zram-bench   a short run of the compress vs zram benchmark rows (tools/bench/zram.sh:
#                         16M of /usr, 1 s per job, /usr/include/linux for ext4): every job ran on
#                         both devices, both read back identical to the tar, ext4 files identical

# cz_conf NAME LOGICAL CHILD [MORE]: a compress volume "cz" over $E2E_WORK/compress/NAME.img;
# MORE replaces the child; sets CZ_CONF, CZ_IMG
cz_conf() {
  local d=$E2E_WORK/compress
  mkdir -p "$d"
  CZ_CONF=$d/$1.conf CZ_IMG=$d/$1.img
  {
    echo 'device = { queues = 2; depth = 64; max_io = "512K"; block_size = 4096; };'
    echo "volume = { type = \"compress\"; name = \"cz\"; size = \"$2\"; children = ("
    echo "  ${4:-{ type = \"file\"; name = \"store\"; path = \"$1.img\"; size = \"$3\"; \}} ); };"
  } > "$CZ_CONF"
}

# cz_json ID KEY [NODE]: a number from `status --json` of the compress node NODE (default cz)
cz_json() {
  timeout 30 "$UC_BIN" status --json "$1" 2>/dev/null | python3 -c '
import json, sys
def find(n, name):
    if n["name"] == name: return n
    for c in n["children"]:
        r = find(c, name)
        if r: return r
d = json.load(sys.stdin); n = find(d["volume"], sys.argv[2])
print(n[sys.argv[1]])' "$2" "${3:-cz}"
}

case_compress_ratio() {
  local r
  cz_conf ratio 1G 1G
  rm -f "$CZ_IMG"
  start_daemon "$CZ_CONF"
  # (64k blocks: with verify, fio makes each block half random, half zero; 1M blocks would give
  # 512K random then 512K of zeroes, which no cluster-wise compressor can halve)
  run_fio half --rw=write --bs=64k --iodepth=16 --size=128M --buffer_compress_percentage=50 \
    --refill_buffers --verify=crc32c --verify_fatal=1 --do_verify=1
  r=$(cz_json "$DID" ratio)
  log "2:1 data: ratio $r; $(timeout 30 "$UC_BIN" status "$DID" | grep ' cz ' | sed 's/^ *//')"
  awk -v r="$r" 'BEGIN { exit !(r >= 1.6 && r <= 2.4) }' || fail "ratio $r for data that compresses 2:1 (want about 2)"
  stop_daemon_ok
  check_daemon_logs strict
  rm -f "$CZ_IMG"
  start_daemon "$CZ_CONF" random
  run_fio random --rw=randwrite --bs=64k --iodepth=16 --size=128M --verify=crc32c --verify_fatal=1 --do_verify=1
  r=$(cz_json "$DID" ratio)
  log "random data: ratio $r"
  awk -v r="$r" 'BEGIN { exit !(r >= 0.95 && r <= 1.05) }' || fail "ratio $r for random data (want about 1)"
  [ "$(cz_json "$DID" clusters_raw)" -gt 1500 ] || fail "random data was not stored raw: $(cz_json "$DID" clusters_raw) raw clusters"
  stop_daemon_ok
  check_daemon_logs strict
}

case_compress_ext4_tree() {
  local sums=$CASE_DIR/sums r
  cz_conf tree 2G 1G
  rm -f "$CZ_IMG"
  start_daemon "$CZ_CONF"
  timeout 300 mkfs.ext4 -q -F "$DDEV" || fail "mkfs.ext4 failed"
  MNT=$E2E_WORK/mnt-cz; mkdir -p "$MNT"
  timeout 60 mount "$DDEV" "$MNT" || fail "mount failed"
  # a real tree, mostly text: perl modules and locale sources (about 40M in 1800 files)
  timeout 600 cp -a /usr/share/perl /usr/share/i18n "$MNT/" || fail "copying the tree failed"
  (cd "$MNT" && find . -type f ! -path './lost+found/*' -print0 | sort -z | xargs -0 sha256sum) > "$sums" || fail "sha256sum failed"
  log "$(wc -l < "$sums") files, $(du -sh "$MNT" | cut -f1)"
  timeout 120 umount "$MNT" || fail "umount failed"
  stop_daemon_ok
  start_daemon "$CZ_CONF" restart
  timeout 600 e2fsck -fn "$DDEV" > "$CASE_DIR/e2fsck.log" 2>&1 || fail "e2fsck -fn not clean after the restart (rc $?)"
  timeout 60 mount "$DDEV" "$MNT" || fail "mount after the restart failed"
  (cd "$MNT" && timeout 600 sha256sum --quiet -c "$sums") > "$CASE_DIR/sha256-check.log" 2>&1 ||
    fail "files differ after the restart: $(head -n1 "$CASE_DIR/sha256-check.log")"
  r=$(cz_json "$DID" ratio)
  log "ratio $r; $(timeout 30 "$UC_BIN" status "$DID" | grep ' cz ' | sed 's/^ *//')"
  awk -v r="$r" 'BEGIN { exit !(r > 1.5) }' || fail "ratio $r for the tree (want > 1.5)"
  timeout 120 umount "$MNT" || fail "umount failed"
  stop_daemon_ok
  check_daemon_logs strict
}

# crash_rounds CUT: E2E_CRASH_ROUNDS rounds of O_DSYNC fio + a crash + del + reopen + verify.
# fio's trigger stops the writes at a random moment, saves which ones completed (and which were in
# flight) and runs the crash: CUT kill9 kills the daemon; powercut first has the fault layer "disk"
# under compress drop what was not flushed. Every write fio saw complete must read back after the
# reopen; the reopened daemon then takes the next round's writes.
crash_rounds() {
  local cut=$1 rounds=${E2E_CRASH_ROUNDS:-20} r sd id base pct trig job
  start_daemon "$CZ_CONF" round1
  for ((r = 1; r <= rounds; r++)); do
    sd=$CASE_DIR/state-$r; mkdir -p "$sd"
    pct=$(( r % 2 ? 50 : 0 ))
    # each completed write is durable (O_DSYNC: FUA); the filename comes last (a new device node)
    job=(--name=crash --rw=randwrite --bs=16k --iodepth=16 --size=48M --offset=$(( (r % 4) * 48 ))M
         --randseed=$r --sync=dsync --verify=crc32c --buffer_compress_percentage=$pct --refill_buffers
         --aux-path="$sd")
    trig="kill -9 $DPID"
    [ "$cut" = powercut ] && trig="$UC_BIN ctl $DID disk crash on > $sd/cut.log 2>&1; kill -9 $DPID"
    base=$(dev_writes "$DID")
    bg_fio "w$r" "${job[@]}" --filename="$DDEV" --do_verify=0 --verify_state_save=1 \
      --trigger-file="$sd/now" --trigger="$trig"
    wait_until 120 writes_ge "$DID" $((base + 50 + RANDOM % 250)) || fail "round $r: fio wrote too little"
    exited "$FIO_PID" && fail "round $r: fio finished before the crash"
    touch "$sd/now"
    wait_until 60 exited "$DPID" || fail "round $r: the trigger did not kill the daemon"
    wait "$DPID" 2>/dev/null
    DPID= id=$DID
    uc_cli "del$r" 60 del "$id"
    [ "$CRC" = 0 ] || fail "round $r: del $id failed: $(cat "$CASE_DIR/del$r.err")"
    DID=
    wait_bg_fio 120
    [ "$cut" != powercut ] || grep -q '^crash=on' "$sd/cut.log" || fail "round $r: the power cut failed: $(cat "$sd/cut.log")"
    ls "$sd"/*verify.state > /dev/null 2>&1 || fail "round $r: fio saved no verify state"
    start_daemon "$CZ_CONF" "round$((r + 1))"
    log "round $r: $(grep -m1 -E 'replayed' "$CASE_DIR/round$((r + 1)).err" | sed 's/^ublk-compose: //')"
    # the same job (its state file is named after it), reading back what completed
    timeout -k 10 "$E2E_FIO_TIMEOUT" fio --ioengine=io_uring --direct=1 "${job[@]}" --filename="$DDEV" \
      --verify_only=1 --verify_state_load=1 --verify_fatal=1 </dev/null > "$CASE_DIR/v$r.fio.log" 2>&1
    fio_check "v$r" $?
    # (grep, not cz_json: python's start costs a second per round under TCG; one compress node)
    timeout 30 "$UC_BIN" status --json "$DID" > "$sd/status.json" 2>&1
    grep -Eq '"checksum_errors": *0[,}]' "$sd/status.json" || fail "round $r: checksum errors after reopening: $(grep -Eo '"checksum_errors": *[0-9]+' "$sd/status.json")"
  done
  stop_daemon_ok
  check_daemon_logs crash
}

case_compress_crash() {
  mirror_verbose
  cz_conf crash 256M 512M
  rm -f "$CZ_IMG"
  crash_rounds kill9
}

case_compress_powercut() {
  mirror_verbose
  # (the reopened daemon runs the fault layer again, powered on: it reads the file as it is)
  cz_conf powercut 256M 512M "{ type = \"fault\"; name = \"disk\"; lose_unflushed = true; children = ( { type = \"file\"; path = \"powercut.img\"; size = \"512M\"; } ); }"
  rm -f "$E2E_WORK/compress/powercut.img"
  crash_rounds powercut
}

case_compress_enospc() {
  local w=$E2E_WORK/compress full rc
  cz_conf nospc 1G 64M
  rm -f "$CZ_IMG"
  start_daemon "$CZ_CONF"
  head -c $((96 * MIB)) /dev/urandom > "$w/rand.bin"
  timeout 300 dd if="$w/rand.bin" of="$DDEV" bs=1M oflag=direct status=none 2> "$CASE_DIR/dd.err"; rc=$?
  [ "$rc" != 0 ] || fail "96M of random data went into a 64M file"
  grep -q 'No space left on device' "$CASE_DIR/dd.err" || fail "the write failed, but not with ENOSPC: $(cat "$CASE_DIR/dd.err")"
  full=$(cz_json "$DID" physical_bytes)
  log "full at $full bytes stored: $(tail -n1 "$CASE_DIR/dd.err")"
  [ "$full" -gt $((48 * MIB)) ] || fail "ENOSPC with only $full bytes stored"
  # what was written before the full one is intact
  timeout 120 dd if="$DDEV" bs=1M count=40 iflag=direct status=none | cmp -n $((40 * MIB)) - "$w/rand.bin" ||
    fail "data written before ENOSPC changed"
  # a discard gives space back, and it is used again
  timeout 60 blkdiscard -o 0 -l $((16 * MIB)) "$DDEV" || fail "blkdiscard failed"
  timeout 120 dd if="$w/rand.bin" of="$DDEV" bs=1M count=12 seek=900 oflag=direct conv=fsync status=none ||
    fail "writing after the discard failed"
  timeout 120 dd if="$DDEV" bs=1M skip=900 count=12 iflag=direct status=none | cmp -n $((12 * MIB)) - "$w/rand.bin" ||
    fail "the data written after the discard does not read back"
  timeout 120 dd if="$DDEV" bs=1M skip=16 count=24 iflag=direct status=none | cmp -n $((24 * MIB)) - "$w/rand.bin" -i 0:$((16 * MIB)) ||
    fail "data outside the discarded range changed"
  rm -f "$w/rand.bin"
  stop_daemon_ok
  check_daemon_logs crash
}

# locate ID NODE OFF: sets AT (child byte of the extent of the cluster holding OFF)
locate() {
  uc_cli locate 30 ctl "$1" "$2" locate "$3"
  AT=$(sed -n 's/.* at child byte \([0-9]*\) .*/\1/p' "$CASE_DIR/locate.out")
  [ -n "$AT" ] || fail "ctl locate: $(cat "$CASE_DIR/locate.out" "$CASE_DIR/locate.err")"
  log "$(cat "$CASE_DIR/locate.out")"
}

# smash FILE BYTE: 4 KiB of junk at BYTE (4K aligned)
smash() {
  head -c 4096 /dev/urandom | dd of="$1" bs=4096 seek=$(($2 / 4096)) conv=notrunc oflag=direct status=none ||
    fail "could not corrupt $1"
}

case_compress_corrupt() {
  local d=$E2E_WORK/compress off=$((8 * MIB)) msb
  mirror_verbose
  cz_conf bad 256M 256M
  rm -f "$CZ_IMG"
  start_daemon "$CZ_CONF"
  pattern_fio pat write 0 32M --buffer_compress_percentage=50
  locate "$DID" cz $off
  stop_daemon_ok
  smash "$CZ_IMG" "$AT"
  start_daemon "$CZ_CONF" reopened
  timeout 60 dd if="$DDEV" of=/dev/null bs=4k skip=$((off / 4096)) count=1 iflag=direct 2> "$CASE_DIR/dd-bad.err" &&
    fail "a read of the corrupted cluster succeeded"
  grep -q 'Input/output error' "$CASE_DIR/dd-bad.err" || fail "the read failed, but not with EIO: $(cat "$CASE_DIR/dd-bad.err")"
  [ "$(cz_json "$DID" checksum_errors)" -ge 1 ] || fail "no checksum error counted"
  # the rest of the pattern is intact (the bad cluster: 64K at 8M)
  pattern_fio pat-a verify 0 8M --buffer_compress_percentage=50
  stop_daemon_ok
  check_daemon_logs crash

  # compress over a mirror: one leg corrupted, the other copy serves and is rewritten
  cz_conf mbad 256M 0 "{ type = \"mirror\"; name = \"m\"; children = ( { type = \"file\"; path = \"mbad-a.img\"; size = \"260M\"; }, { type = \"file\"; path = \"mbad-b.img\"; size = \"260M\"; } ); }"
  rm -f "$d/mbad-a.img" "$d/mbad-b.img"
  start_daemon "$CZ_CONF" mirror
  pattern_fio mpat write 0 32M --buffer_compress_percentage=50
  locate "$DID" cz $off
  stop_daemon_ok
  examine "$d/mbad-a.img" leg-a
  msb=$(ex_field leg-a 'Data offset')
  smash "$d/mbad-a.img" $((msb + AT))
  start_daemon "$CZ_CONF" mirror2
  # alone, the read goes to leg 0 first (the corrupted one)
  timeout 60 dd if="$DDEV" of=/dev/null bs=4k skip=$((off / 4096)) count=1 iflag=direct 2> "$CASE_DIR/dd-m.err" ||
    fail "a read over the mirror failed: $(cat "$CASE_DIR/dd-m.err")"
  pattern_fio mpat-check verify 0 32M --buffer_compress_percentage=50
  [ "$(cz_json "$DID" checksum_errors)" -ge 1 ] || fail "the corrupted copy was never read"
  [ "$(cz_json "$DID" repaired)" -ge 1 ] || fail "the corrupted copy was not rewritten"
  stop_daemon_ok
  check_daemon_logs crash
  cmp --ignore-initial=$((msb + AT)):$((msb + AT)) -n 65536 "$d/mbad-a.img" "$d/mbad-b.img" ||
    fail "the legs still differ where one was corrupted"
}

# the sample configs, copied (their data/ paths land next to the copy)
case_compress_confs() {
  local c w=$E2E_WORK/compress/confs
  for c in compress compressed-raid10; do
    rm -rf "$w"; mkdir -p "$w/data"
    cp "$REPO/conf/$c.conf" "$w/" || fail "no conf/$c.conf"
    start_daemon "$w/$c.conf" "$c"
    run_fio "$c" --rw=randwrite --bs=64k --iodepth=16 --size=128M --buffer_compress_percentage=50 \
      --verify=crc32c --verify_fatal=1 --do_verify=1
    timeout 30 "$UC_BIN" status "$DID" > "$CASE_DIR/$c.status" 2>&1 || fail "status of $c failed"
    grep -q ', clean, ' "$CASE_DIR/$c.status" || fail "$c: $(head -n1 "$CASE_DIR/$c.status")"
    stop_daemon_ok
    check_daemon_logs strict
  done
}

# the benchmark's compress vs zram rows, short: they run, and what they wrote reads back
case_compress_zram_bench() {
  local out=$CASE_DIR/bench j s
  mkdir -p "$out"
  [ -x "$(dirname "$UC_BIN")/czload" ] || fail "no czload next to $UC_BIN (cmake --build build)"
  OUT=$out UC_BIN=$UC_BIN CZLOAD=$(dirname "$UC_BIN")/czload BENCH_WORK=$E2E_WORK/zram REPS=1 RUNTIME=1 \
    TAR_MB=16 TREE=/usr/include/linux timeout 600 bash "$REPO/tools/bench/zram.sh" 2> "$CASE_DIR/zram.log"
  log "zram.sh: $(tail -n 3 "$CASE_DIR/zram.log" | tr '\n' ' ')"
  [ "$(cat "$out/status-zram" 2>/dev/null)" = ok ] || fail "zram.sh: $(cat "$out/status-zram" 2>/dev/null)"
  grep -q '^verified=yes' "$out/zram-info.txt" || fail "no read-back check"
  for j in write1m read1m randread4k randwrite4k; do
    for s in ours ref; do
      python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]; r,w=j["read"],j["write"]
sys.exit(0 if r["io_bytes"] + w["io_bytes"] > 0 else 1)' "$out/raw/zram.$s.$j.1.json" ||
        fail "job $j on $s: no I/O in $out/raw/zram.$s.$j.1.json"
    done
  done
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); e=json.load(open(sys.argv[2]))
sys.exit(0 if d["ours"]["bytes"] > 0 and d["ref"]["bytes"] > 0 and len(e["ours"]) == len(e["ref"]) == 1 else 1)' \
    "$out/zram-space.json" "$out/zram-ext4.json" || fail "space or ext4 results missing"
  log "$(grep -E 'zram_level|tar_' "$out/zram-info.txt" | tr '\n' ' ')"
}

COMPRESS_CASES=(
  "compress-ratio case_compress_ratio compress"
  "compress-ext4-tree case_compress_ext4_tree compress"
  "compress-crash case_compress_crash compress"
  "compress-powercut case_compress_powercut compress"
  "compress-enospc case_compress_enospc compress"
  "compress-corrupt case_compress_corrupt compress"
  "compress-confs case_compress_confs compress"
  "compress-zram-bench case_compress_zram_bench compress"
)
