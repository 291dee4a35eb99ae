#!/bin/bash
# tools/bench/iowq-probe.sh: does io_uring hand our member I/O to io-wq workers? A file volume over
# a tmpfs file, then over a direct-I/O loop device of the same file, under fio 4k QD32: IOPS and the
# CPU ticks of the daemon's io-wq workers (iou-wrk-*) against its queue thread's. tmpfs has no
# FMODE_NOWAIT, so io_uring cannot issue reads or writes on its files inline.
# Run where ublk is (as root): in the VM, VMRUN_KERNEL=lts|latest tools/vmrun -- bash tools/bench/iowq-probe.sh
# env: UC_BIN (default build/ublk-compose), PROBE_DIR (default /var/tmp/iowq-probe, on tmpfs in the VM)
set -u
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B=${UC_BIN:-$REPO/build/ublk-compose}
D=${PROBE_DIR:-/var/tmp/iowq-probe}
mkdir -p "$D" && cd "$D" || exit 1
dd if=/dev/zero of=leg.img bs=1M count=256 status=none
LOOP=$(losetup --direct-io=on -f --show leg.img) || exit 1
ticks() {  # ticks PID PATTERN: CPU ticks (user + system) of the PID's threads whose name matches
  local t sum=0
  for t in /proc/"$1"/task/*; do
    # shellcheck disable=SC2053  # a glob on purpose
    [[ $(cat "$t/comm") == $2 ]] && sum=$((sum + $(awk '{print $14 + $15}' "$t/stat")))
  done
  echo "$sum"
}
echo "kernel $(uname -r), medium $(df -T . | awk 'NR==2{print $2}')"
for leg in "$D/leg.img" "$LOOP"; do
  printf 'device = { queues = 1; };\nvolume = { type = "file"; path = "%s"; size = "256M"; };\n' "$leg" > v.conf
  "$B" -c v.conf -v > out 2> err </dev/null &
  pid=$!
  for _ in $(seq 60); do grep -q ublkb out && break; sleep 1; done
  dev=$(grep -o '/dev/ublkb[0-9]*' out | head -1)
  [ -n "$dev" ] || { echo "no device: $(tail -n 2 err)"; kill "$pid"; exit 1; }
  echo "leg $leg ($(grep -o 'I/O path.*' err))"
  for job in randread randwrite; do
    w0=$(ticks "$pid" 'iou-wrk*') q0=$(ticks "$pid" ublk-compose)
    iops=$(fio --name=p --filename="$dev" --ioengine=io_uring --direct=1 --rw=$job --bs=4k --iodepth=32 \
      --runtime=5 --time_based --output-format=terse --terse-version=3 | awk -F';' '{print $8 + $49}')
    echo "  $job: $iops IOPS; io-wq workers $(( $(ticks "$pid" 'iou-wrk*') - w0 )) ticks, daemon threads $(( $(ticks "$pid" ublk-compose) - q0 ))"
  done
  kill -TERM "$pid"; wait "$pid"
done
losetup -d "$LOOP"; rm -f leg.img v.conf out err
