#!/bin/bash
# tools/bench/zram.sh: a compress volume against zram (zstd, level 1 where the kernel lets us set
# it) on the same real data, in the same VM run (issue 14). Called by guest.sh (row `zram`) or
# alone where /dev/ublk-control and the zram module are. Both devices exist side by side; every job
# runs REPS times, interleaved (compress, zram, compress, ...):
#   data      a tar of real system files built here from /usr (TAR_MB, default 384 MiB of
#             usr/lib, usr/share/doc, usr/share/man), written with czload (real bytes, which fio
#             cannot carry); block b of a device always gets block b of the tar
#   write1m   the tar onto the device, 1M writes QD8 (czload)      -> MB/s
#   space     after the first write: compress physical_bytes vs zram mm_stat mem_used_total
#   read1m    1M sequential reads QD8 (fio, time based)            -> MB/s
#   randread4k / randwrite4k   4k QD32, time based (fio / czload)  -> IOPS
#   verify    the device reads back identical to the tar (czload verify), after the writes
#   (the 4k jobs also run on an uncompressed ublk-compose file volume holding the tar, side
#   "file": the bound the ublk round trip sets for any volume here, compressed or not)
#   ext4      mkfs.ext4, untar TREE (many small files), sync; umount, drop caches, read every
#             file back (tar to a pipe); diff against the source       -> seconds
# Raw results: $OUT/raw/zram.{ours,ref,file}.JOB.REP.json (fio-shaped), $OUT/zram-space.json,
# $OUT/zram-ext4.json, $OUT/zram-info.txt, $OUT/status-zram ("ok", "n/a (...)" or "FAILED ...").
# env: OUT (required), UC_BIN, CZLOAD, BENCH_WORK (default /var/tmp/ucbench), REPS (3), RUNTIME (4),
#      TAR_MB (384), TREE (default /usr/include), CZ_CLUSTER (64K), CZ_EXTRA (more compress keys),
#      JOBS (default "read1m randread4k randwrite4k ext4": which of them run after write1m)
# The compress volume's status --json after each job: $OUT/zram-cz.JOB.json.
set -u -o pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
UC_BIN=${UC_BIN:-$REPO/build/ublk-compose}
CZLOAD=${CZLOAD:-$REPO/build/czload}
W=${BENCH_WORK:-/var/tmp/ucbench}
REPS=${REPS:-3} RUNTIME=${RUNTIME:-4} TAR_MB=${TAR_MB:-384} TREE=${TREE:-/usr/include}
CZ_CLUSTER=${CZ_CLUSTER:-64K} CZ_EXTRA=${CZ_EXTRA:-}
JOBS=" ${JOBS:-read1m randread4k randwrite4k ext4} "
want() { [[ $JOBS == *" $1 "* ]]; }
RAW=$OUT/raw
mkdir -p "$RAW" "$W"
log() { echo "[zram $(date +%T)] $*" >&2; }
fail() { log "$*"; echo "FAILED: $*" > "$OUT/status-zram"; exit 1; }
INFO=$OUT/zram-info.txt
: > "$INFO"

[ -x "$CZLOAD" ] || fail "no czload at $CZLOAD (cmake --build build)"
[ -e /sys/block/zram0 ] || modprobe zram num_devices=1 2>/dev/null
[ -e /sys/block/zram0 ] || { echo "n/a (no zram module)" > "$OUT/status-zram"; log "no zram"; exit 0; }

# ------------------------------------------------------------------ data
cd "$W" || exit 1
TAR=$W/usr.tar TREETAR=$W/tree.tar
# a tar of that size left in BENCH_WORK by an earlier run in this guest is used again
[ "$(stat -c %s "$TAR" 2>/dev/null)" = $((TAR_MB << 20)) ] ||
  tar cf - -C / usr/lib usr/share/doc usr/share/man 2>/dev/null | head -c $((TAR_MB << 20)) > "$TAR"
SZ=$(stat -c %s "$TAR")
[ "$SZ" -ge $((TAR_MB << 20)) ] || fail "the tar of /usr holds only $SZ bytes"
tar cf "$TREETAR" -C "$(dirname "$TREE")" "$(basename "$TREE")" 2>/dev/null || fail "tar of $TREE"
TREE_FILES=$(tar tf "$TREETAR" | grep -vc '/$')
TREE_BYTES=$(stat -c %s "$TREETAR")
echo "tar_bytes=$SZ" >> "$INFO"
echo "tar_zstd1_bytes=$(zstd -1 -c -q "$TAR" | wc -c)" >> "$INFO"
echo "tree=$TREE files=$TREE_FILES tar_bytes=$TREE_BYTES" >> "$INFO"
log "data: $SZ bytes of /usr ($(sed -n 's/tar_zstd1_bytes=//p' "$INFO") with zstd -1), tree $TREE: $TREE_FILES files"
# both devices hold the tar, then a filesystem with the tree
DEV_MB=$(( (TAR_MB > TREE_BYTES / 1048576 * 3 ? TAR_MB : TREE_BYTES / 1048576 * 3) + 64 ))

# ------------------------------------------------------------------ zram
ZDEV=/dev/zram0 ZS=/sys/block/zram0
echo 1 > $ZS/reset 2>/dev/null
echo zstd > $ZS/comp_algorithm || fail "zram has no zstd ($(cat $ZS/comp_algorithm))"
ZLEVEL="default (the kernel's zstd level: no algorithm_params)"
if [ -e $ZS/algorithm_params ]; then
  echo "algo=zstd level=1" > $ZS/algorithm_params && ZLEVEL=1
fi
echo "${DEV_MB}M" > $ZS/disksize || fail "zram disksize"
echo "zram_algorithm=$(sed -n 's/.*\[\([^]]*\)\].*/\1/p' $ZS/comp_algorithm)" >> "$INFO"
echo "zram_level=$ZLEVEL" >> "$INFO"
log "zram: $(cat $ZS/comp_algorithm), level $ZLEVEL, ${DEV_MB}M"

# ------------------------------------------------------------------ compress
CPID='' FPID=''
uc_stop() { # PID
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null
  local i; for i in $(seq 1 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$1" 2>/dev/null; wait "$1" 2>/dev/null
}
cleanup() {
  uc_stop "$CPID"; uc_stop "$FPID"; umount "$W/mnt" 2>/dev/null; echo 1 > $ZS/reset 2>/dev/null
  rm -f "$W"/cz.img "$W"/plain.img
  [ -s "$OUT/status-zram" ] || echo "FAILED: zram.sh stopped early (see its log)" > "$OUT/status-zram"
}
trap cleanup EXIT
# uc_start CONF TAG: starts a daemon (its pid in $W/TAG.pid), prints its device once it is there
uc_start() {
  local i dev
  "$UC_BIN" -c "$1" > "$OUT/daemon-$2.out" 2>"$OUT/daemon-$2.err" </dev/null &
  echo $! > "$W/$2.pid"
  for i in $(seq 1 300); do
    dev=$(grep -m1 -oE '^/dev/ublkb[0-9]+' "$OUT/daemon-$2.out" 2>/dev/null || true)
    [ -n "$dev" ] && [ -b "$dev" ] && { echo "$dev"; return 0; }
    kill -0 "$(cat "$W/$2.pid")" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}
rm -f cz.img plain.img
cat > zram-cz.conf <<EOF
device = { queues = 1; depth = 128; max_io = "1M"; block_size = 4096; };
volume = { type = "compress"; name = "cz"; level = 1; cluster = "$CZ_CLUSTER"; size = "${DEV_MB}M"; $CZ_EXTRA
  children = ( { type = "file"; path = "$W/cz.img"; size = "$((DEV_MB + DEV_MB / 8))M"; } ); };
EOF
CDEV=$(uc_start zram-cz.conf zram) || fail "no compress device: $(tail -n 2 "$OUT/daemon-zram.err")"
CPID=$(cat "$W/zram.pid")
# the uncompressed reference for the 4k jobs: a file volume holding the tar
cp "$TAR" plain.img
echo 'device = { queues = 1; depth = 128; max_io = "1M"; block_size = 4096; };' > zram-file.conf
echo "volume = { type = \"file\"; name = \"plain\"; path = \"$W/plain.img\"; };" >> zram-file.conf
FDEV=$(uc_start zram-file.conf zram-file) || fail "no file device: $(tail -n 2 "$OUT/daemon-zram-file.err")"
FPID=$(cat "$W/zram-file.pid")
echo "compress=zstd level 1, cluster $CZ_CLUSTER${CZ_EXTRA:+, $CZ_EXTRA}" >> "$INFO"
log "compress: $CDEV (cluster $CZ_CLUSTER) pid $CPID"

dev_of() { case $1 in ours) echo "$CDEV" ;; file) echo "$FDEV" ;; *) echo "$ZDEV" ;; esac; }
czload() { # SIDE JOB REP MODE ARGS...
  local s=$1 job=$2 rep=$3 mode=$4; shift 4
  "$CZLOAD" "$mode" "$(dev_of "$s")" "$TAR" "$@" > "$RAW/zram.$s.$job.$rep.json" 2>"$RAW/zram.$s.$job.$rep.err" ||
    fail "czload $mode on $(dev_of "$s"): $(head -c 300 "$RAW/zram.$s.$job.$rep.err")"
  [ -s "$RAW/zram.$s.$job.$rep.err" ] || rm -f "$RAW/zram.$s.$job.$rep.err"
}
fiojob() { # SIDE JOB REP FIO-ARGS...
  local s=$1 job=$2 rep=$3; shift 3
  timeout -k 10 $((RUNTIME * 4 + 120)) fio --name="$job" --filename="$(dev_of "$s")" --ioengine=io_uring \
    --direct=1 --time_based --runtime="$RUNTIME" --size="$SZ" --norandommap --randrepeat=0 \
    --percentile_list=50:99 --output-format=json --output="$RAW/zram.$s.$job.$rep.json" "$@" \
    </dev/null >/dev/null 2>&1 || fail "fio $job on $(dev_of "$s")"
}
space() { # SIDE: bytes the data takes, bytes stored
  if [ "$1" = ours ]; then
    "$UC_BIN" status "${CDEV#/dev/ublkb}" --json > "$W/status.json" 2>&1
    python3 -c 'import json,sys
v = json.load(open(sys.argv[1]))["volume"]
print(v["physical_bytes"], v["logical_bytes"])' "$W/status.json" 2>>"$W/status.json" ||
      fail "status --json of $CDEV: $(head -c 400 "$W/status.json")"
  else
    awk '{print $3, $1}' $ZS/mm_stat
  fi
}

cz_status() { # JOB
  "$UC_BIN" status "${CDEV#/dev/ublkb}" --json > "$OUT/zram-cz.$1.json" 2>&1
}
# Let the compress volume's idle folds (fold_idle, default 10 s) finish before zram is measured:
# they fold the clusters whose pages are stored alone, and must not take CPU from the other side.
# The seconds it took and the space after go into zram-info.txt (settle.JOB=...).
cz_settle() { # JOB
  local job=$1 t0 i=0 j
  t0=$(date +%s.%N)
  while :; do
    j=$("$UC_BIN" status "${CDEV#/dev/ublkb}" --json 2>/dev/null | python3 -c 'import json,sys
v = json.load(sys.stdin)["volume"]
print(v.get("pages_alone", 0), v.get("idle_folds", 0), v.get("physical_bytes", 0), v.get("fold_idle_ms", 0))') || j="? ? ? ?"
    set -- $j
    { [ "$1" = 0 ] || [ "$4" = 0 ] || [ "$i" -ge 120 ]; } && break
    sleep 1; i=$((i + 1))
  done
  echo "settle.$job=$(echo "$(date +%s.%N) - $t0" | bc -l | cut -c1-6)s pages_alone=$1 idle_folds=$2 physical_bytes=$3" >> "$INFO"
}

# ------------------------------------------------------------------ the jobs, interleaved
for rep in $(seq 1 "$REPS"); do
  for s in ours ref; do
    czload "$s" write1m "$rep" write --bs 1048576 --qd 8
    if [ "$rep" = 1 ]; then
      sync; sleep 1
      sp=$(space "$s") || exit 1
      echo "$s $sp" >> "$W/space.txt"
    fi
  done
done
cz_status write1m
log "write1m done; space: $(tr '\n' ';' < "$W/space.txt")"
for rep in $(seq 1 "$REPS"); do
  want read1m || break
  for s in ours ref; do fiojob "$s" read1m "$rep" --rw=read --bs=1M --iodepth=8; done
done
want read1m && cz_status read1m
for rep in $(seq 1 "$REPS"); do
  want randread4k || break
  for s in ours ref file; do fiojob "$s" randread4k "$rep" --rw=randread --bs=4k --iodepth=32; done
done
want randread4k && cz_status randread4k
log "reads done"
for rep in $(seq 1 "$REPS"); do
  want randwrite4k || break
  for s in ours ref file; do czload "$s" randwrite4k "$rep" randwrite --bs 4096 --qd 32 --seconds "$RUNTIME"; done
done
want randwrite4k && cz_status randwrite4k && cz_settle randwrite4k
uc_stop "$FPID"; FPID=''; rm -f plain.img
log "randwrite4k done: $("$UC_BIN" status "${CDEV#/dev/ublkb}" 2>/dev/null | grep -m1 compress | tr -s ' ')"
for s in ours ref; do
  "$CZLOAD" verify "$(dev_of "$s")" "$TAR" --bs 1048576 --qd 8 > "$RAW/zram.$s.verify.json" 2>"$W/verify.err" ||
    fail "$(dev_of "$s") does not read back the tar: $(cat "$W/verify.err")"
done
echo "verified=yes" >> "$INFO"
log "both devices read back identical to the tar"
python3 - "$W/space.txt" "$OUT/zram-space.json" <<'EOF'
import json, sys
d = {}
for line in open(sys.argv[1]):
    s, used, stored = line.split()
    d[s] = {"bytes": int(used), "stored": int(stored)}
json.dump(d, open(sys.argv[2], "w"), indent=1)
EOF

# ------------------------------------------------------------------ ext4 with many small files
mkdir -p "$W/mnt"
E4=$W/ext4.txt
: > "$E4"
for rep in $(seq 1 "$REPS"); do
  want ext4 || break
  for s in ours ref; do
    d=$(dev_of "$s")
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$d" || fail "mkfs.ext4 on $d"
    mount -o noinit_itable "$d" "$W/mnt" || fail "mount $d"
    sync; echo 3 > /proc/sys/vm/drop_caches
    t0=$(date +%s.%N)
    tar xf "$TREETAR" -C "$W/mnt" && sync
    t1=$(date +%s.%N)
    [ "$s" = ours ] && cz_status "ext4-untar.$rep"
    umount "$W/mnt" || fail "umount $d"
    mount -o ro "$d" "$W/mnt" || fail "mount $d again"
    echo 3 > /proc/sys/vm/drop_caches
    t2=$(date +%s.%N)
    rb=$(tar cf - -C "$W/mnt" . | wc -c)
    t3=$(date +%s.%N)
    [ "$s" = ours ] && cz_status "ext4-read.$rep" && cz_settle "ext4.$rep"
    # every file as the source has it (contents, not metadata; symbolic links as links)
    diff -r --no-dereference "$TREE" "$W/mnt/$(basename "$TREE")" > "$W/diff.out" 2>&1 || fail "ext4 on $d: the files differ: $(head -c 300 "$W/diff.out")"
    umount "$W/mnt" || fail "umount $d"
    echo "$s $rep $(echo "$t1 - $t0" | bc -l) $(echo "$t3 - $t2" | bc -l) $rb" >> "$E4"
  done
done
log "ext4: $(tr '\n' ';' < "$E4")"
python3 - "$E4" "$OUT/zram-ext4.json" "$TREE_FILES" "$TREE_BYTES" <<'EOF'
import json, sys
d = {"files": int(sys.argv[3]), "tar_bytes": int(sys.argv[4]), "ours": [], "ref": []}
for line in open(sys.argv[1]):
    s, rep, untar, readback, rb = line.split()
    d[s].append({"untar_sync_s": float(untar), "read_back_s": float(readback), "read_bytes": int(rb)})
json.dump(d, open(sys.argv[2], "w"), indent=1)
EOF
"$UC_BIN" status "${CDEV#/dev/ublkb}" > "$OUT/status-zram.txt" 2>&1
cat $ZS/mm_stat >> "$OUT/status-zram.txt"
echo ok > "$OUT/status-zram"
log "done"
