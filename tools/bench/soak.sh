#!/bin/bash
# tools/bench/soak.sh: a soak run. A raid10 volume (stripe over two 2-way mirrors of 512M files)
# under mixed fio with crc32c verify (randrw 70/30, 4k-256k, 2 jobs, QD32, verify_backlog) for a
# chosen time; every 10 minutes (--check-every) a scrub must find the copies identical and
# `status` must say clean. At the end: fio's verify, a final scrub, the legs compared byte for byte, and the kernel
# log free of warnings. Writes bench-results/soak-DATE-KERNEL.txt (the summary) and .log.
#
# usage: bash tools/bench/soak.sh [--minutes N (default 60)] [--kernel lts|latest (default latest)]
#                                 [--check-every MINUTES (default 10)]
# Runs on the host if it has /dev/ublk-control, else inside the QEMU guest of tools/vmrun.
set -u -o pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MINUTES=60 KERNEL=latest CHECK=10
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) MINUTES=$2; shift 2 ;;
    --kernel) KERNEL=$2; shift 2 ;;
    --check-every) CHECK=$2; shift 2 ;;
    --inner) INNER=1; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
UC_BIN=${UC_BIN:-$REPO/build/ublk-compose}

inner() {
  local w d dev pid rc=0 fpid t0 next now i sum=$OUT/summary.txt
  w=$(mktemp -d /var/tmp/uc-soak.XXXXXX)
  log() { echo "[soak $(date +%T)] $*" | tee -a "$sum" >&2; }
  bad() { log "FAIL: $*"; rc=1; }
  cat > "$w/soak.conf" <<EOF
device = { queues = 2; depth = 128; max_io = "512K"; block_size = 4096; };
volume = { type = "stripe"; chunk = "64K"; children = (
  { type = "mirror"; name = "m0"; children = (
    { type = "file"; path = "a0.img"; size = "512M"; }, { type = "file"; path = "a1.img"; size = "512M"; } ); },
  { type = "mirror"; name = "m1"; children = (
    { type = "file"; path = "b0.img"; size = "512M"; }, { type = "file"; path = "b1.img"; size = "512M"; } ); } ); };
EOF
  log "kernel $(uname -r), $MINUTES minutes, binary $("$UC_BIN" --version)"
  dmesg -n 1 2>/dev/null
  local kmark; kmark=$(dmesg | wc -l)
  "$UC_BIN" -c "$w/soak.conf" -v > "$w/daemon.out" 2> "$OUT/daemon.err" &
  pid=$!
  for i in $(seq 1 300); do dev=$(grep -m1 -oE '^/dev/ublkb[0-9]+' "$w/daemon.out"); [ -n "$dev" ] && break; sleep 0.2; done
  [ -n "$dev" ] || { bad "the daemon did not start: $(tail -n 3 "$OUT/daemon.err")"; return 1; }
  d=${dev#/dev/ublkb}
  log "serving $dev"
  fio --name=soak --filename="$dev" --ioengine=io_uring --direct=1 --rw=randrw --rwmixread=70 \
    --bsrange=4k-256k --iodepth=32 --numjobs=2 --size=400M --offset_increment=500M \
    --time_based --runtime=$((MINUTES * 60)) --verify=crc32c --verify_backlog=1024 --verify_fatal=1 \
    --group_reporting --output="$OUT/fio.txt" </dev/null > /dev/null 2>&1 &
  fpid=$!
  t0=$SECONDS next=$((t0 + CHECK * 60))
  while kill -0 "$fpid" 2>/dev/null; do
    sleep 5
    now=$SECONDS
    [ "$now" -ge "$next" ] || continue
    next=$((now + CHECK * 60))
    if timeout 1800 "$UC_BIN" scrub "$d" > "$w/scrub.txt" 2>&1; then
      log "minute $(((now - t0) / 60)): scrub clean ($(tr '\n' ' ' < "$w/scrub.txt" | cut -c1-160))"
    else
      bad "minute $(((now - t0) / 60)): scrub: $(tr '\n' ' ' < "$w/scrub.txt" | cut -c1-300)"
    fi
    timeout 30 "$UC_BIN" status "$d" | head -n1 | grep -q ', clean, ' || bad "status: $(timeout 30 "$UC_BIN" status "$d" | head -n1)"
  done
  wait "$fpid"; i=$?
  [ "$i" = 0 ] || bad "fio exit $i: $(grep -m1 -iE 'err|verify' "$OUT/fio.txt")"
  log "fio: $(grep -E '^ +(read|write):' "$OUT/fio.txt" | sed 's/^ *//' | tr '\n' ' ')"
  grep -q 'err= 0' "$OUT/fio.txt" || bad "fio reported errors"
  timeout 1800 "$UC_BIN" scrub "$d" > "$w/scrub.txt" 2>&1 || bad "final scrub: $(tr '\n' ' ' < "$w/scrub.txt")"
  kill -TERM "$pid"; wait "$pid" || bad "daemon exit $?"
  for m in a b; do
    cmp --ignore-initial=1048576:1048576 "$w/${m}0.img" "$w/${m}1.img" > /dev/null || bad "mirror $m: the legs differ"
  done
  dmesg | tail -n +"$((kmark + 1))" | grep -E 'BUG:|WARNING:|Oops|Call Trace:|hung_task' > "$w/kern.txt" && bad "kernel: $(head -n1 "$w/kern.txt")"
  grep -E 'AddressSanitizer|runtime error|Assertion' "$OUT/daemon.err" && bad "daemon log"
  log "result: $([ "$rc" = 0 ] && echo PASS || echo FAIL) after $(((SECONDS - t0) / 60)) minutes"
  rm -rf "$w"
  return $rc
}

if [ -n "${INNER:-}" ]; then
  OUT=${OUT:-/tmp/out}
  inner
  exit $?
fi
cd "$REPO" || exit 1
[ -x "$UC_BIN" ] || { cmake -S . -B build >/dev/null && cmake --build build -j"$(nproc)" >/dev/null; } || exit 1
DATE=$(date +%Y-%m-%d-%H%M)
mkdir -p bench-results
if [ -e /dev/ublk-control ]; then
  OUT=$(mktemp -d) UC_BIN=$UC_BIN bash "$0" --inner --minutes "$MINUTES" --check-every "$CHECK"; rc=$?; K=host-$(uname -r)
else
  OUT=$(mktemp -d); K=$KERNEL
  VMRUN_OUT=$OUT VMRUN_KERNEL=$KERNEL VMRUN_TIMEOUT=$((MINUTES * 60 + 3600)) bash tools/vmrun -m 4096 -c 2 -- \
    "UC_BIN=$(printf %q "$UC_BIN") OUT=/tmp/out bash $(printf %q "$REPO/tools/bench/soak.sh") --inner --minutes $MINUTES --check-every $CHECK"; rc=$?
fi
cp "$OUT/summary.txt" "bench-results/soak-$DATE-$K.txt" 2>/dev/null
cat "$OUT/fio.txt" >> "bench-results/soak-$DATE-$K.txt" 2>/dev/null
echo "soak: rc=$rc, summary in bench-results/soak-$DATE-$K.txt"
exit $rc
