#!/bin/bash
# tools/bench/guest.sh: the device side of tools/bench/run.sh. Runs where /dev/ublk-control exists
# (inside the QEMU guest, or on the host): makes the backing files on one medium (tmpfs), brings up
# each ublk-compose volume and its kernel reference (loop / md over loop) on the same files, and
# runs the same fio jobs against both, interleaved (ours, reference, ours, ...) REPS times.
# Raw fio JSON goes to $OUT/raw/ROW.SIDE.JOB.REP.json; run.sh (report.py) turns it into tables.
# env: OUT (required), UC_BIN, UC_NULL_BIN (the do-nothing target, build/ucbench-null), BENCH_WORK
#      (default /var/tmp/ucbench), QUEUES, NUMJOBS, RUNTIME, REPS, JOBS (names, see job_args), ROWS
#      (file stripe4 raid10 mirror2 compress compress_rand null_file null_stripe4 batch_off nbd
#      mirror_nbd zram), NULL_JOBS, BATCH_JOBS, NBD_JOBS (the jobs of the null_*, batch_off and nbd
#      rows), SCALING (1/0); the zram row (tools/bench/zram.sh) also takes CZLOAD, TAR_MB, TREE
set -u -o pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
UC_BIN=${UC_BIN:-$REPO/build/ublk-compose}
UC_NULL_BIN=${UC_NULL_BIN:-$REPO/build/ucbench-null}
W=${BENCH_WORK:-/var/tmp/ucbench}
QUEUES=${QUEUES:-1} NUMJOBS=${NUMJOBS:-1} RUNTIME=${RUNTIME:-4} REPS=${REPS:-3}
JOBS=${JOBS:-"randread4k_qd32 randwrite4k_qd32 randread4k_qd1 read1m_qd8 write1m_qd8 randrw70_4k_qd32"}
ROWS=${ROWS:-"file stripe4 raid10 mirror2 compress compress_rand null_file null_stripe4 batch_off nbd mirror_nbd zram"}
# file and stripe against the do-nothing ublk target (what the round trip alone allows), and the
# file volume with UBLK_F_BATCH_IO against itself with per-tag commands (kernels that batch)
NULL_JOBS=${NULL_JOBS:-"randread4k_qd32 randwrite4k_qd32 randread4k_qd1"}
BATCH_JOBS=${BATCH_JOBS:-"randread4k_qd32 randwrite4k_qd32 randread4k_qd1 read1m_qd8 write1m_qd8"}
# the nbd rows: an nbdkit export (file plugin on the same tmpfs, TCP loopback) through our nbd leaf
# and through the kernel's NBD client (nbd-client, one connection per ublk queue)
NBD_JOBS=${NBD_JOBS:-"randread4k_qd32 randwrite4k_qd32 read1m_qd8 write1m_qd8"}
# the compress rows: jobs, and the data fio writes (2:1 compressible, or random every time)
CZ_JOBS=${CZ_JOBS:-"write1m_qd8 read1m_qd8 randread4k_qd32 randwrite4k_qd32"}
FIO_EXTRA=
SCALING=${SCALING:-1}
FILE_MB=${FILE_MB:-512}      # the single-file volume
LEG_MB=${LEG_MB:-128}        # each of the 4 stripe/raid legs
CZ_MB=${CZ_MB:-256}          # the compress volume and its uncompressed reference (tmpfs: 2G in all)
RAW=$OUT/raw
mkdir -p "$RAW" "$W"
log() { echo "[bench $(date +%T)] $*" >&2; }

# ------------------------------------------------------------------ fio jobs
job_args() {
  case $1 in
    randread4k_qd32)  echo "--rw=randread --bs=4k --iodepth=32" ;;
    randwrite4k_qd32) echo "--rw=randwrite --bs=4k --iodepth=32" ;;
    randread4k_qd1)   echo "--rw=randread --bs=4k --iodepth=1" ;;
    read1m_qd8)       echo "--rw=read --bs=1M --iodepth=8" ;;
    write1m_qd8)      echo "--rw=write --bs=1M --iodepth=8" ;;
    randrw70_4k_qd32) echo "--rw=randrw --rwmixread=70 --bs=4k --iodepth=32" ;;
    *) echo "unknown job $1" >&2; return 1 ;;
  esac
}

# run_fio DEV OUTFILE JOB [numjobs]
# cpu_ticks: busy and total ticks of all CPUs so far (/proc/stat; busy = all but idle and iowait)
cpu_ticks() { awk '/^cpu /{t=0; for (i=2;i<=9;i++) t+=$i; print t-$5-$6, t; exit}' /proc/stat; }
run_fio() {
  local dev=$1 out=$2 job=$3 nj=${4:-$NUMJOBS} c0
  c0=$(cpu_ticks)
  # shellcheck disable=SC2046
  timeout -k 10 $((RUNTIME * 4 + 120)) fio --name="$job" --filename="$dev" --ioengine=io_uring --direct=1 \
    --time_based --runtime="$RUNTIME" --numjobs="$nj" --group_reporting --norandommap --randrepeat=0 \
    --percentile_list=50:99 --output-format=json --output="$out" $(job_args "$job") $FIO_EXTRA </dev/null >/dev/null 2>"$out.err" \
    || log "fio $job on $dev failed rc=$? ($(head -c 300 "$out.err"))"
  # the guest's CPU time over the run (fio's start and end included): how busy the CPUs were
  echo "$c0 $(cpu_ticks) $(getconf CLK_TCK)" > "$out.cpu"
  [ -s "$out.err" ] || rm -f "$out.err"
}

# ------------------------------------------------------------------ devices
DPID='' DDEV=''
DERR=''
start_uc() {   # start_uc CONF TAG [BINARY]: sets DPID DDEV; returns 1 on failure
  local conf=$1 tag=$2 bin=${3:-$UC_BIN} out=$OUT/daemon-$2.out i
  DERR=$OUT/daemon-$tag.err
  "$bin" -c "$conf" >"$out" 2>"$OUT/daemon-$tag.err" </dev/null &
  DPID=$!
  for i in $(seq 1 300); do
    DDEV=$(grep -m1 -oE '^/dev/ublkb[0-9]+' "$out" 2>/dev/null || true)
    [ -n "$DDEV" ] && [ -b "$DDEV" ] && { log "ublk-compose ($tag) pid $DPID serves $DDEV"; return 0; }
    kill -0 "$DPID" 2>/dev/null || { log "ublk-compose ($tag) exited: $(tail -n 3 "$OUT/daemon-$tag.err")"; DPID=''; return 1; }
    sleep 0.2
  done
  log "ublk-compose ($tag): no device after 60 s"; stop_uc; return 1
}
stop_uc() {
  [ -n "$DPID" ] || return 0
  kill -TERM "$DPID" 2>/dev/null
  local i; for i in $(seq 1 300); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; DPID='' DDEV=''
  # what the daemon warned about while measured (a resync, a failed leg) belongs in the log
  if [ -s "$DERR" ]; then log "daemon said: $(head -n 3 "$DERR" | tr '\n' ' ')"; fi
  DERR=''
}
LOOPS=()
loop_of() {    # loop_of FILE: a direct-I/O loop device on FILE, in LOOP (not in a subshell: LOOPS
  # must keep it, or md_stop never detaches it)
  LOOP=$(losetup --direct-io=on -f --show "$1") || return 1
  LOOPS+=("$LOOP")
}
MD=''
md_create() {  # md_create LEVEL N FILES... (extra args in MDARGS): sets MD
  local level=$1 n=$2; shift 2
  local devs=() f
  for f in "$@"; do loop_of "$f" && devs+=("$LOOP"); done
  for f in "${devs[@]}"; do mdadm --zero-superblock --force "$f" >/dev/null 2>&1; done
  MD=/dev/md/ucbench
  # shellcheck disable=SC2086
  if ! mdadm --create "$MD" --run --force --metadata=1.2 --level="$level" --raid-devices="$n" \
      ${MDARGS:-} "${devs[@]}" </dev/null >"$OUT/mdadm-$level.log" 2>&1; then
    log "mdadm --create level $level failed: $(tail -n 2 "$OUT/mdadm-$level.log")"; MD=''; return 1
  fi
  MD=$(readlink -f "$MD")
  cat /proc/mdstat >> "$OUT/mdadm-$level.log"
  log "md $level on ${devs[*]}: $MD"
}
md_stop() {
  [ -n "$MD" ] && mdadm --stop "$MD" >/dev/null 2>&1
  MD=''
  # md lets go of its members a moment after --stop, and a loop device left behind keeps its
  # file's space on the tmpfs after the file is deleted (the 6.12 zram row of 12-05 found it full)
  local l i
  for l in "${LOOPS[@]}"; do
    for i in $(seq 1 25); do
      losetup -d "$l" 2>/dev/null; losetup "$l" >/dev/null 2>&1 || break; sleep 0.2
    done
    losetup "$l" >/dev/null 2>&1 && log "$l still attached after 5 s"
  done
  LOOPS=() OUR_LEG=()
}
NBDKIT_PIDS=() NBD_DEV=''
nbd_export() {  # nbd_export PORT FILE: nbdkit's file plugin on 127.0.0.1:PORT
  local pidf=$W/nbdkit-$1.pid
  rm -f "$pidf"
  nbdkit -P "$pidf" -i 127.0.0.1 -p "$1" file "$2" </dev/null >>"$OUT/nbdkit.log" 2>&1 || { log "nbdkit on $1 failed"; return 1; }
  NBDKIT_PIDS+=("$(cat "$pidf")")
}
nbd_attach() {  # nbd_attach PORT: the kernel's client on /dev/nbd0 (sets NBD_DEV)
  nbd-client 127.0.0.1 "$1" /dev/nbd0 -N '' -b 4096 -C "$QUEUES" >>"$OUT/nbd-client.log" 2>&1 ||
    { log "nbd-client failed: $(tail -n 2 "$OUT/nbd-client.log")"; return 1; }
  NBD_DEV=/dev/nbd0
}
nbd_stop() {
  [ -n "$NBD_DEV" ] && nbd-client -d "$NBD_DEV" >/dev/null 2>&1
  NBD_DEV=''
  local p; for p in "${NBDKIT_PIDS[@]}"; do kill "$p" 2>/dev/null; done; NBDKIT_PIDS=()
}
cleanup() { stop_uc; md_stop; nbd_stop; }
trap cleanup EXIT

# ------------------------------------------------------------------ configs (ublk-compose side)
devconf() { echo "device = { queues = ${1:-$QUEUES}; depth = 128; max_io = \"1M\"; block_size = 4096; };"; }
# UC_LEGS=loop: our stripe/raid/mirror legs are direct-I/O loop devices of the files (ours_on_loop),
# the kind of block device md runs on, not the tmpfs files themselves
UC_LEGS=${UC_LEGS:-loop}
declare -A OUR_LEG=()
ours_on_loop() {  # ours_on_loop FILES...: each file's loop device for our side (UC_LEGS=loop)
  OUR_LEG=()
  [ "$UC_LEGS" = loop ] || return 0
  local f; for f in "$@"; do loop_of "$W/$f" || return 1; OUR_LEG[$f]=$LOOP; done
  log "our legs: ${OUR_LEG[*]}"
}
leg() { echo "{ type = \"file\"; path = \"${OUR_LEG[$1]:-$1}\"; }"; }
conf_file()    { devconf "${1:-}"; echo "volume = $(leg f0.img);"; }
conf_stripe4() { devconf; echo "volume = { type = \"stripe\"; chunk = \"64K\"; children = ( $(leg s0.img), $(leg s1.img), $(leg s2.img), $(leg s3.img) ); };"; }
# mirrors: assume_clean like md's --assume-clean (the legs hold different random data; no initial
# resync during the run). Ours keeps its write-intent bitmap (md runs with --bitmap=none): the
# first write to each 64M region costs a metadata write, then nothing.
mirror() { echo "{ type = \"mirror\"; assume_clean = true; children = ( $(leg "$1"), $(leg "$2") ); }"; }
conf_mirror2() { devconf; echo "volume = $(mirror s0.img s1.img);"; }
conf_raid10()  { devconf; echo "volume = { type = \"stripe\"; chunk = \"64K\"; children = ( $(mirror s0.img s1.img), $(mirror s2.img s3.img) ); };"; }
# compress (zstd level 1, 64K clusters) over a sparse file, against the plain file volume on a
# file of its own: both get the same data written in full first
conf_compress() { devconf; echo "volume = { type = \"compress\"; level = 1; cluster = \"64K\"; size = \"${CZ_MB}M\"; children = ( { type = \"file\"; path = \"c0.img\"; size = \"$((CZ_MB + 32))M\"; } ); };"; }
conf_compress_rand() { conf_compress; }
conf_null() { devconf; echo 'volume = { type = "null"; size = "512M"; };'; }
conf_batch_off() { conf_file | sed 's/block_size = 4096;/block_size = 4096; batch = false;/; s/f0.img/b1.img/'; }
nbd_leg() { echo "{ type = \"nbd\"; uri = \"nbd://127.0.0.1:$1/\"; }"; }
conf_nbd() { devconf; echo "volume = $(nbd_leg 10809);"; }
# the nbd leg write-mostly on both sides (ours: write_mostly, md: --write-mostly), as an admin sets a remote leg
conf_mirror_nbd() { devconf; echo "volume = { type = \"mirror\"; assume_clean = true; write_mostly = [ \"remote\" ]; children = ( $(leg s0.img), { type = \"nbd\"; name = \"remote\"; uri = \"nbd://127.0.0.1:10810/\"; } ); };"; }

# layer_ok ROW: 0 if ublk-compose accepts the row's config; else writes the reason to $OUT/status-ROW
layer_ok() {
  local row=$1 msg rc
  "conf_$row" > "$W/$row.conf"
  msg=$("$UC_BIN" check -c "$W/$row.conf" 2>&1 >/dev/null); rc=$?
  if [ "$rc" = 0 ]; then echo ok > "$OUT/status-$row"; return 0; fi
  if [ "$rc" = 2 ] && grep -q "unknown layer type" <<<"$msg"; then
    echo "n/a (layer not implemented)" > "$OUT/status-$row"
  else
    echo "n/a (config rejected: ${msg:0:120})" > "$OUT/status-$row"
  fi
  log "$row: $(cat "$OUT/status-$row")"
  return 1
}

# bench_pair ROW OURS_DEV REF_DEV [JOBS]: every job, REPS times, interleaved; an empty dev is skipped
bench_pair() {
  local row=$1 ours=$2 ref=$3 job rep
  for job in ${4:-$JOBS}; do
    for rep in $(seq 1 "$REPS"); do
      [ -n "$ours" ] && run_fio "$ours" "$RAW/$row.ours.$job.$rep.json" "$job"
      [ -n "$ref" ] && run_fio "$ref" "$RAW/$row.ref.$job.$rep.json" "$job"
    done
    log "$row $job done"
  done
}

# ------------------------------------------------------------------ machine facts
{
  echo "kernel=$(uname -r)"
  echo "nproc=$(nproc)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "mem_mb=$(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo)"
  echo "fio=$(fio --version)"
  echo "ublk_compose=$("$UC_BIN" --version 2>&1 | head -1) ${BUILD_INFO:-}"
  echo "medium=$(df -T "$W" | awk 'NR==2{print $2}') ($W)"
  echo "queues=$QUEUES"; echo "numjobs=$NUMJOBS"; echo "runtime=$RUNTIME"; echo "reps=$REPS"
  echo "our_legs=$UC_LEGS"
  echo "hypervisor=$(grep -m1 -o 'hypervisor' /proc/cpuinfo || echo none)"
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$OUT/machine.txt"
log "$(tr '\n' ' ' < "$OUT/machine.txt")"

# ------------------------------------------------------------------ backing files (written in full)
cd "$W" || exit 1
rm -f ./*.img
dd if=/dev/urandom of=f0.img bs=1M count="$FILE_MB" status=none
# the stripe/raid legs: made again when a row needs them after the compress rows dropped them
# (the guest's tmpfs is half its RAM: 2G holds f0 + the legs, or f0 + the compress files)
legs_ready() {
  local i
  for i in 0 1 2 3; do
    [ -e s$i.img ] || dd if=f0.img of=s$i.img bs=1M count="$LEG_MB" skip=$((i * LEG_MB % FILE_MB)) status=none
  done
  sync
}
legs_ready
# A mirror row starts its legs afresh: md's 1.2 superblock (leg byte 4096) lands on our bitmap while
# both run on the same files, and the next start found a bitmap checksum mismatch and measured
# during a full resync (the mirror2 rows of the 12-03 and 12-04 15:08 runs did).
fresh_mirror_legs() {
  local f; for f; do dd if=/dev/zero of="$f" bs=1M count=2 conv=notrunc status=none; done
}
log "backing files: f0 ${FILE_MB}M, s0..s3 ${LEG_MB}M each on $(df -T . | awk 'NR==2{print $2}')"

for row in $ROWS; do
  log "---- $row"
  case $row in
    file)
      conf_file > "$W/file.conf"; echo ok > "$OUT/status-file"
      start_uc "$W/file.conf" file || { echo "n/a (daemon failed)" > "$OUT/status-file"; }
      loop_of "$W/f0.img"; L=$LOOP; echo "loop_dio=$(cat /sys/block/"${L#/dev/}"/loop/dio 2>/dev/null)" >> "$OUT/machine.txt"
      bench_pair file "$DDEV" "$L"
      stop_uc
      if [ "$UC_LEGS" = loop ]; then
        # the file volume on the loop device the RAID rows' legs are made of: the "vs file" table's
        # reference when the layers' legs are loop devices (the same medium on both sides of it)
        OUR_LEG[f0.img]=$L; conf_file > "$W/file_legs.conf"; echo ok > "$OUT/status-file_legs"
        start_uc "$W/file_legs.conf" file_legs || echo "n/a (daemon failed)" > "$OUT/status-file_legs"
        bench_pair file_legs "$DDEV" "" "randread4k_qd32 randread4k_qd1 read1m_qd8"
        stop_uc
      fi
      md_stop ;;
    stripe4)
      legs_ready; ours_on_loop s0.img s1.img s2.img s3.img
      conf_stripe4 > "$W/stripe4.conf"; echo ok > "$OUT/status-stripe4"
      start_uc "$W/stripe4.conf" stripe4 || echo "n/a (daemon failed)" > "$OUT/status-stripe4"
      MDARGS="--chunk=64" md_create 0 4 s0.img s1.img s2.img s3.img
      bench_pair stripe4 "$DDEV" "$MD"
      stop_uc; md_stop ;;
    raid10)
      legs_ready; fresh_mirror_legs s0.img s1.img s2.img s3.img; ours_on_loop s0.img s1.img s2.img s3.img
      layer_ok raid10 && { start_uc "$W/raid10.conf" raid10 || echo "n/a (daemon failed)" > "$OUT/status-raid10"; }
      MDARGS="--chunk=64 --layout=n2 --assume-clean --bitmap=none" md_create 10 4 s0.img s1.img s2.img s3.img
      bench_pair raid10 "$DDEV" "$MD"
      stop_uc; md_stop ;;
    mirror2)
      legs_ready; fresh_mirror_legs s0.img s1.img; ours_on_loop s0.img s1.img
      layer_ok mirror2 && { start_uc "$W/mirror2.conf" mirror2 || echo "n/a (daemon failed)" > "$OUT/status-mirror2"; }
      MDARGS="--assume-clean --bitmap=none" md_create 1 2 s0.img s1.img
      bench_pair mirror2 "$DDEV" "$MD"
      stop_uc; md_stop ;;
    null_file|null_stripe4)
      # ours against the do-nothing target (ucbench-null) on the same ublk path, interleaved; the
      # volume's legs as the other rows' (UC_LEGS)
      legs_ready
      if [ "$row" = null_file ]; then ours_on_loop f0.img; else ours_on_loop s0.img s1.img s2.img s3.img; fi
      "conf_${row#null_}" > "$W/$row.conf"; conf_null > "$W/null.conf"; echo ok > "$OUT/status-$row"
      if [ ! -x "$UC_NULL_BIN" ]; then
        echo "n/a (no $UC_NULL_BIN)" > "$OUT/status-$row"
      elif start_uc "$W/$row.conf" "$row"; then
        OURS_DEV=$DDEV OURS_PID=$DPID DPID=''
        if start_uc "$W/null.conf" "$row-null" "$UC_NULL_BIN"; then
          bench_pair "$row" "$OURS_DEV" "$DDEV" "$NULL_JOBS"
          stop_uc
        else
          echo "n/a (null target failed)" > "$OUT/status-$row"
        fi
        DPID=$OURS_PID; stop_uc
      else
        echo "n/a (daemon failed)" > "$OUT/status-$row"
      fi
      md_stop ;;
    batch_off)
      # the same file volume (a copy) with batch = false: what UBLK_F_BATCH_IO brings here
      conf_file > "$W/batch_on.conf"; conf_batch_off > "$W/batch_off.conf"
      cp f0.img b1.img
      if start_uc "$W/batch_on.conf" batch_on; then
        OURS_DEV=$DDEV OURS_PID=$DPID DPID=''
        if ! "$UC_BIN" status --json 2>/dev/null | grep -q '"batch": true'; then
          echo "n/a (no UBLK_F_BATCH_IO on $(uname -r))" > "$OUT/status-$row"
        elif start_uc "$W/batch_off.conf" batch_off; then
          echo ok > "$OUT/status-$row"
          bench_pair "$row" "$OURS_DEV" "$DDEV" "$BATCH_JOBS"
          stop_uc
        else
          echo "n/a (daemon with batch = false failed)" > "$OUT/status-$row"
        fi
        DPID=$OURS_PID; stop_uc
      else
        echo "n/a (daemon failed)" > "$OUT/status-$row"
      fi
      rm -f b1.img ;;
    compress|compress_rand)
      # 2:1 data (half of every 512 bytes zero) or random data, refilled for every write
      if [ "$row" = compress ]; then FIO_EXTRA="--buffer_compress_percentage=50 --refill_buffers"
      else FIO_EXTRA="--refill_buffers"; fi
      if layer_ok "$row"; then
        rm -f c0.img c1.img s?.img; truncate -s "${CZ_MB}M" c1.img
        log "$row: $(df -h . | awk 'NR==2{print $4}') free for the compress files"
        conf_file > "$W/$row-ref.conf"; sed -i 's/f0.img/c1.img/' "$W/$row-ref.conf"
        if start_uc "$W/$row.conf" "$row"; then
          CZ_DEV=$DDEV CZ_PID=$DPID DPID=''
          if start_uc "$W/$row-ref.conf" "$row-ref"; then
            for d in "$CZ_DEV" "$DDEV"; do
              # shellcheck disable=SC2086
              fio --name=fill --filename="$d" --ioengine=io_uring --direct=1 --rw=write --bs=1M --iodepth=8 \
                $FIO_EXTRA </dev/null >/dev/null 2>&1 || log "$row: prefill of $d failed"
            done
            "$UC_BIN" status >> "$OUT/status-$row.txt" 2>&1
            bench_pair "$row" "$CZ_DEV" "$DDEV" "$CZ_JOBS"
            "$UC_BIN" status >> "$OUT/status-$row.txt" 2>&1
            stop_uc
          else
            echo "n/a (reference daemon failed)" > "$OUT/status-$row"
          fi
          DPID=$CZ_PID; stop_uc
        else
          echo "n/a (daemon failed)" > "$OUT/status-$row"
        fi
      fi
      rm -f c0.img c1.img
      FIO_EXTRA='' ;;
    nbd)
      legs_ready
      ip link set lo up 2>/dev/null
      if nbd_export 10809 "$W/s2.img"; then
        layer_ok nbd && { start_uc "$W/nbd.conf" nbd || echo "n/a (daemon failed)" > "$OUT/status-nbd"; }
        nbd_attach 10809
        bench_pair nbd "$DDEV" "$NBD_DEV" "$NBD_JOBS"
        "$UC_BIN" status >> "$OUT/status-nbd.txt" 2>&1
      else
        echo "n/a (no nbdkit)" > "$OUT/status-nbd"
      fi
      stop_uc; nbd_stop ;;
    mirror_nbd)
      legs_ready; fresh_mirror_legs s0.img s1.img
      ip link set lo up 2>/dev/null
      if nbd_export 10810 "$W/s1.img"; then
        layer_ok mirror_nbd && { start_uc "$W/mirror_nbd.conf" mirror_nbd || echo "n/a (daemon failed)" > "$OUT/status-mirror_nbd"; }
        if nbd_attach 10810; then
          MD=/dev/md/ucbench
          loop_of "$W/s0.img"; L0=$LOOP
          mdadm --zero-superblock --force "$L0" "$NBD_DEV" >/dev/null 2>&1
          mdadm --create "$MD" --run --force --metadata=1.2 --level=1 --raid-devices=2 --assume-clean \
            --bitmap=none "$L0" --write-mostly "$NBD_DEV" </dev/null >"$OUT/mdadm-nbd.log" 2>&1 || { log "mdadm over nbd failed"; MD=''; }
          [ -n "$MD" ] && MD=$(readlink -f "$MD")
        fi
        bench_pair mirror_nbd "$DDEV" "$MD" "$NBD_JOBS"
      else
        echo "n/a (no nbdkit)" > "$OUT/status-mirror_nbd"
      fi
      stop_uc; md_stop; nbd_stop ;;
    zram)
      # compress vs zram on real data: a script of its own (its raw results: raw/zram.*)
      # every other row's files: the tar, the tree, both volumes and their data need the room on
      # the tmpfs (about 1.2G of its 2G); f0 is made again for the rows that follow
      rm -f -- "$W"/*.img
      log "zram: $(df -h --output=avail . | tail -n 1 | tr -d ' ') free on the work tmpfs"
      OUT=$OUT UC_BIN=$UC_BIN BENCH_WORK=$W REPS=$REPS RUNTIME=$RUNTIME bash "$HERE/zram.sh" ||
        log "zram: $(cat "$OUT/status-zram" 2>/dev/null)"
      rm -f "$W"/usr.tar "$W"/tree.tar "$W"/*.img
      dd if=/dev/urandom of=f0.img bs=1M count="$FILE_MB" status=none ;;
  esac
done

if [ "$SCALING" = 1 ]; then
  log "---- scaling: single-file volume, 4k randread QD32, numjobs 2, queues 1 vs 2"
  for q in 1 2; do conf_file "$q" > "$W/file-q$q.conf"; done
  for rep in $(seq 1 "$REPS"); do
    for q in 1 2; do
      start_uc "$W/file-q$q.conf" "scale-q$q" || continue
      run_fio "$DDEV" "$RAW/scaling.q$q.randread4k_qd32.$rep.json" randread4k_qd32 2
      stop_uc
    done
  done
fi
rm -f "$W"/*.img
log "done"
