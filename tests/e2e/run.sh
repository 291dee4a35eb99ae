#!/bin/bash
# tests/e2e/run.sh: run the e2e cases on the host if it has ublk (/dev/ublk-control, after
# `modprobe ublk_drv`), else inside QEMU VMs (tools/vmrun) for the lts and latest Debian kernels.
# usage: tests/e2e/run.sh [PATTERN...]     (patterns select cases, see cases.sh; also $E2E_CASES)
# env:   UC_BIN (default build/ublk-compose; built if missing), E2E_KERNELS (default "lts latest"),
#        E2E_VM_TIMEOUT (per VM, default 1500 s + 300 s per E2E_STRESS_ROUNDS), E2E_OUT (default build/e2e-out: logs per kernel),
#        E2E_CRASH_ROUNDS (compress crash and power-cut rounds; default 20),
#        E2E_ALL_KERNELS=1 (every case on both kernels; by default the cases that do not depend on
#        the kernel run in one VM only, see cases.sh),
#        E2E_FORCE_VM=1 (use the VM even when the host has ublk), E2E_TAG (appended to the
#        [kernel] label, e.g. "asan" for a sanitizer build)
# After each kernel's VM, a second VM boots systemd as PID 1 for the service cases
# (tests/e2e/cases-systemd.sh; E2E_SYSTEMD_VM_TIMEOUT, default 900 s), when E2E_CASES selects them.
# Prints `PASS: [KVER] NAME` / `FAIL: [KVER] NAME (reason)` and a final `N passed, N failed`.
# Exit: 0 all passed, 1 failures, 77 skipped (neither host ublk nor qemu).
set -u -o pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO" || exit 1
UC_BIN=${UC_BIN:-$REPO/build/ublk-compose}
E2E_OUT=${E2E_OUT:-$REPO/build/e2e-out}
[ $# -gt 0 ] && E2E_CASES="${E2E_CASES:-} $*"
E2E_CASES=${E2E_CASES:-}
PASSED=0 FAILED=0

if [ ! -x "$UC_BIN" ] && [ "$UC_BIN" = "$REPO/build/ublk-compose" ]; then
  echo "e2e: building $UC_BIN" >&2
  { cmake -S "$REPO" -B "$REPO/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
    cmake --build "$REPO/build" -j"$(nproc)" >/dev/null; } || { echo "FAIL: e2e build"; echo "0 passed, 1 failed"; exit 1; }
fi
[ -x "$UC_BIN" ] || { echo "FAIL: e2e ($UC_BIN missing)"; echo "0 passed, 1 failed"; exit 1; }

# filter LABEL: prefix PASS/FAIL lines with [kernel], count them, swallow the inner summary
SEEN_SUMMARY=0
filter() {
  local label=$1 line kv
  SEEN_SUMMARY=0
  while IFS= read -r line; do
    line=${line%$'\r'}
    case $line in
      "E2E-KERNEL: "*) kv=${line#E2E-KERNEL: }; kv=$(echo "$kv" | grep -oE '^[0-9]+\.[0-9]+'); label=${kv:-$label}${E2E_TAG:+-$E2E_TAG} ;;
      "PASS: "*) echo "PASS: [$label] ${line#PASS: }"; PASSED=$((PASSED + 1)) ;;
      "FAIL: "*) echo "FAIL: [$label] ${line#FAIL: }"; FAILED=$((FAILED + 1)) ;;
      __RC=*) LAST_RC=${line#__RC=} ;;
      *) if [[ $line =~ ^[0-9]+\ passed,\ [0-9]+\ failed$ ]]; then SEEN_SUMMARY=1; else echo "$line"; fi ;;
    esac
  done
}

# systemd_selected: the service cases (tests/e2e/cases-systemd.sh) are selected by E2E_CASES and
# not skipped by E2E_SKIP_CASES (lib.sh's rules)
systemd_selected() { (. "$REPO/tests/e2e/lib.sh" && case_selected systemd/service); }

host_has_ublk() {
  [ -e /dev/ublk-control ] && return 0
  [ "$(id -u)" = 0 ] && modprobe ublk_drv 2>/dev/null
  local _i; for _i in 1 2 3 4 5 6 7 8 9 10; do [ -e /dev/ublk-control ] && return 0; sleep 0.5; done
  return 1
}

if [ -z "${E2E_FORCE_VM:-}" ] && host_has_ublk; then
  echo "e2e: host kernel $(uname -r) has ublk: running on the host" >&2
  LAST_RC=
  filter "$(uname -r | grep -oE '^[0-9]+\.[0-9]+')" < <(UC_BIN=$UC_BIN E2E_CASES=$E2E_CASES bash "$REPO/tests/e2e/cases.sh" 2>"${E2E_OUT%/}.host-stderr.log"; echo "__RC=$?")
  systemd_selected && echo "SKIP: systemd/service (it boots systemd as PID 1 in a VM: E2E_FORCE_VM=1)"
  if [ "$SEEN_SUMMARY" = 0 ]; then echo "FAIL: [host] e2e suite (rc=$LAST_RC, no summary; see ${E2E_OUT%/}.host-stderr.log)"; FAILED=$((FAILED + 1)); fi
elif command -v qemu-system-x86_64 >/dev/null; then
  mkdir -p "$E2E_OUT"
  for k in ${E2E_KERNELS:-lts latest}; do
    out=$E2E_OUT/$k
    rm -rf "$out"; mkdir -p "$out"
    echo "e2e: booting the $k kernel under QEMU (logs in $out)" >&2
    # inside the VM: cases.sh writes logs to /tmp/out (= $out) and works on guest tmpfs (/var/tmp)
    cmd="UC_BIN=$(printf %q "$UC_BIN") E2E_CASES=$(printf %q "$E2E_CASES")"
    # E2E_KERNEL: which share of the kernel-independent cases this VM runs (see cases.sh)
    cmd+=" E2E_KERNEL=$k"
    for v in ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS E2E_BATCH E2E_NOBATCH_CASES E2E_VOLUMES E2E_DAEMON_ARGS E2E_FIO_TIMEOUT E2E_CASE_TIMEOUT E2E_START_TIMEOUT E2E_STOP_TIMEOUT E2E_KEEP E2E_STRESS_ROUNDS E2E_CRASH_ROUNDS E2E_SKIP_CASES E2E_ALL_KERNELS; do
      [ -n "${!v+set}" ] && cmd+=" $v=$(printf %q "${!v}")"
    done
    cmd+=" E2E_WORKDIR=/var/tmp bash $(printf %q "$REPO/tests/e2e/cases.sh") 2>/tmp/out/cases-stderr.log"
    LAST_RC=
    filter "$k" < <(VMRUN_OUT=$out VMRUN_KERNEL=$k VMRUN_TIMEOUT=${E2E_VM_TIMEOUT:-$((1500 + 300 * ${E2E_STRESS_ROUNDS:-2}))} \
      bash "$REPO/tools/vmrun" -m "${E2E_VM_MEM:-4096}" -c "${E2E_VM_CPUS:-2}" -- "$cmd"; echo "__RC=$?")
    if [ "$SEEN_SUMMARY" = 0 ]; then
      echo "FAIL: [$k] e2e VM run (rc=$LAST_RC, no summary: VM timeout or crash; see $out/.vmrun-console and $out/cases-stderr.log)"
      FAILED=$((FAILED + 1))
    fi
    # the service cases need systemd as PID 1: a second, lean guest (tools/vmrun --systemd)
    if systemd_selected; then
      out=$E2E_OUT/$k-systemd
      rm -rf "$out"; mkdir -p "$out"
      echo "e2e: booting the $k kernel with systemd as PID 1 (logs in $out)" >&2
      cmd="UC_BIN=$(printf %q "$UC_BIN") E2E_CASES=$(printf %q "$E2E_CASES")"
      cmd+=" E2E_WORKDIR=/var/tmp bash $(printf %q "$REPO/tests/e2e/cases-systemd.sh") 2>/tmp/out/cases-stderr.log"
      LAST_RC=
      filter "$k" < <(VMRUN_OUT=$out VMRUN_KERNEL=$k VMRUN_TIMEOUT=${E2E_SYSTEMD_VM_TIMEOUT:-900} \
        bash "$REPO/tools/vmrun" --systemd -m "${E2E_VM_MEM:-4096}" -c "${E2E_VM_CPUS:-2}" -- "$cmd"; echo "__RC=$?")
      if [ "$SEEN_SUMMARY" = 0 ]; then
        echo "FAIL: [$k] e2e systemd VM run (rc=$LAST_RC, no summary; see $out/.vmrun-console and $out/cases-stderr.log)"
        FAILED=$((FAILED + 1))
      fi
    fi
  done
else
  echo "SKIP: e2e (no /dev/ublk-control and no qemu-system-x86_64)"
  exit 77
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
