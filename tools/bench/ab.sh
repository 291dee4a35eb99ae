#!/bin/bash
# tools/bench/ab.sh: short A/B runs of the RAID rows. In one VM (or on the host when it has
# /dev/ublk-control), every binary given and the md reference serve the same layout on the same
# leg files (tmpfs, written in full), and every fio job runs on each of them in turn,
# interleaved (A, B, ..., md, A, B, ..., md, ...), REPS times; each binary's daemon is started for
# its run and stopped after it. Prints medians and each binary's
# ratio to md (loop for the file row) per row, job and queue count; the raw fio JSON stays in OUT
# (packed as raw.tar.xz; the binaries' copies are removed).
# The jobs and fio options are guest.sh's. Rows: stripe4 (md raid0), raid10 (stripe over two
# 2-way mirrors, md raid10 n2), mirror2 (md raid1), file (one file of 4 legs' size, loop).
# usage: bash tools/bench/ab.sh [--kernel lts|latest] [--queues "1 2"] [--rows "raid10 mirror2"]
#          [--jobs "randread4k_qd32 ..."] [--runtime S (3)] [--reps N (3)] [--out DIR] NAME=BINARY...
#   e.g. bash tools/bench/ab.sh --kernel latest before=build/bench/uc-main after=build/ublk-compose
# Wrap it in the VM lock when others share the machine: flock /var/tmp/uc-vm.lock bash tools/bench/ab.sh ...
# AB_VMRUN: another vmrun script (e.g. one with -icount: guest time counted in instructions)
set -u -o pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
KERNEL=latest QUEUES="1" ROWS="raid10 mirror2" RUNTIME=3 REPS=3 OUT=''
JOBS="randread4k_qd32 randwrite4k_qd32 read1m_qd8 write1m_qd8"
GUEST=0
while [ $# -gt 0 ]; do
  case $1 in
    --kernel) KERNEL=$2; shift 2 ;;
    --queues) QUEUES=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --runtime) RUNTIME=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --guest) GUEST=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    --*) echo "unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [options] NAME=BINARY..." >&2; exit 2; }
log() { echo "[ab $(date +%T)] $*" >&2; }
# fio options of a job (a job fio does not know would run with fio's defaults: refused here)
job_args() {
  case $1 in
    randread4k_qd32)  echo "--rw=randread --bs=4k --iodepth=32" ;;
    randwrite4k_qd32) echo "--rw=randwrite --bs=4k --iodepth=32" ;;
    randread4k_qd1)   echo "--rw=randread --bs=4k --iodepth=1" ;;
    randwrite4k_qd1)  echo "--rw=randwrite --bs=4k --iodepth=1" ;;
    read1m_qd8)       echo "--rw=read --bs=1M --iodepth=8" ;;
    write1m_qd8)      echo "--rw=write --bs=1M --iodepth=8" ;;
    randrw70_4k_qd32) echo "--rw=randrw --rwmixread=70 --bs=4k --iodepth=32" ;;
    *) echo "unknown job $1" >&2; return 1 ;;
  esac
}
for j in $JOBS; do job_args "$j" >/dev/null || exit 2; done

if [ "$GUEST" = 0 ]; then
  cd "$REPO" || exit 1
  [ -n "$OUT" ] || OUT=$REPO/bench-results/ab-$(date +%Y-%m-%d-%H%M)-$KERNEL
  mkdir -p "$OUT"
  BINS=()
  for nb in "$@"; do
    b=$(readlink -f "${nb#*=}")
    [ -x "$b" ] || { echo "$b: not executable" >&2; exit 2; }
    # a private copy: a rebuild meanwhile must not change what is measured
    cp "$b" "$OUT/bin-${nb%%=*}"
    BINS+=("${nb%%=*}=$OUT/bin-${nb%%=*}")
  done
  ARGS=(--guest --queues "$QUEUES" --rows "$ROWS" --jobs "$JOBS" --runtime "$RUNTIME" --reps "$REPS" --out)
  if [ -e /dev/ublk-control ]; then
    bash "$0" "${ARGS[@]}" "$OUT" "${BINS[@]}" || exit 1
  else
    cmd="cd $(printf %q "$REPO") && bash tools/bench/ab.sh"
    for a in "${ARGS[@]}"; do cmd+=" $(printf %q "$a")"; done
    cmd+=" /tmp/out"
    for b in "${BINS[@]}"; do cmd+=" $(printf %q "${b%%=*}=/tmp/out/${b#*$OUT/}")"; done
    VMRUN_OUT=$OUT VMRUN_KERNEL=$KERNEL VMRUN_TIMEOUT=${AB_VM_TIMEOUT:-3600} bash "${AB_VMRUN:-tools/vmrun}" -m "${AB_VM_MEM:-4096}" -- "$cmd" || exit 1
    rm -f "$OUT"/.vmrun-cmd "$OUT"/.vmrun-cwd "$OUT"/.vmrun-share
  fi
  python3 "$HERE/ab.py" "$OUT" | tee "$OUT/summary.txt"
  tar -C "$OUT" -cJf "$OUT/raw.tar.xz" raw && rm -rf "$OUT/raw" "$OUT"/bin-*
  exit 0
fi

# ---------------------------------------------------------------- guest side
# One set of leg files serves every side: on these machines a copy of a file can read 1.5x slower
# than the file it was copied from (where its pages sit), which would weigh more than what is
# measured. The binaries take turns on the files (each fio run starts its daemon and stops it:
# they lock their files); md runs meanwhile over loop devices that start 1M into the files, so it
# never writes where a mirror keeps its superblock and bitmap.
W=/var/tmp/ucab LEG_MB=${LEG_MB:-128}
RAW=$OUT/raw
mkdir -p "$RAW" "$W"
cd "$W" || exit 1
NAMES=() BINS=()
for nb in "$@"; do NAMES+=("${nb%%=*}"); BINS+=("${nb#*=}"); done
run_fio() {  # DEV OUTFILE JOB
  # shellcheck disable=SC2046
  timeout -k 10 $((RUNTIME * 4 + 120)) fio --name="$3" --filename="$1" --ioengine=io_uring --direct=1 \
    --time_based --runtime="$RUNTIME" --numjobs=1 --group_reporting --norandommap --randrepeat=0 \
    --percentile_list=50:99 --output-format=json --output="$2" $(job_args "$3") </dev/null >/dev/null 2>"$2.err" \
    || log "fio $3 on $1 failed rc=$?"
  [ -s "$2.err" ] || rm -f "$2.err"
}
leg() { echo "{ type = \"file\"; path = \"$1\"; }"; }
mirror() { echo "{ type = \"mirror\"; assume_clean = true; children = ( $(leg "$1"), $(leg "$2") ); }"; }
conf() {  # ROW QUEUES: guest.sh's configs on legs l0..3.img
  echo "device = { queues = $2; depth = 128; max_io = \"1M\"; block_size = 4096; };"
  case $1 in
    stripe4) echo "volume = { type = \"stripe\"; chunk = \"64K\"; children = ( $(leg l0.img), $(leg l1.img), $(leg l2.img), $(leg l3.img) ); };" ;;
    raid10) echo "volume = { type = \"stripe\"; chunk = \"64K\"; children = ( $(mirror l0.img l1.img), $(mirror l2.img l3.img) ); };" ;;
    mirror2) echo "volume = $(mirror l0.img l1.img);" ;;
    file) echo "volume = $(leg l0.img);" ;;
  esac
}
PID='' DEV='' MD='' LOOPS=''
start_uc() {  # BINARY CONF: sets PID DEV
  "$1" -c "$2" > uc.out 2> uc.err </dev/null &
  PID=$!
  for _ in $(seq 300); do
    DEV=$(grep -m1 -oE '^/dev/ublkb[0-9]+' uc.out)
    [ -n "$DEV" ] && [ -b "$DEV" ] && return 0
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.2
  done
  log "$1: no device: $(tail -n 2 uc.err)"; return 1
}
stop_uc() {
  [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  PID='' DEV=''
}
stop_all() {
  stop_uc
  [ -n "$MD" ] && mdadm --stop "$MD" >/dev/null 2>&1; MD=''
  local l; for l in $LOOPS; do losetup -d "$l" 2>/dev/null; done; LOOPS=''
}
trap stop_all EXIT
{ echo "kernel=$(uname -r)"; echo "nproc=$(nproc)"; echo "runtime=$RUNTIME"; echo "reps=$REPS"
  for i in "${!NAMES[@]}"; do echo "bin_${NAMES[$i]}=$(sha256sum "${BINS[$i]}" | cut -c1-12)"; done; } > "$OUT/machine.txt"
for q in $QUEUES; do
  for row in $ROWS; do
    n=4 mb=$LEG_MB
    case $row in mirror2) n=2 ;; file) n=1 mb=$((LEG_MB * 4)) ;; esac
    rm -f ./*.img
    for i in $(seq 0 $((n - 1))); do dd if=/dev/urandom of=l$i.img bs=1M count=$mb status=none; done
    conf $row $q > uc.conf
    devs=()
    for i in $(seq 0 $((n - 1))); do
      l=$(losetup --direct-io=on -o 1048576 -f --show l$i.img) || exit 1
      LOOPS+=" $l"; devs+=("$l")
    done
    case $row in
      stripe4) margs="--level=0 --chunk=64" ;;
      raid10) margs="--level=10 --chunk=64 --layout=n2 --assume-clean --bitmap=none" ;;
      mirror2) margs="--level=1 --assume-clean --bitmap=none" ;;
    esac
    if [ "$row" = file ]; then
      REF=${devs[0]}   # the reference is the loop device itself
    else
      for l in "${devs[@]}"; do mdadm --zero-superblock --force "$l" >/dev/null 2>&1; done
      # shellcheck disable=SC2086
      mdadm --create /dev/md/ucab --run --force --metadata=1.2 $margs --raid-devices=$n "${devs[@]}" \
        </dev/null >"$OUT/mdadm.log" 2>&1 || { log "mdadm failed: $(tail -n 2 "$OUT/mdadm.log")"; exit 1; }
      MD=$(readlink -f /dev/md/ucab) REF=$MD
    fi
    log "q$q $row: ${NAMES[*]} in turn on l0..$((n - 1)).img, reference $REF"
    for job in $JOBS; do
      for rep in $(seq 1 "$REPS"); do
        for i in "${!NAMES[@]}"; do
          start_uc "${BINS[$i]}" uc.conf || exit 1
          run_fio "$DEV" "$RAW/q$q.$row.${NAMES[$i]}.$job.$rep.json" $job
          stop_uc
        done
        run_fio "$REF" "$RAW/q$q.$row.md.$job.$rep.json" $job
      done
    done
    stop_all
  done
done
rm -f "$W"/*.img
log done
