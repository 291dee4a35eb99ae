#!/bin/bash
# tools/bench/qd1.sh: where the 4k QD1 latency goes. In one VM per kernel (or on the host when it
# has /dev/ublk-control): 4k randread QD1 for 5 s on one 256M file on tmpfs, read by fio itself
# (io_uring, direct), through loop (direct-io=on) and through a ublk-compose `file` volume, the
# last two with fio on any CPU, CPU 0 and CPU 1. Prints IOPS and p50 per line; writes nothing.
# usage: bash tools/bench/qd1.sh [lts|latest|both]     (default both)
set -u -o pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [ "${1:-}" = --guest ]; then
  B=$2 W=/var/tmp/ucqd1
  mkdir -p $W && cd $W || exit 1
  dd if=/dev/urandom of=f.img bs=1M count=256 status=none || exit 1
  lat() {
    timeout 60 fio --name=l --filename="$1" --ioengine=io_uring --direct=1 --rw=randread --bs=4k \
      --iodepth=1 --time_based --runtime=5 --size=256M ${2:+--cpus_allowed=$2} --output-format=json 2>/dev/null |
      python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]["read"]; print("%6.0f IOPS  p50 %5.0f us" % (j["iops"], j["clat_ns"]["percentile"]["50.000000"]/1000))'
  }
  echo "kernel $(uname -r)"
  echo "fio on the file:       $(lat $W/f.img)"
  L=$(losetup -f --show --direct-io=on f.img) || exit 1
  for c in "" 0 1; do echo "loop, fio cpu ${c:-any}:    $(lat "$L" $c)"; done
  losetup -d "$L"
  printf 'device = { queues = 1; depth = 64; };\nvolume = { type = "file"; path = "f.img"; size = "256M"; };\n' > f.conf
  "$B" -c f.conf > daemon.log 2>&1 & pid=$!
  for _ in $(seq 300); do [ -b /dev/ublkb0 ] && break; sleep 0.2; done
  [ -b /dev/ublkb0 ] || { echo "no /dev/ublkb0: $(cat daemon.log)"; kill $pid; exit 1; }
  for c in "" 0 1; do echo "ublk-compose, cpu ${c:-any}: $(lat /dev/ublkb0 $c)"; done
  kill $pid; wait $pid
  rm -rf $W
  exit 0
fi
cd "$REPO" || exit 1
[ -x build/ublk-compose ] || { echo "build first (cmake -B build && cmake --build build)" >&2; exit 1; }
if [ -e /dev/ublk-control ]; then exec bash "$0" --guest "$REPO/build/ublk-compose"; fi
case ${1:-both} in both) KS="lts latest";; lts|latest) KS=$1;; *) echo "usage: $0 [lts|latest|both]" >&2; exit 2;; esac
for k in $KS; do
  VMRUN_KERNEL=$k timeout 900 tools/vmrun -- bash "$REPO/tools/bench/qd1.sh" --guest "$REPO/build/ublk-compose" || exit 1
done
