#!/bin/bash
# tools/demo.sh: install deps, build, then bring up the 4-way stripe of conf/stripe.conf, run a short
# fio verify and an ext4 mkfs/mount/write/fsck on it, print the results and stop it.
# Runs on the host if it has ublk (/dev/ublk-control), else inside a QEMU VM (tools/vmrun, latest kernel).
# The config is copied to a scratch dir (guest tmpfs in the VM) so its relative backing-file paths
# (e.g. data/d0.img) are created there, not in the repo.
# env: DEMO_CONF (default conf/stripe.conf), VMRUN_KERNEL (default latest), SKIP_DEPS=1, DEMO_FORCE_VM=1
set -u -o pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

inner() {
  local src=$1 work conf p
  # shellcheck source=tests/e2e/lib.sh
  . "$REPO/tests/e2e/lib.sh"
  work=$(mktemp -d /var/tmp/uc-demo.XXXXXX)
  CASE_DIR=${VMRUN_OUT:-$REPO/build}/demo-logs; rm -rf "$CASE_DIR"; mkdir -p "$CASE_DIR"
  trap 'case_cleanup' EXIT
  conf=$work/$(basename "$src"); cp "$src" "$conf" || fail "cannot read $src"
  for p in $(grep -oE 'path *= *"[^"]+"' "$conf" | sed -E 's/.*"([^"]+)"/\1/'); do
    case $p in /*) ;; *) mkdir -p "$work/$(dirname "$p")";; esac
  done
  echo "== config $src (running in $work, kernel $(uname -r))"
  timeout 30 "$UC_BIN" check -c "$conf" || fail "config check failed"
  echo "== start"
  start_daemon "$conf" demo
  echo "device $DDEV, $(( $(blockdev --getsize64 "$DDEV") >> 20 )) MiB"
  timeout 30 "$UC_BIN" list
  echo "== fio: randwrite 8k qd32 64M + crc32c verify"
  run_fio demo-verify --rw=randwrite --bs=8k --iodepth=32 --size=64M --verify=crc32c --verify_fatal=1
  echo "== fio: sequential 1M write, 128M"
  run_fio demo-seq --rw=write --bs=1M --iodepth=8 --size=128M
  echo "== ext4"
  timeout 300 mkfs.ext4 -q -F "$DDEV" || fail "mkfs.ext4 failed"
  MNT=$work/mnt; mkdir -p "$MNT"
  timeout 60 mount "$DDEV" "$MNT" || fail "mount failed"
  timeout 120 dd if=/dev/urandom of="$MNT/random.bin" bs=1M count=32 status=none || fail "write failed"
  timeout 120 cp -r /usr/share/doc/fio "$MNT/" 2>/dev/null
  (cd "$MNT" && find . -type f ! -path './lost+found/*' | sort | xargs sha256sum) > "$work/sums"
  df -h "$MNT" | tail -n 1
  timeout 120 umount "$MNT" || fail "umount failed"
  timeout 60 mount -o ro "$DDEV" "$MNT" || fail "remount failed"
  (cd "$MNT" && sha256sum --quiet -c "$work/sums") || fail "checksums differ after remount"
  timeout 120 umount "$MNT" || fail "umount failed"
  timeout 300 e2fsck -fn "$DDEV" >/dev/null 2>&1 || fail "e2fsck -fn not clean"
  echo "$(wc -l < "$work/sums") files written, checksums ok after remount, e2fsck clean"
  echo "== stop"
  stop_daemon_ok
  check_daemon_logs strict
  rm -rf "$work"
  echo "DEMO OK"
}

if [ "${1:-}" = --inner ]; then inner "$2"; exit $?; fi

cd "$REPO" || exit 1
CONF=$(readlink -f "${DEMO_CONF:-conf/stripe.conf}")
[ -f "$CONF" ] || { echo "demo: $CONF not found" >&2; exit 1; }
[ -n "${SKIP_DEPS:-}" ] || bash tools/install-deps.sh || exit 1
echo "== build" >&2
mkdir -p build
{ cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >build/configure.log 2>&1 &&
  cmake --build build -j"$(nproc)" >build/build.log 2>&1; } || { tail -n 30 build/configure.log build/build.log 2>/dev/null; echo "demo: build failed" >&2; exit 1; }

[ -e /dev/ublk-control ] || modprobe ublk_drv 2>/dev/null; sleep 0.5
if [ -z "${DEMO_FORCE_VM:-}" ] && [ -e /dev/ublk-control ]; then
  echo "== running on the host ($(uname -r))" >&2
  UC_BIN=$REPO/build/ublk-compose bash "$REPO/tools/demo.sh" --inner "$CONF"
  rc=$?; echo "demo logs: $REPO/build/demo-logs" >&2; exit $rc
else
  command -v qemu-system-x86_64 >/dev/null || { echo "demo: no ublk on this host and no qemu" >&2; exit 1; }
  export VMRUN_KERNEL=${VMRUN_KERNEL:-latest} VMRUN_OUT=$REPO/build/demo-out VMRUN_TIMEOUT=${VMRUN_TIMEOUT:-1200}
  rm -rf "$VMRUN_OUT"; mkdir -p "$VMRUN_OUT"
  echo "== no ublk on this host: running in a QEMU VM ($VMRUN_KERNEL kernel; logs in $VMRUN_OUT)" >&2
  bash tools/vmrun -- "UC_BIN=$(printf %q "$REPO/build/ublk-compose") bash $(printf %q "$REPO/tools/demo.sh") --inner $(printf %q "$CONF") 2>&1"
  rc=$?; echo "demo logs: $VMRUN_OUT/demo-logs" >&2; exit $rc
fi
