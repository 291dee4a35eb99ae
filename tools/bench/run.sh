#!/bin/bash
# tools/bench/run.sh: ublk-compose vs the kernel (loop, md raid0/10/1) under fio, per kernel, plus a
# host-side engine CPU-per-I/O benchmark. Results: bench-results/<date>-<kernel>/results.{json,md,png}
# and a copy as bench-results/latest-<kernel>.{json,md,png}.
#
# usage: bash tools/bench/run.sh [--kernel lts|latest|both] [--queues 1|2] [--numjobs N]
#                                [--runtime SECONDS] [--reps N] [--quick] [--no-engine] [--out DIR]
#                                [--rows "ROW ..."]
#   --kernel   Debian kernel for the QEMU guest (tools/vmrun): lts = 6.12, latest = trixie-backports;
#              ignored when the host itself has /dev/ublk-control (then the host kernel is measured)
#   --queues   ublk queues of the compared volumes (default 1); --numjobs fio jobs (default 1)
#   --runtime  seconds per fio run (default 4); every job is run --reps times (default 3), median
#   --quick    smoke test: 2 jobs, 1 rep, 2 s, file + stripe rows only
#   --rows     only these rows (file stripe4 raid10 mirror2 compress compress_rand null_file
#              null_stripe4 batch_off nbd mirror_nbd zram scaling); without "scaling" no queue scaling
#   --legs     loop (default): our stripe/raid10/mirror legs (and the null rows' volumes) are
#              direct-I/O loop devices of the backing files, the devices md runs on; file: the tmpfs
#              files themselves (tmpfs has no FMODE_NOWAIT, so io_uring hands every member I/O on a
#              tmpfs file to an io-wq worker; the runs before 2026-12-05 used file legs)
# env: BENCH_VM_MEM (default 4096), BENCH_VM_CPUS (default 2), BENCH_VM_TIMEOUT (default 3600 s; a full run takes ~45 min per kernel under TCG),
#      CZ_CLUSTER and CZ_EXTRA for the zram row's compress volume (tools/bench/zram.sh)
set -u -o pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO" || exit 1
KERNELS="lts latest" QUEUES=1 NUMJOBS=1 RUNTIME=4 REPS=3 QUICK=0 ENGINE=1 OUTROOT=$REPO/bench-results ROWS='' LEGS=loop
CMDLINE="bash tools/bench/run.sh${*:+ $*}"
while [ $# -gt 0 ]; do
  case $1 in
    --kernel) case $2 in both) KERNELS="lts latest";; lts|latest) KERNELS=$2;; *) echo "bad --kernel $2" >&2; exit 2;; esac; shift 2 ;;
    --queues) QUEUES=$2; shift 2 ;;
    --numjobs) NUMJOBS=$2; shift 2 ;;
    --runtime) RUNTIME=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --no-engine) ENGINE=0; shift ;;
    --out) OUTROOT=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --legs) case $2 in file|loop) LEGS=$2;; *) echo "bad --legs $2" >&2; exit 2;; esac; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
ENVS=(QUEUES="$QUEUES" NUMJOBS="$NUMJOBS" RUNTIME="$RUNTIME" REPS="$REPS")
if [ "$QUICK" = 1 ]; then
  RUNTIME=2 REPS=1
  ENVS=(QUEUES="$QUEUES" NUMJOBS="$NUMJOBS" RUNTIME=2 REPS=1 JOBS="randread4k_qd32 randread4k_qd1" ROWS="file stripe4 raid10 mirror2 compress null_file batch_off zram" NULL_JOBS="randread4k_qd32" BATCH_JOBS="randread4k_qd32" SCALING=1 TAR_MB=32 TREE=/usr/include/linux)
fi
# "scaling" among the rows keeps the queue scaling runs (after the rows), alone or with others
[ -n "$ROWS" ] && ENVS+=(ROWS="$ROWS" SCALING=$([[ " $ROWS " == *" scaling "* ]] && echo 1 || echo 0))
ENVS+=(UC_LEGS="$LEGS")
# the zram row's compress volume: another cluster size, more keys (CZ_EXTRA='cache = "64M";')
for v in CZ_CLUSTER CZ_EXTRA; do [ -n "${!v:-}" ] && ENVS+=("$v=${!v}"); done
log() { echo "[bench $(date +%T)] $*" >&2; }

# ---- prerequisites: build, gnuplot, fio, mdadm
if [ ! -x build/ublk-compose ] || [ ! -f build/libuc.a ] || [ ! -x build/ucbench-null ]; then
  log "building"
  { cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build build -j"$(nproc)" >/dev/null; } || { log "build failed"; exit 1; }
fi
if ! command -v gnuplot >/dev/null; then
  log "installing gnuplot-nox"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q gnuplot-nox >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -q gnuplot-nox >/dev/null 2>&1; } ||
    log "gnuplot-nox could not be installed: no chart"
fi
for t in fio mdadm losetup python3; do command -v $t >/dev/null || { log "$t missing (apt-get install fio mdadm)"; exit 1; }; done

# a private copy of the binary: a rebuild of build/ by someone else mid-run must not change what is measured
mkdir -p build/bench
cp build/ublk-compose build/bench/ublk-compose
ENVS+=(UC_BIN="$REPO/build/bench/ublk-compose")
# the do-nothing ublk target of the null_* rows (the same engine with a `null` layer)
if [ -x build/ucbench-null ]; then
  cp build/ucbench-null build/bench/ucbench-null
  ENVS+=(UC_NULL_BIN="$REPO/build/bench/ucbench-null")
fi
# the zram row's load generator (real file bytes, which fio cannot carry)
if gcc -O2 -Wall -D_GNU_SOURCE -o build/bench/czload tools/bench/czload.c -luring; then
  ENVS+=(CZLOAD="$REPO/build/bench/czload")
else
  log "czload did not build: the zram row will say so"
fi
BUILD_INFO="head=$(git rev-parse --short HEAD 2>/dev/null) built=$(date -u -r build/ublk-compose +%Y-%m-%dT%H:%M:%SZ) sha256=$(sha256sum build/ublk-compose | cut -c1-12)$(git diff --quiet HEAD -- src layers CMakeLists.txt 2>/dev/null || echo ' (src/ or layers/ had uncommitted changes)')"
ENVS+=(BUILD_INFO="$BUILD_INFO")
log "measuring build/ublk-compose: $BUILD_INFO"
DATE=$(date +%Y-%m-%d-%H%M)
mkdir -p "$OUTROOT"

# ---- host-side engine benchmark (no ublk driver needed)
ENGINE_JSON=''
if [ "$ENGINE" = 1 ]; then
  EB=build/bench/engine-bench
  mkdir -p build/bench
  if gcc -O2 -Wall -Wextra -D_GNU_SOURCE -Isrc -o "$EB" tools/bench/engine-bench.c build/libuc.a -luring -lconfig -lzstd -lnbd -lpthread; then
    ENGINE_JSON=$OUTROOT/$DATE-engine.json
    log "engine benchmark on the host ($(uname -r))"
    if [ "$QUICK" = 1 ]; then EA=(--seconds 2 --reps 1); else EA=(--seconds 5 --reps 3); fi
    # userspace instructions per I/O of the RAID rows too (exact where CPU time is noisy)
    [ "$QUICK" = 0 ] && command -v valgrind >/dev/null && EA+=(--ir)
    python3 tools/bench/engine.py "$EB" "$ENGINE_JSON" "${EA[@]}" || { log "engine benchmark failed"; ENGINE_JSON=''; }
    [ -n "$ENGINE_JSON" ] && [ "$QUICK" = 0 ] && cp "$ENGINE_JSON" "$OUTROOT/latest-engine.json"
  else
    log "engine-bench did not build"
  fi
fi

host_has_ublk() {
  [ -e /dev/ublk-control ] && return 0
  [ "$(id -u)" = 0 ] && modprobe ublk_drv 2>/dev/null && sleep 1
  [ -e /dev/ublk-control ]
}

# report DIR KLABEL
report() {
  local dir=$1 k=$2
  python3 tools/bench/report.py "$dir" ${ENGINE_JSON:+"$ENGINE_JSON"} --label "$k" --cmd "$CMDLINE" >/dev/null || { log "report failed for $dir"; return 1; }
  if [ "$QUICK" = 0 ]; then
    cp "$dir/results.json" "$OUTROOT/latest-$k.json"; cp "$dir/results.md" "$OUTROOT/latest-$k.md"
    [ -f "$dir/results.png" ] && cp "$dir/results.png" "$OUTROOT/latest-$k.png"
  fi
  # the raw fio JSON is kept, packed
  [ -d "$dir/raw" ] && tar -C "$dir" -cJf "$dir/raw.tar.xz" raw && rm -rf "$dir/raw"
  log "results: $dir/results.md"
  cat "$dir/results.md"
}

RC=0
if [ -z "${BENCH_FORCE_VM:-}" ] && host_has_ublk; then
  k=host-$(uname -r | grep -oE '^[0-9]+\.[0-9]+')
  dir=$OUTROOT/$DATE-$k; [ "$QUICK" = 1 ] && dir=$dir-quick
  mkdir -p "$dir"
  log "host has ublk: running on $(uname -r)"
  env "${ENVS[@]}" OUT="$dir" BENCH_WORK=/var/tmp/ucbench-$$ bash tools/bench/guest.sh 2>"$dir/bench.log" || RC=1
  report "$dir" "$k" || RC=1
else
  command -v qemu-system-x86_64 >/dev/null || { log "no /dev/ublk-control and no qemu-system-x86_64"; exit 77; }
  for k in $KERNELS; do
    dir=$OUTROOT/$DATE-$k; [ "$QUICK" = 1 ] && dir=$dir-quick
    mkdir -p "$dir"
    cmd="cd $(printf %q "$REPO") &&"
    for v in "${ENVS[@]}"; do cmd+=" $(printf %q "$v")"; done
    cmd+=" OUT=/tmp/out BENCH_WORK=/var/tmp/ucbench bash tools/bench/guest.sh 2>/tmp/out/bench.log"
    log "booting the $k kernel under QEMU TCG (log: $dir/bench.log)"
    VMRUN_OUT=$dir VMRUN_KERNEL=$k VMRUN_TIMEOUT=${BENCH_VM_TIMEOUT:-3600} \
      bash tools/vmrun -m "${BENCH_VM_MEM:-4096}" -c "${BENCH_VM_CPUS:-2}" -- "$cmd" || { log "VM run for $k failed rc=$?"; RC=1; }
    rm -f "$dir"/.vmrun-cmd "$dir"/.vmrun-cwd "$dir"/.vmrun-share
    [ -f "$dir/.vmrun-console" ] && mv "$dir/.vmrun-console" "$dir/console.log"
    report "$dir" "$k" || RC=1
  done
fi
exit $RC
