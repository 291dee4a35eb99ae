#!/bin/bash
# tests/e2e/cases-admin.sh: the admin socket (sourced by cases.sh; uses cases-mirror.sh helpers).
# Cases (raid10 volume: stripe over mirrors m0 and m1 whose legs are m0.children[0..1] ...):
#   admin-status          status text and --json on a live raid10; unknown ID is an error
#   admin-replace-online  fail a leg and replace it with a new file while fio verify runs:
#                         degraded, rebuilding, clean; fio sees no error; the legs end identical
#   admin-scrub           4 KiB corrupted in one leg behind the daemon's back: scrub names exactly
#                         that range and leg (exit 3), --repair rewrites it, a second scrub is clean
#   admin-bad-input       unknown node, a non-leg, a too small or in-use file: clear errors, no change
#   admin-resync-resume   a rebuild killed with -9 resumes after `recover` (the replaced leg's saved layout)
#   admin-add             a third leg for m1 under fio verify; kill -9 + recover keeps it

# uc_admin OUT CMD ARGS...: run `ublk-compose CMD ARGS`, bounded; stdout+stderr in $CASE_DIR/OUT; sets ARC
uc_admin() {
  local out=$CASE_DIR/$1; shift
  timeout 120 "$UC_BIN" "$@" > "$out" 2>&1; ARC=$?
  log "ublk-compose $* -> $ARC: $(head -n 3 "$out" | tr '\n' ' ' | cut -c1-200)"
}

# admin_conf NAME [SED [LEG]]: a raid10 config (gen_conf's) with fresh legs of its own in
# $E2E_WORK/raid10/NAME (replace and bitmap_chunk changes must not leak into other cases), legs of
# LEG bytes (default 96M: scrubs and rebuilds of less take less); SED edits it. Sets ADIR (the
# directory) and ACONF (the config)
admin_conf() {
  local base
  ADIR=$E2E_WORK/raid10/$1 ACONF=$E2E_WORK/raid10/$1/r10.conf
  rm -rf "$ADIR"; mkdir -p "$ADIR"
  base=$(gen_conf raid10 2) || fail "gen_conf raid10 failed"
  sed -e "${2:-}" -e "s/\"256M\"/\"${3:-96M}\"/g" "$base" > "$ACONF" || fail "cannot write $ACONF"
}

# health_is ID WORD: the status header says WORD (clean, degraded, resyncing, failed)
health_is() { timeout 30 "$UC_BIN" status "$1" 2>/dev/null | head -n1 | grep -q ", $2, "; }

# scheduler_is WORD: the I/O scheduler the kernel uses for $DDEV (the bracketed one in sysfs)
scheduler_is() { grep -q "\[$1\]" "/sys/block/${DDEV#/dev/}/queue/scheduler"; }

case_admin_status() {
  local conf
  # one queue: the kernel would put mq-deadline in front of it; device.scheduler (default "none") removes it
  admin_conf status 's/queues = 2;/queues = 1;/'; conf=$ACONF
  start_daemon "$conf"
  scheduler_is none || fail "scheduler of $DDEV: $(cat "/sys/block/${DDEV#/dev/}/queue/scheduler"), want [none]"
  run_fio w --rw=randwrite --bs=4k --iodepth=16 --size=32M --verify=crc32c
  uc_admin status.txt status "$DID"
  [ "$ARC" = 0 ] || fail "status exit $ARC"
  grep -q "^$DDEV: .*, clean, " "$CASE_DIR/status.txt" || fail "status header: $(head -n1 "$CASE_DIR/status.txt")"
  grep -q "^$DDEV: .*, scheduler none, " "$CASE_DIR/status.txt" || fail "status header has no scheduler: $(head -n1 "$CASE_DIR/status.txt")"
  grep -Eq '^ +mirror +m1 .* clean \[0 in-sync errors=0\] \[1 in-sync errors=0\]' "$CASE_DIR/status.txt" ||
    fail "status has no clean m1 line: $(grep m1 "$CASE_DIR/status.txt" | head -n1)"
  uc_admin status.json status --json "$DID"
  [ "$ARC" = 0 ] || fail "status --json exit $ARC"
  python3 - "$CASE_DIR/status.json" <<'PY' || fail "status --json: $(tail -n1 "$CASE_DIR/status.json.check")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["health"] == "clean", d["health"]
assert d["scheduler"] == "none", d["scheduler"]
ms = d["volume"]["children"]
assert [m["name"] for m in ms] == ["m0", "m1"], ms
for m in ms:
    assert m["type"] == "mirror" and m["health"] == "clean"
    assert [l["state"] for l in m["legs"]] == ["in-sync", "in-sync"], m["legs"]
PY
  # every daemon: `status` with no ID lists the live ones
  uc_admin status-all.txt status
  grep -q "^$DDEV: " "$CASE_DIR/status-all.txt" || fail "status without ID does not list $DDEV"
  uc_admin status-bad.txt status 999
  [ "$ARC" = 1 ] || fail "status of an unknown device: exit $ARC, want 1"
  grep -q "no daemon serves device 999" "$CASE_DIR/status-bad.txt" || fail "unknown device message: $(cat "$CASE_DIR/status-bad.txt")"
  stop_daemon_ok
  check_daemon_logs strict
  # an explicit scheduler is selected (two queues: the kernel's own choice would be none);
  # spin_us: queue threads poll before they sleep at depth 1 (shown by status, data intact)
  sed -i -e 's/queues = 1;/queues = 2; scheduler = "mq-deadline"; spin_us = 200;/' "$conf"
  start_daemon "$conf"
  scheduler_is mq-deadline || fail "scheduler = \"mq-deadline\": $(cat "/sys/block/${DDEV#/dev/}/queue/scheduler")"
  run_fio v --rw=randwrite --bs=4k --iodepth=16 --size=32M --verify=crc32c --verify_only=1 --verify_fatal=1
  uc_admin status-spin.txt status "$DID"
  grep -q "^$DDEV: .*, scheduler mq-deadline, spin 200 us, " "$CASE_DIR/status-spin.txt" ||
    fail "status header has no spin: $(head -n1 "$CASE_DIR/status-spin.txt")"
  uc_admin status-spin.json status --json "$DID"
  grep -q '"spin_us": 200,' "$CASE_DIR/status-spin.json" || fail "status --json has no spin_us 200"
  run_fio qd1 --rw=randrw --bs=4k --iodepth=1 --offset=32M --size=8M --verify=crc32c --verify_fatal=1 --do_verify=1
  stop_daemon_ok
  check_daemon_logs strict
}

case_admin_replace_online() {
  local conf d
  mirror_verbose
  admin_conf replace; conf=$ACONF; d=$ADIR
  start_daemon "$conf"
  bg_fio rw --name=rw --filename="$DDEV" --rw=randrw --bs=4k --iodepth=16 --size=128M \
    --time_based --runtime=30 --verify=crc32c --verify_fatal=1
  sleep 5
  uc_admin fail.txt fail "$DID" m0.children[1]
  [ "$ARC" = 0 ] || fail "fail exit $ARC: $(cat "$CASE_DIR/fail.txt")"
  health_is "$DID" degraded || fail "not degraded after fail: $(timeout 30 "$UC_BIN" status "$DID" | head -n1)"
  uc_admin replace.txt replace "$DID" m0.children[1] "$d/m0b-new.img"
  [ "$ARC" = 0 ] || fail "replace exit $ARC: $(cat "$CASE_DIR/replace.txt")"
  grep -q rebuilding "$CASE_DIR/replace.txt" || fail "replace reply: $(cat "$CASE_DIR/replace.txt")"
  timeout 30 "$UC_BIN" status "$DID" > "$CASE_DIR/status-rebuild.txt" 2>&1
  wait_until 300 health_is "$DID" clean || fail "not clean 300 s after replace: $(timeout 30 "$UC_BIN" status "$DID" | grep m0)"
  timeout 30 "$UC_BIN" status "$DID" > "$CASE_DIR/status-clean.txt" 2>&1
  grep -q "m0b-new.img" "$CASE_DIR/status-clean.txt" || fail "status does not show the new leg file: $(grep m0 "$CASE_DIR/status-clean.txt" | tr '\n' ' ')"
  wait_bg_fio 300
  fio_check rw "$FRC"
  stop_daemon_ok
  legs_identical replace "$d/m0a.img $d/m0b-new.img" "$d/m1a.img $d/m1b.img"
  examine "$d/m0b.img" old
  [ "$(ex_leg_state old 1)" = in-sync ] || log "old leg's own superblock lists itself as $(ex_leg_state old 1) (written before it failed)"
}

case_admin_scrub() {
  local conf d off want
  mirror_verbose
  admin_conf scrub; conf=$ACONF; d=$ADIR
  start_daemon "$conf"
  run_fio w --rw=write --bs=1M --iodepth=8 --size=64M --verify=crc32c
  uc_admin scrub0.txt scrub "$DID"
  [ "$ARC" = 0 ] || fail "scrub of a clean raid10: exit $ARC: $(cat "$CASE_DIR/scrub0.txt")"
  # corrupt 4 KiB of m1's second leg at mirror offset 8M + 12K, behind the daemon's back
  examine "$d/m1b.img" m1b
  off=$(ex_field m1b 'Data offset')
  want=$((8 * MIB + 12288))
  head -c 4096 /dev/urandom | dd of="$d/m1b.img" bs=4096 seek=$(((off + want) / 4096)) conv=notrunc oflag=direct status=none ||
    fail "could not corrupt the leg file"
  uc_admin scrub1.txt scrub "$DID"
  [ "$ARC" = 3 ] || fail "scrub after corruption: exit $ARC (want 3): $(cat "$CASE_DIR/scrub1.txt")"
  grep -q "^m1: .*: 4096 bytes differ" "$CASE_DIR/scrub1.txt" || fail "scrub m1 summary: $(grep '^m1' "$CASE_DIR/scrub1.txt")"
  grep -q "mismatch offset $want length 4096: leg 1 (m1.children\[1\]) differs from leg 0" "$CASE_DIR/scrub1.txt" ||
    fail "scrub did not name offset $want of leg 1: $(grep mismatch "$CASE_DIR/scrub1.txt" | head -n2 | tr '\n' ' ')"
  grep -q "^m0: .*: 0 bytes differ" "$CASE_DIR/scrub1.txt" || fail "scrub blamed m0: $(grep '^m0' "$CASE_DIR/scrub1.txt")"
  uc_admin scrub1.json scrub "$DID" --json
  python3 - "$CASE_DIR/scrub1.json" "$want" <<'PY' || fail "scrub --json does not show the mismatch"
import json, sys
d = json.load(open(sys.argv[1]))
m1 = [s for s in d["scrub"] if s["node"] == "m1"][0]
assert m1["mismatches"] == [{"offset": int(sys.argv[2]), "length": 4096, "good": 0, "legs": [1]}], m1
PY
  uc_admin repair.txt scrub "$DID" --repair
  [ "$ARC" = 3 ] || fail "scrub --repair: exit $ARC: $(cat "$CASE_DIR/repair.txt")"
  grep -q "rewritten from it" "$CASE_DIR/repair.txt" || fail "repair did not rewrite: $(cat "$CASE_DIR/repair.txt")"
  uc_admin scrub2.txt scrub "$DID"
  [ "$ARC" = 0 ] || fail "scrub after repair: exit $ARC: $(cat "$CASE_DIR/scrub2.txt")"
  run_fio v --rw=write --bs=1M --iodepth=8 --size=64M --verify=crc32c --verify_only=1
  stop_daemon_ok
  legs_identical scrub "$d/m0a.img $d/m0b.img" "$d/m1a.img $d/m1b.img"
}

case_admin_bad_input() {
  local conf d
  admin_conf bad; conf=$ACONF; d=$ADIR
  start_daemon "$conf"
  uc_admin a.txt fail "$DID" nosuchnode
  [ "$ARC" = 1 ] && grep -q "no node named 'nosuchnode'" "$CASE_DIR/a.txt" || fail "unknown node: exit $ARC: $(cat "$CASE_DIR/a.txt")"
  uc_admin b.txt fail "$DID" volume
  [ "$ARC" = 1 ] && grep -q "not a leg of a mirror" "$CASE_DIR/b.txt" || fail "non-leg: exit $ARC: $(cat "$CASE_DIR/b.txt")"
  truncate -s 16M "$d/small.img"
  uc_admin c.txt replace "$DID" m0.children[1] "$d/small.img"
  [ "$ARC" = 1 ] && grep -q "smaller than the leg" "$CASE_DIR/c.txt" || fail "too small: exit $ARC: $(cat "$CASE_DIR/c.txt")"
  uc_admin e.txt replace "$DID" m0.children[1] "$d/m1a.img"
  [ "$ARC" = 1 ] && grep -q "already part of this volume" "$CASE_DIR/e.txt" || fail "leg in use: exit $ARC: $(cat "$CASE_DIR/e.txt")"
  uc_admin f.txt replace "$DID" m0.children[1]
  [ "$ARC" = 2 ] || fail "replace without a path: exit $ARC (want 2)"
  uc_admin g.txt fail 999 m0.children[1]
  [ "$ARC" = 1 ] && grep -q "no daemon serves device 999" "$CASE_DIR/g.txt" || fail "unknown device: exit $ARC"
  uc_admin h.txt ctl "$DID" m0 nosuchkey
  [ "$ARC" = 1 ] || fail "ctl with a bad key: exit $ARC"
  health_is "$DID" clean || fail "bad input changed the state: $(timeout 30 "$UC_BIN" status "$DID" | head -n3 | tr '\n' ' ')"
  run_fio w --rw=randwrite --bs=4k --iodepth=16 --size=16M --verify=crc32c
  stop_daemon_ok
}

# rebuild_past ID: m0's rebuild is between 25 % and 69 %
rebuild_past() { timeout 30 "$UC_BIN" status "$1" | grep -Eq ' m0 .*resyncing \[[^]]*\] (2[5-9]|[3-6][0-9])\.'; }

# A rebuild interrupted by kill -9 resumes where its last checkpoint was after `recover`, under fio
# (issue 5, test 2: a degraded mirror mid-resync)
case_admin_resync_resume() {
  local conf d pct total log
  mirror_verbose
  # small bitmap chunks: what fio dirties below the checkpoint stays small next to the rest
  admin_conf resume 's/name = "m0";/name = "m0"; resync_rate = "16M"; bitmap_chunk = "4M";/' 256M; conf=$ACONF d=$ADIR
  start_daemon "$conf"
  uc_admin replace.txt replace "$DID" m0.children[1] "$d/m0b-new.img"
  [ "$ARC" = 0 ] || fail "replace exit $ARC: $(cat "$CASE_DIR/replace.txt")"
  # past the first checkpoint (every 2 s), well before the end (255M at 16M/s: ~16 s)
  wait_until 60 rebuild_past "$DID" ||
    fail "rebuild did not reach 25%: $(timeout 30 "$UC_BIN" status "$DID" | grep ' m0 ')"
  pct=$(timeout 30 "$UC_BIN" status "$DID" | grep -oE '[0-9.]+%' | head -n1)
  log "killing the daemon at $pct of the rebuild"
  bg_fio rw --name=rw --filename="$DDEV" --rw=randrw --bs=4k --iodepth=16 --size=32M --offset=128M \
    --time_based --runtime=40 --verify=crc32c --verify_fatal=1
  sleep 2
  kill9_daemon
  wait_quiesced
  uc_recover recover
  log=$UC_RUN_DIR/$DID.log
  wait_log "$log" ': resync of ' 60 "recovered server"
  total=$(grep -m1 'm0: resync of ' "$log" | sed -n 's/.*resync of \([^ ]*\) .*/\1/p')
  [ -n "$total" ] || fail "no m0 resync after recover: $(grep resync "$log" | head -n3 | tr '\n' ' ')"
  [ "$(size_mib "$total")" -lt 230 ] || fail "the rebuild restarted from the beginning ($total to copy, killed at $pct)"
  log "rebuild resumed with $total left (killed at $pct)"
  wait_bg_fio 300
  fio_check rw "$FRC"
  wait_until 300 health_is "$DID" clean || fail "not clean 300 s after recover: $(timeout 30 "$UC_BIN" status "$DID" | grep m0)"
  stop_daemon_ok
  legs_identical resume "$d/m0a.img $d/m0b-new.img" "$d/m1a.img $d/m1b.img"
}

# m1 (legs m1a, m1b) grows a third leg while fio verify runs: rebuilt, all three identical; then
# kill -9 and `recover`: the new server takes the saved layout (three legs), not the old config
case_admin_add() {
  local conf d rc
  mirror_verbose
  admin_conf add; conf=$ACONF d=$ADIR
  start_daemon "$conf"
  bg_fio rw --name=rw --filename="$DDEV" --rw=randrw --bs=4k --iodepth=16 --size=128M \
    --time_based --runtime=25 --verify=crc32c --verify_fatal=1
  sleep 5
  uc_admin add-bad.txt add "$DID" m1.children[0] "$d/m1c.img"
  [ "$ARC" = 1 ] && grep -q "not a mirror" "$CASE_DIR/add-bad.txt" || fail "add to a file node: exit $ARC: $(cat "$CASE_DIR/add-bad.txt")"
  uc_admin add-used.txt add "$DID" m1 "$d/m0a.img"
  [ "$ARC" = 1 ] && grep -q "already part of this volume" "$CASE_DIR/add-used.txt" || fail "add of a leg in use: exit $ARC"
  uc_admin add.txt add "$DID" m1 "$d/m1c.img"
  [ "$ARC" = 0 ] || fail "add exit $ARC: $(cat "$CASE_DIR/add.txt")"
  grep -q "added as m1.children\[2\]: rebuilding" "$CASE_DIR/add.txt" || fail "add reply: $(cat "$CASE_DIR/add.txt")"
  grep -q "$UC_RUN_DIR/$DID.live.conf" "$CASE_DIR/add.txt" || fail "add did not say where the layout is saved: $(cat "$CASE_DIR/add.txt")"
  wait_until 300 health_is "$DID" clean || fail "not clean 300 s after add: $(timeout 30 "$UC_BIN" status "$DID" | grep m1)"
  timeout 30 "$UC_BIN" status "$DID" > "$CASE_DIR/status-added.txt" 2>&1
  grep -Eq ' m1 .* \[2 in-sync errors=0\]' "$CASE_DIR/status-added.txt" || fail "status after add: $(grep ' m1 ' "$CASE_DIR/status-added.txt")"
  grep -q "m1c.img" "$CASE_DIR/status-added.txt" || fail "status does not show the new leg file"
  wait_bg_fio 300
  fio_check rw "$FRC"
  pattern_fio pat write 140M 40M
  # kill -9 and recover: the saved layout has three legs in m1
  kill9_daemon
  wait_quiesced
  uc_recover recover
  timeout 30 "$UC_BIN" status "$DID" > "$CASE_DIR/status-recovered.txt" 2>&1
  grep -Eq ' m1 .* \[2 in-sync errors=0\]' "$CASE_DIR/status-recovered.txt" ||
    fail "the recovered server does not have the added leg: $(grep ' m1 ' "$CASE_DIR/status-recovered.txt")"
  pattern_fio pat-check verify 140M 40M
  wait_until 120 health_is "$DID" clean || fail "not clean after recover: $(timeout 30 "$UC_BIN" status "$DID" | grep m1)"
  stop_daemon_ok
  [ ! -e "$UC_RUN_DIR/$DID.live.conf" ] || fail "the saved layout outlived its device"
  legs_identical add "$d/m0a.img $d/m0b.img" "$d/m1a.img $d/m1b.img $d/m1c.img"
}

ADMIN_CASES=(
  "admin-status case_admin_status raid10"
  "admin-replace-online case_admin_replace_online raid10"
  "admin-scrub case_admin_scrub raid10"
  "admin-bad-input case_admin_bad_input raid10"
  "admin-resync-resume case_admin_resync_resume raid10"
  "admin-add case_admin_add raid10"
)
