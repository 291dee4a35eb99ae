#!/bin/bash
# tests/e2e/cases-systemd.sh: ublk-compose as a system service. Runs in a guest that boots systemd
# as PID 1 (tools/vmrun --systemd; tests/e2e/run.sh boots one per kernel after the main suite).
# Case systemd/service, as README "Install and run at boot" says to set it up:
#   install the binary, units and udev rule; the monitor service with a --program; start
#   ublk-compose@r10 (raid10, one leg under a fault node): ready means /dev/ublk-compose/r10 is
#   there; mkfs gives by-uuid/by-label links; the README's fstab line mounts it, starting the
#   service; fio verify; kill -9 the server under fio: systemd restarts it, the same /dev/ublkbN,
#   the mount keeps working, fio verifies; the monitor reported ServerDied then Recovered; reload
#   (SIGHUP) keeps the device; a stop while mounted is refused (`stop` and SIGTERM); the scrub unit
#   and timer; write errors on a leg: LegFailed and Degraded (monitor, journal priority, --program,
#   --oneshot exit 3, --test); unmount and stop: the device is gone; the next start rebuilds the
#   failed leg (RebuildStarted/Finished); a last stop leaves every leg clean and identical.
# usage: cases-systemd.sh [PATTERN...]   (env as cases.sh: UC_BIN, E2E_LOGDIR, timeouts in lib.sh)
set -u -o pipefail
E2E_CASES_SH=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$E2E_CASES_SH")/lib.sh"
# shellcheck source=tests/e2e/cases-mirror.sh
. "$(dirname "$E2E_CASES_SH")/cases-mirror.sh"

SD_NAME=r10
SD_DATA=/var/lib/ublk-compose-test    # the legs (tmpfs /var in the guest)
SD_MNT=/srv/r10
SD_UNIT=ublk-compose@$SD_NAME.service
SD_UNIT_README=ublk-compose@$SD_NAME   # as the README writes it
SD_ALERTS=$SD_DATA/alerts              # what the --program saw, one line per event
# the fstab line of README "Install and run at boot", as written there
SD_FSTAB="/dev/ublk-compose/r10  /srv/r10  ext4  x-systemd.requires=ublk-compose@r10.service  0  2"

sd_journal() { journalctl --no-pager -q -o cat "$@" 2>/dev/null; }
main_pid() { systemctl show -P MainPID "$SD_UNIT"; }
sd_active() { [ "$(systemctl is-active "$1")" = active ]; }
alerts_have() { grep -q -- "$1" "$SD_ALERTS" 2>/dev/null; }
# the line number of the first alert matching RE (0: none)
alert_line() { grep -n -m1 -- "$1" "$SD_ALERTS" 2>/dev/null | cut -d: -f1 || echo 0; }
link_dev() { readlink -f "/dev/ublk-compose/$SD_NAME"; }

# save the journals and stop what runs (also after a failure)
sd_cleanup() {
  sd_journal -u "$SD_UNIT" > "$CASE_DIR/journal-$SD_NAME.log"
  sd_journal -u ublk-compose-monitor > "$CASE_DIR/journal-monitor.log"
  sd_journal -u "ublk-compose-scrub@$SD_NAME" > "$CASE_DIR/journal-scrub.log"
  cp "$SD_ALERTS" "$CASE_DIR/alerts" 2>/dev/null
  for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  mountpoint -q "$SD_MNT" && { timeout 60 systemctl stop srv-r10.mount || timeout 30 umount -l "$SD_MNT"; }
  timeout 120 systemctl stop "$SD_UNIT" ublk-compose-monitor "ublk-compose-scrub@$SD_NAME.timer" 2>/dev/null
  sed -i '\|/srv/r10|d' /etc/fstab 2>/dev/null
  # a device left without a server (a failed case): the suite must not keep it
  [ -e /dev/ublk-compose/$SD_NAME ] && timeout 60 ublk-compose del "$SD_NAME" >&2
}

sd_install() {
  install -m 755 "$UC_BIN" /usr/sbin/ublk-compose || fail "install the binary"
  install -m 644 "$REPO"/systemd/*.service "$REPO"/systemd/*.timer /etc/systemd/system/ ||
    fail "install the units"
  install -m 644 "$REPO"/udev/60-ublk-compose.rules /etc/udev/rules.d/ || fail "install the udev rule"
  udevadm control --reload || fail "udevadm control --reload"
  systemctl daemon-reload || fail "daemon-reload"
  rm -rf "$SD_DATA"; mkdir -p "$SD_DATA" /etc/ublk-compose "$SD_MNT"
  # raid10 of 4 x 64M legs; leg 0 of m0 sits under a fault node
  cat > /etc/ublk-compose/$SD_NAME.conf <<EOF
device = { queues = 2; };
volume = { type = "stripe"; chunk = "64K"; children = (
  { type = "mirror"; name = "m0"; children = (
    { type = "fault"; name = "f0"; children = ( { type = "file"; path = "$SD_DATA/m0a.img"; size = "64M"; } ); },
    { type = "file"; name = "m0b"; path = "$SD_DATA/m0b.img"; size = "64M"; } ); },
  { type = "mirror"; name = "m1"; children = (
    { type = "file"; name = "m1a"; path = "$SD_DATA/m1a.img"; size = "64M"; },
    { type = "file"; name = "m1b"; path = "$SD_DATA/m1b.img"; size = "64M"; } ); } ); };
EOF
  printf '#!/bin/sh\necho "$1|$2|$3|$4|$UBLK_COMPOSE_NAME" >> %s\n' "$SD_ALERTS" > "$SD_DATA/alert"
  chmod 755 "$SD_DATA/alert"; : > "$SD_ALERTS"
  echo "MONITOR_ARGS=\"--program $SD_DATA/alert\"" > /etc/default/ublk-compose
}

case_systemd_service() {
  local pid1 pid2 dev uuid t0 rc line_died line_rec
  trap 'rc=$?; sd_cleanup; (exit $rc); case_cleanup' EXIT
  # what is tested here is what README "Install and run at boot" tells users to type
  grep -qF "echo '$SD_FSTAB' >> /etc/fstab" "$REPO/README.md" &&
    grep -qF "systemctl enable --now $SD_UNIT_README" "$REPO/README.md" &&
    grep -qF 'echo '"'"'MONITOR_ARGS="--program ' "$REPO/README.md" ||
    fail "README's fstab line, unit or MONITOR_ARGS differ from what this case tests"
  sd_install

  # the monitor first: it sees the volume appear (Type=notify: ready once it watches)
  systemctl start ublk-compose-monitor || fail "ublk-compose-monitor did not start: $(sd_journal -u ublk-compose-monitor | tail -n 3)"
  # ready (systemctl start returns) only once the device is live and named
  t0=$SECONDS
  timeout 300 systemctl enable --now "$SD_UNIT" || fail "$SD_UNIT did not start: $(sd_journal -u "$SD_UNIT" | tail -n 3 | tr '\n' ' ')"
  log "$SD_UNIT ready in $((SECONDS - t0))s"
  [ -L "/dev/ublk-compose/$SD_NAME" ] || fail "ready, but no /dev/ublk-compose/$SD_NAME"
  dev=$(link_dev); DDEV=$dev DID=${dev#/dev/ublkb}
  [ -b "$dev" ] || fail "/dev/ublk-compose/$SD_NAME -> '$dev' is not a block device"
  pid1=$(main_pid)
  log "$SD_UNIT: pid $pid1 serves $dev"
  wait_until 30 alerts_have "^DeviceStarted|$dev||" || fail "the monitor did not report DeviceStarted: $(cat "$SD_ALERTS")"
  # bad input: an unknown name is one clear line
  uc_cli unknown 30 status no-such-volume
  [ "$CRC" = 1 ] && grep -q "no device named 'no-such-volume'" "$CASE_DIR/unknown.err" ||
    fail "status of an unknown name: rc $CRC: $(cat "$CASE_DIR/unknown.err")"

  # a filesystem: udev gives it by-uuid and by-label links (Debian 12's rules skip ublkb*)
  timeout 300 mkfs.ext4 -q -F -L r10data "/dev/ublk-compose/$SD_NAME" || fail "mkfs.ext4"
  uuid=$(blkid -s UUID -o value "$dev")
  wait_until 30 test -L "/dev/disk/by-uuid/$uuid" || fail "no /dev/disk/by-uuid/$uuid after mkfs"
  [ "$(readlink -f "/dev/disk/by-uuid/$uuid")" = "$dev" ] || fail "by-uuid/$uuid -> $(readlink -f "/dev/disk/by-uuid/$uuid")"
  [ "$(readlink -f /dev/disk/by-label/r10data)" = "$dev" ] || fail "no by-label/r10data link"

  # the README's fstab line: starting the mount starts the volume first
  echo "$SD_FSTAB" >> /etc/fstab
  systemctl daemon-reload
  timeout 120 systemctl stop "$SD_UNIT" || fail "stop of an unmounted volume"
  wait_until 10 gone "$dev" || fail "$dev still there after systemctl stop"
  gone "/dev/ublk-compose/$SD_NAME" || fail "/dev/ublk-compose/$SD_NAME left after the stop"
  wait_until 30 alerts_have "^DeviceStopped|$dev||" || fail "no DeviceStopped from the monitor"
  timeout 300 systemctl start srv-r10.mount || fail "the fstab mount did not start: $(sd_journal -u srv-r10.mount | tail -n 3 | tr '\n' ' ')"
  sd_active "$SD_UNIT" || fail "the mount did not start $SD_UNIT"
  [ "$(findmnt -n -o SOURCE "$SD_MNT")" = "$dev" ] || [ "$(readlink -f "$(findmnt -n -o SOURCE "$SD_MNT")")" = "$dev" ] ||
    fail "$SD_MNT is mounted from '$(findmnt -n -o SOURCE "$SD_MNT")', want $dev"
  [ "$(link_dev)" = "$dev" ] || fail "after a restart the volume is $(link_dev), was $dev (id -1: the kernel picks; here it is free)"
  pid1=$(main_pid)

  # fio verify in the filesystem
  MNT=$SD_MNT
  run_fio_file() { local tag=$1; shift
    timeout -k 10 "$E2E_FIO_TIMEOUT" fio --name="$tag" --directory="$SD_MNT" --ioengine=io_uring --direct=1 "$@" \
      </dev/null > "$CASE_DIR/$tag.fio.log" 2>&1; fio_check "$tag" $?; }
  run_fio_file before --filename=before.dat --rw=randwrite --bs=16k --iodepth=16 --size=16M \
    --verify=crc32c --verify_fatal=1 --do_verify=1

  # kill -9 under fio: systemd restarts the server, which recovers the same device
  bg_fio kill9 --name=kill9 --filename="$SD_MNT/kill9.dat" --rw=randwrite --bs=8k --iodepth=32 --size=32M \
    --verify=crc32c --verify_fatal=1 --do_verify=1 --fsync_on_close=1
  local base; base=$(dev_writes "$DID")
  wait_until 120 writes_ge "$DID" $((base + 400)) || fail "fio: fewer than 400 writes in 120s"
  exited "$FIO_PID" && fail "fio finished before the kill (too fast to test)"
  log "kill -9 $pid1"
  kill -KILL "$pid1"
  wait_until 180 eval '[ "$(main_pid)" != "$pid1" ] && [ "$(main_pid)" != 0 ] && sd_active "$SD_UNIT"' ||
    fail "systemd did not restart $SD_UNIT within 180 s: $(systemctl is-active "$SD_UNIT") pid $(main_pid)"
  pid2=$(main_pid)
  log "restarted: pid $pid2"
  [ "$(link_dev)" = "$dev" ] || fail "after the restart /dev/ublk-compose/$SD_NAME -> $(link_dev), want $dev"
  [ "$(timeout 30 ublk-compose list | awk 'NR > 1' | wc -l)" = 1 ] || fail "not exactly one device: $(ublk-compose list)"
  sd_journal -u "$SD_UNIT" | grep -q "exists and its server (pid $pid1) is gone: recovering it" ||
    fail "the restarted server did not say it recovers the device"
  wait_bg_fio "$E2E_FIO_TIMEOUT"
  fio_check kill9 "$FRC"
  run_fio_file after --filename=before.dat --rw=randread --bs=16k --iodepth=16 --size=16M \
    --verify=crc32c --verify_fatal=1 --verify_only=1
  wait_until 30 alerts_have "^Recovered|$dev||" || fail "no Recovered from the monitor: $(cat "$SD_ALERTS")"
  line_died=$(alert_line "^ServerDied|$dev||")
  line_rec=$(alert_line "^Recovered|$dev||")
  [ "$line_died" -gt 0 ] && [ "$line_died" -lt "$line_rec" ] ||
    fail "the monitor did not report ServerDied then Recovered: $(tr '\n' ' ' < "$SD_ALERTS")"

  # SIGHUP (systemctl reload): same server, same device
  systemctl reload "$SD_UNIT" || fail "reload"
  wait_until 20 eval 'sd_journal -u "$SD_UNIT" | grep -q "SIGHUP: re-read"' || fail "no SIGHUP line in the journal"
  [ "$(main_pid)" = "$pid2" ] && sd_active "$SD_UNIT" && [ -b "$dev" ] || fail "reload changed the service"

  # in use: `stop` and SIGTERM are refused, the device keeps serving
  uc_cli busy-stop 120 stop "$SD_NAME"
  [ "$CRC" = 1 ] && grep -q "refusing to stop $dev ($SD_NAME): it is in use (mounted on $SD_MNT)" "$CASE_DIR/busy-stop.err" ||
    fail "stop of a mounted volume: rc $CRC: $(cat "$CASE_DIR/busy-stop.out" "$CASE_DIR/busy-stop.err")"
  kill -TERM "$pid2"
  wait_until 30 eval 'sd_journal -u "$SD_UNIT" | grep -c "refusing to stop" | grep -qx 2' || fail "SIGTERM: no refusal in the journal"
  [ "$(main_pid)" = "$pid2" ] && sd_active "$SD_UNIT" || fail "SIGTERM stopped a mounted volume"
  run_fio_file busy --filename=busy.dat --rw=randwrite --bs=4k --iodepth=8 --size=8M \
    --verify=crc32c --verify_fatal=1 --do_verify=1

  # the scrub unit and its timer
  timeout 300 systemctl start "ublk-compose-scrub@$SD_NAME" || fail "the scrub unit failed: $(sd_journal -u "ublk-compose-scrub@$SD_NAME" | tail -n 3 | tr '\n' ' ')"
  wait_until 30 alerts_have "^ScrubFinished|$dev|m1|0 bytes differ" || fail "no clean ScrubFinished for m1: $(tr '\n' ' ' < "$SD_ALERTS")"
  systemctl enable --now "ublk-compose-scrub@$SD_NAME.timer" || fail "enable the scrub timer"
  systemctl list-timers --all --no-pager | grep -q "ublk-compose-scrub@$SD_NAME.timer" || fail "the scrub timer is not listed"

  # write errors on leg 0 of m0: LegFailed, Degraded (monitor, journal priorities, program, oneshot)
  uc_cli fault 30 ctl "$SD_NAME" f0 errors write
  [ "$CRC" = 0 ] || fail "ctl f0 errors write: rc $CRC"
  timeout 120 dd if=/dev/urandom of="$SD_MNT/after-fault.bin" bs=1M count=16 conv=fsync status=none ||
    fail "a write after the leg failed did not succeed (the other leg has it)"
  wait_until 30 alerts_have "^LegFailed|$dev|f0|leg 0 of m0 marked faulty" || fail "no LegFailed for f0: $(tr '\n' ' ' < "$SD_ALERTS")"
  wait_until 30 alerts_have "^Degraded|$dev|m0|" || fail "no Degraded for m0: $(tr '\n' ' ' < "$SD_ALERTS")"
  alerts_have "|$SD_NAME\$" || fail "the program did not get UBLK_COMPOSE_NAME"
  sd_journal -u ublk-compose-monitor -p err > "$CASE_DIR/monitor-err.log"
  grep -q "^LegFailed $dev ($SD_NAME) f0" "$CASE_DIR/monitor-err.log" && grep -q "^Degraded $dev" "$CASE_DIR/monitor-err.log" ||
    fail "journalctl -p err of the monitor lacks LegFailed/Degraded: $(head -n 3 "$CASE_DIR/monitor-err.log")"
  grep -q "^Recovered" "$CASE_DIR/monitor-err.log" && fail "Recovered (a notice) is in journalctl -p err"
  sd_journal -u "$SD_UNIT" -p err | grep -q "leg 0 (f0) marked faulty" || fail "the server's error is not at priority err"
  sd_journal -u "$SD_UNIT" -p err | grep -q "recovered $dev" && fail "the server's notice is at priority err"
  uc_cli oneshot 60 monitor --oneshot
  [ "$CRC" = 3 ] && grep -q "Degraded $dev" "$CASE_DIR/oneshot.out" || fail "monitor --oneshot on a degraded volume: rc $CRC: $(cat "$CASE_DIR/oneshot.out")"
  uc_cli test 60 monitor --oneshot --test --program "$SD_DATA/alert"
  alerts_have "^TestMessage|$dev||" || fail "monitor --test did not run the program"
  # --syslog: the journal gets each event with its priority through syslog (not only stdout)
  uc_cli syslog 60 monitor --oneshot --test --syslog
  [ "$CRC" = 3 ] || fail "monitor --oneshot --test --syslog: rc $CRC"
  wait_until 20 eval 'sd_journal _TRANSPORT=syslog -t ublk-compose -p err | grep -q "^Degraded $dev ($SD_NAME) m0"' ||
    fail "--syslog: no Degraded at priority err: $(sd_journal _TRANSPORT=syslog | tail -n 3 | tr '\n' ' ')"
  sd_journal _TRANSPORT=syslog -t ublk-compose -p notice | grep -q "^TestMessage $dev ($SD_NAME)" ||
    fail "--syslog: no TestMessage at priority notice"
  sd_journal _TRANSPORT=syslog -t ublk-compose -p warning | grep -q "^TestMessage" && fail "--syslog: TestMessage above notice"

  # unmount, stop: the device is gone, the monitor says so
  timeout 120 systemctl stop srv-r10.mount || fail "umount"
  timeout 120 systemctl stop "$SD_UNIT" || fail "stop"
  wait_until 10 gone "$dev" || fail "$dev still there after the stop"
  gone "/dev/ublkc$DID" || fail "/dev/ublkc$DID still there"
  [ "$(grep -c "^DeviceStopped|$dev||" "$SD_ALERTS")" = 2 ] || fail "no second DeviceStopped"
  legs_identical stopped-degraded "$SD_DATA/m1a.img $SD_DATA/m1b.img"

  # the next start rebuilds the leg that failed (the fault node starts without errors)
  timeout 300 systemctl start "$SD_UNIT" || fail "restart after the failure"
  wait_until 300 alerts_have "^RebuildFinished|/dev/ublkb[0-9]*|m0|" || fail "no RebuildFinished for m0: $(tr '\n' ' ' < "$SD_ALERTS")"
  alerts_have "^RebuildStarted|/dev/ublkb[0-9]*|m0|" || fail "no RebuildStarted for m0"
  wait_until 60 eval 'timeout 30 ublk-compose status "$SD_NAME" | head -n1 | grep -q ", clean, "' ||
    fail "not clean after the rebuild: $(ublk-compose status "$SD_NAME" | head -n 3)"
  timeout 120 systemctl stop "$SD_UNIT" || fail "last stop"
  legs_identical stopped "$SD_DATA/m0a.img $SD_DATA/m0b.img" "$SD_DATA/m1a.img $SD_DATA/m1b.img"
  DID=
}

# ---------------------------------------------------------------- child mode: one case
if [ "${1:-}" = --one ]; then
  case_child "$2"
fi

# ---------------------------------------------------------------- suite
[ $# -gt 0 ] && E2E_CASES="${E2E_CASES:-} $*"
export E2E_CASES
[ "$(id -u)" = 0 ] || { echo "cases-systemd.sh: needs root" >&2; exit 2; }
[ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] || { echo "cases-systemd.sh: PID 1 is not systemd (use tools/vmrun --systemd)" >&2; exit 2; }
[ -e /dev/ublk-control ] || { echo "cases-systemd.sh: no /dev/ublk-control" >&2; exit 2; }
[ -x "$UC_BIN" ] || { echo "cases-systemd.sh: $UC_BIN not built" >&2; exit 2; }
suite_start
run_case systemd/service case_systemd_service 1200
suite_summary
