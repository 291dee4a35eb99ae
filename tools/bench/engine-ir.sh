#!/bin/bash
# tools/bench/engine-ir.sh: userspace instructions per I/O of the engine (callgrind), for the
# stripe x4, raid10 x4 (stripe over two 2-way mirrors) and mirror x2 graphs, 4k random and 1M
# sequential reads and writes. Exact and repeatable on a busy shared machine, unlike CPU time:
# the figure to steer by (the kernel's part of an I/O is not in it). Files on /dev/shm.
# usage: bash tools/bench/engine-ir.sh [ENGINE_BENCH (build/bench/engine-bench)] [GRAPHS...]
# ENGINE_BENCH is built from build/libuc.a when missing, as tools/bench/run.sh builds it.
set -u -o pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EB=${1:-$REPO/build/bench/engine-bench}
shift $(($# > 0 ? 1 : 0))
GRAPHS=${*:-stripe4 raid10 mirror2}
command -v valgrind >/dev/null || { echo "valgrind missing (apt-get install valgrind)" >&2; exit 1; }
if [ ! -x "$EB" ]; then
  mkdir -p "$(dirname "$EB")"
  gcc -O2 -g -Wall -Wextra -D_GNU_SOURCE -I"$REPO/src" -o "$EB" "$REPO/tools/bench/engine-bench.c" \
    "$REPO/build/libuc.a" -luring -lconfig -lzstd -lpthread || exit 1
fi
D=$(mktemp -d /dev/shm/engine-ir.XXXXXX) || exit 1
trap 'rm -rf "$D"' EXIT
leg() { echo "{ type = \"file\"; path = \"$1\"; }"; }
mirror() { echo "{ type = \"mirror\"; assume_clean = true; children = ( $(leg "$1"), $(leg "$2") ); }"; }
dev='device = { depth = 32; max_io = "1M"; block_size = 4096; };'
echo "$dev volume = { type = \"stripe\"; chunk = \"64K\"; children = ( $(leg s0.img), $(leg s1.img), $(leg s2.img), $(leg s3.img) ); };" > "$D/stripe4.conf"
echo "$dev volume = { type = \"stripe\"; chunk = \"64K\"; children = ( $(mirror r0.img r1.img), $(mirror r2.img r3.img) ); };" > "$D/raid10.conf"
echo "$dev volume = $(mirror m0.img m1.img);" > "$D/mirror2.conf"
for f in s0 s1 s2 s3 r0 r1 r2 r3 m0 m1; do
  dd if=/dev/urandom of="$D/$f.img" bs=1M count=128 status=none || exit 1
done
printf "%-8s %-10s %7s %10s\n" graph mode bs "instr/IO"
for g in $GRAPHS; do
  for job in "randread 4096 20000" "randwrite 4096 20000" "read 1048576 2000" "write 1048576 2000"; do
    set -- $job
    ir=$(valgrind --tool=callgrind --toggle-collect=measured_run --callgrind-out-file="$D/cg.out" \
           "$EB" "$D/$g.conf" "${3}ios" 32 "$2" "$1" 2>&1 >/dev/null | grep -oP 'Collected : \K[0-9]+')
    printf "%-8s %-10s %7s %10s\n" "$g" "$1" "$2" "$(( ${ir:-0} / $3 ))"
  done
done
