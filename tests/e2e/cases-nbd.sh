# shellcheck shell=bash
# tests/e2e/cases-nbd.sh: end-to-end cases of the nbd layer, sourced by cases.sh. Servers are real
# nbdkit processes (file plugin on the work dir, error filter) on TCP loopback (brought up first:
# the VM has no network devices, and its lo starts down) and on Unix sockets.
#   stripe-fio     conf/stripe-nbd.conf as written: a stripe over three exports on 127.0.0.1:10810-2,
#                  fio verify
#   mirror-kill    conf/raid1-nbd.conf as written (a file leg and an export on 127.0.0.1:10809):
#                  fio verify while the server is killed: no error reaches fio, the leg is faulty,
#                  the mirror degraded; the server back: the leg reconnects, is re-added and resynced
#                  from the bitmap (only the chunks written meanwhile), the legs identical after
#   hung-server    the server stops answering (SIGSTOP) under fio: the requests time out (2 s), the
#                  leg is faulty, fio sees no error and nothing hangs; a clean stop while it is hung
#   read-errors    the error filter fails every read of the export (Unix socket): reads come from the
#                  file leg and are rewritten on the export (read_errors_corrected), no error
#   bad-input      an unreachable host, a wrong export name, an export smaller than size, a URI typo:
#                  one "FILE:LINE: ..." line, exit 2, no device
# The layer takes the copy path on every kernel: stripe-fio and mirror-kill (the data path and
# the failover) run on both kernels, the other three on one each (LTS_ONLY/LATEST_ONLY in
# cases.sh; E2E_ALL_KERNELS=1 runs them on both).

# nbd_serve NAME PORT|SOCK ARGS...: nbdkit (daemonized: back once it listens) on 127.0.0.1:PORT, or
# on the Unix socket SOCK (a path); its pid goes to NBD_PID[NAME] and BG_PIDS (killed at the end)
declare -A NBD_PID=()
nbd_serve() {
  local name=$1 where=$2 pidf=$E2E_WORK/nbd/$1.pid listen
  shift 2
  mkdir -p "$E2E_WORK/nbd"
  rm -f "$pidf"
  if [[ $where == /* ]]; then listen=(-U "$where"); rm -f "$where"; else listen=(-i 127.0.0.1 -p "$where"); fi
  timeout 30 nbdkit -P "$pidf" "${listen[@]}" "$@" </dev/null >>"$CASE_DIR/nbdkit-$name.log" 2>&1 ||
    fail "nbdkit $name ($*) did not start: $(tail -n 2 "$CASE_DIR/nbdkit-$name.log" | tr '\n' ' ')"
  wait_until 10 test -s "$pidf" || fail "nbdkit $name wrote no pid file"
  NBD_PID[$name]=$(cat "$pidf")
  BG_PIDS+=("${NBD_PID[$name]}")
  log "nbdkit $name: pid ${NBD_PID[$name]} on $where: $*"
}

nbd_kill() {
  local p=${NBD_PID[$1]}
  kill -KILL "$p" 2>/dev/null
  kill -CONT "$p" 2>/dev/null
  wait_until 10 test ! -e "/proc/$p" || fail "nbdkit $1 (pid $p) still there after kill -9"
  log "nbdkit $1 killed"
}

# loopback: the VM's lo starts down
nbd_net() {
  ip link set lo up 2>/dev/null
  ip addr show lo 2>/dev/null | grep -q '127.0.0.1' || fail "no 127.0.0.1 on lo: $(ip -br addr 2>&1 | tr '\n' ' ')"
}

# node_json ID NODE KEY: a member of a node of `status --json` (mirror legs: KEY leg:NAME -> its state)
node_json() {
  timeout 30 "$UC_BIN" status --json "$1" 2>/dev/null | python3 -c '
import json, sys
def find(n, name):
    if n["name"] == name: return n
    for c in n["children"]:
        r = find(c, name)
        if r: return r
n = find(json.load(sys.stdin)["volume"], sys.argv[1]); k = sys.argv[2]
if k.startswith("leg:"):
    print([l["state"] for l in n["legs"] if l["node"] == k[4:]][0])
else:
    print(n[k])' "$2" "$3"
}
json_is() { [ "$(node_json "$1" "$2" "$3")" = "$4" ]; }

# copy_conf NAME: conf/NAME.conf as written into the work dir (its data/ lands next to it)
copy_conf() {
  local w=$E2E_WORK/nbd/$1
  rm -rf "$w"; mkdir -p "$w/data"
  cp "$REPO/conf/$1.conf" "$w/" || fail "no conf/$1.conf"
  echo "$w/$1.conf"
}

case_nbd_stripe_fio() {
  local conf i
  nbd_net
  for i in 0 1 2; do
    truncate -s 512M "$E2E_WORK/nbd/s$i.img" 2>/dev/null || { mkdir -p "$E2E_WORK/nbd"; truncate -s 512M "$E2E_WORK/nbd/s$i.img"; }
    nbd_serve "s$i" $((10810 + i)) file "$E2E_WORK/nbd/s$i.img"
  done
  conf=$(copy_conf stripe-nbd)
  start_daemon "$conf"
  [ "$(blockdev --getsize64 "$DDEV")" = $((1536 * MIB)) ] || fail "size $(blockdev --getsize64 "$DDEV"), want 1.5G"
  run_fio stripe --rw=randwrite --bsrange=4k-512k --iodepth=16 --size=96M \
    --verify=crc32c --verify_fatal=1 --do_verify=1
  [ "$(node_json "$DID" s1 state)" = up ] || fail "leg s1: $(node_json "$DID" s1 state)"
  [ "$(node_json "$DID" s1 requests)" -gt 100 ] || fail "leg s1 served $(node_json "$DID" s1 requests) requests"
  stop_daemon_ok
  check_daemon_logs strict
}

case_nbd_mirror_kill() {
  local conf w remote line sz mib base
  nbd_net
  mirror_verbose
  conf=$(copy_conf raid1-nbd); w=$(dirname "$conf")
  remote=$w/remote.img
  truncate -s 1G "$remote"
  nbd_serve remote 10809 file "$remote"
  start_daemon "$conf"
  run_fio first --rw=randwrite --bs=64k --iodepth=16 --size=32M --verify=crc32c --verify_fatal=1 --do_verify=1
  # fio verify in the background; the server dies in the middle of it
  base=$(dev_writes "$DID")
  bg_fio kill --name=kill --filename="$DDEV" --rw=randwrite --bs=16k --iodepth=16 --offset=512M --size=24M \
    --verify=crc32c --verify_fatal=1 --do_verify=1
  wait_until 120 writes_ge "$DID" $((base + 300)) || fail "fio: fewer than 300 writes in 120s"
  nbd_kill remote
  wait_bg_fio
  fio_check kill "$FRC"
  wait_until 30 json_is "$DID" md0 leg:remote faulty || fail "leg remote: $(node_json "$DID" md0 leg:remote), want faulty"
  status_says "$DID" degraded 'faulty'
  grep -q 'remote) marked faulty' "$DERR" || fail "no 'marked faulty' for the remote leg in the log"
  # more writes while it is out: they are what the resync must copy (the 64M bitmap chunks 64-71)
  pattern_fio out write-only 576M 8M
  # the server comes back: reconnect, re-add, resync from the bitmap
  nbd_serve remote 10809 file "$remote"
  wait_until 60 json_is "$DID" remote state up || fail "no reconnect: $(node_json "$DID" remote state)"
  wait_log "$DERR" ': resync of ' 60 "the leg came back"
  line=$(grep ': resync of ' "$DERR" | tail -n 1)
  log "back: $line"
  sz=$(sed -E 's/.*: resync of ([0-9.]+[KMGT]?) .*/\1/' <<< "$line")
  mib=$(size_mib "$sz")
  # written while out: 512M+24M (partly) and 576M+8M, in 8M chunks: 536M-584M is at most 7 chunks
  [ "$mib" -ge 8 ] && [ "$mib" -le 64 ] || fail "resync of $sz after the outage, want 8M-64M (the chunks written meanwhile): $line"
  wait_resyncs "$DERR" 120
  wait_until 30 json_is "$DID" md0 leg:remote in-sync || fail "leg remote: $(node_json "$DID" md0 leg:remote)"
  status_says "$DID" clean ''
  pattern_fio out-check verify 576M 8M
  stop_daemon_ok
  check_daemon_logs crash
  legs_identical raid1-nbd "$w/data/raid1-nbd-a.img $remote"
}

case_nbd_hung_server() {
  local conf d=$E2E_WORK/nbd/hung base t0
  nbd_net
  mirror_verbose
  rm -rf "$d"; mkdir -p "$d"
  truncate -s 256M "$d/remote.img"
  nbd_serve hung 10813 file "$d/remote.img"
  conf=$(mirror_conf "$d/hung.conf" 'bitmap_chunk = "4M";' "$(file_leg "$d/local.img" 256M)" \
    "{ type = \"nbd\"; name = \"remote\"; uri = \"nbd://127.0.0.1:10813/\"; timeout = \"2s\"; }")
  start_daemon "$conf"
  base=$(dev_writes "$DID")
  bg_fio hung --name=hung --filename="$DDEV" --rw=randwrite --bs=16k --iodepth=16 --size=16M \
    --verify=crc32c --verify_fatal=1 --do_verify=1
  wait_until 120 writes_ge "$DID" $((base + 200)) || fail "fio: fewer than 200 writes in 120s"
  kill -STOP "${NBD_PID[hung]}"
  t0=$SECONDS
  log "nbdkit hung: stopped"
  wait_until 60 json_is "$DID" m0 leg:remote faulty || fail "leg remote not faulty 60 s after the server stopped: $(node_json "$DID" m0 leg:remote)"
  log "leg faulty after $((SECONDS - t0)) s"
  wait_bg_fio 180
  fio_check hung "$FRC"
  [ "$(node_json "$DID" remote timeouts)" -ge 1 ] || fail "no timeout counted: $(node_json "$DID" remote timeouts)"
  # a clean stop while the server still does not answer
  stop_daemon_ok
  kill -CONT "${NBD_PID[hung]}"
  check_daemon_logs crash
}

case_nbd_read_errors() {
  local conf d=$E2E_WORK/nbd/rderr inject sock corrected
  mirror_verbose
  rm -rf "$d"; mkdir -p "$d"
  inject=$d/inject sock=$d/nbd.sock
  truncate -s 256M "$d/remote.img"
  nbd_serve rderr "$sock" --filter=error file "$d/remote.img" error-pread=EIO error-pread-rate=100% \
    "error-pread-file=$inject"
  conf=$(mirror_conf "$d/rderr.conf" 'read_policy = "round-robin";' "$(file_leg "$d/local.img" 256M)" \
    "{ type = \"nbd\"; name = \"remote\"; uri = \"nbd+unix:///?socket=$sock\"; }")
  start_daemon "$conf"
  # 7.x: the file leg on the request's pages, the nbd leg's pieces copied by USER_COPY (its
  # reads below, half of them, go back to the request that way); 6.12: the copy path
  if [ "${E2E_KERNEL:-}" = latest ]; then
    grep -q "zero copy (AUTO_BUF_REG), network legs' data by USER_COPY" "$DERR" ||
      fail "I/O path: $(grep -m1 'I/O path' "$DERR"), want zero copy with USER_COPY"
    status_says "$DID" '' '^/dev/ublkb[0-9]+: .* zero copy \+ user copy I/O'
  fi
  pattern_fio pat write 0 4M
  touch "$inject"
  # 8 reads of 4k, round robin: about half reach the export and fail there (fewer than 20: no
  # faulty leg, md's max_corrected_read_errors)
  timeout 60 dd if="$DDEV" of=/dev/null bs=4k count=8 iflag=direct 2> "$CASE_DIR/dd.err" ||
    fail "reads failed: $(cat "$CASE_DIR/dd.err")"
  corrected=$(node_json "$DID" m0 read_errors_corrected)
  [ "$corrected" -ge 1 ] || fail "no read error corrected (the reads never reached the export?)"
  wait_log "$DERR" 'after a read error' 30 "the rewrite"
  rm -f "$inject"
  [ "$(node_json "$DID" m0 leg:remote)" = in-sync ] || fail "leg remote: $(node_json "$DID" m0 leg:remote)"
  pattern_fio pat-check verify 0 4M
  stop_daemon_ok
  check_daemon_logs crash
  log "$corrected read errors corrected"
}

# A mirror of a file and an nbd leg read round robin, fio verify from two CPUs (both queues: the
# queue is part of a user-copy position): on 7.x the nbd leg's pieces go by USER_COPY both ways,
# writes fetched from the request's pages and half the verify reads stored back to them.
case_nbd_mirror_user_copy() {
  local conf d=$E2E_WORK/nbd/ucopy sock
  rm -rf "$d"; mkdir -p "$d"
  sock=$d/nbd.sock
  truncate -s 256M "$d/remote.img"
  nbd_serve ucopy "$sock" file "$d/remote.img"
  conf=$(mirror_conf "$d/ucopy.conf" 'read_policy = "round-robin";' "$(file_leg "$d/local.img" 256M)" \
    "{ type = \"nbd\"; name = \"remote\"; uri = \"nbd+unix:///?socket=$sock\"; }")
  start_daemon "$conf"
  run_fio ucopy --rw=randwrite --bsrange=4k-512k --iodepth=32 --numjobs=2 --size=40M --offset_increment=64M \
    --cpus_allowed=0-1 --cpus_allowed_policy=split --verify=crc32c --verify_fatal=1 --do_verify=1
  [ "$(node_json "$DID" remote requests)" -gt 200 ] ||
    fail "the nbd leg served $(node_json "$DID" remote requests) requests, want > 200"
  if [ "${E2E_KERNEL:-}" = latest ]; then
    status_says "$DID" clean '^/dev/ublkb[0-9]+: .* zero copy \+ user copy I/O'
  else
    status_says "$DID" clean ''
  fi
  stop_daemon_ok
  check_daemon_logs strict
  legs_identical ucopy "$d/local.img $d/remote.img"
}

# bad_start WHAT NEEDLE CONF: `ublk-compose -c CONF` refuses with one FILE:LINE line, exit 2, no device
bad_start() {
  local what=$1 needle=$2 conf=$3 err=$CASE_DIR/$1.err rc before
  before=$(ublk_nodes)
  timeout -k 10 60 "$UC_BIN" -c "$conf" > "$CASE_DIR/$what.out" 2> "$err" < /dev/null; rc=$?
  [ "$rc" = 2 ] || fail "$what: exit $rc, want 2: $(head -n 2 "$err" | tr '\n' ' ')"
  [ "$(wc -l < "$err")" = 1 ] || fail "$what: want one line on stderr, got: $(head -n 3 "$err" | tr '\n' ' ')"
  grep -Eq "^$conf:[0-9]+: .*$needle" "$err" || fail "$what: '$(cat "$err")' lacks '$conf:LINE: ...$needle'"
  [ "$(ublk_nodes)" = "$before" ] || fail "$what: a device was left: $(ublk_nodes)"
  log "$what: $(cat "$err")"
}

case_nbd_bad_input() {
  local d=$E2E_WORK/nbd/bad
  nbd_net
  rm -rf "$d"; mkdir -p "$d"
  truncate -s 64M "$d/e.img"
  nbd_serve named 10814 --filter=exportname file "$d/e.img" exportname=good exportname-strict=true
  leaf() { printf 'volume = { type = "mirror"; children = (\n  { type = "file"; path = "a.img"; size = "64M"; },\n  { type = "nbd"; %s } ); };\n' "$1"; }
  leaf 'uri = "nbd://10.255.255.1/"; timeout = "5s";' > "$d/unreachable.conf"
  bad_start unreachable 'nbd://10.255.255.1/: cannot connect' "$d/unreachable.conf"
  leaf 'uri = "nbd://127.0.0.1:10814/bad";' > "$d/export.conf"
  bad_start wrong-export 'nbd://127.0.0.1:10814/bad: cannot connect' "$d/export.conf"
  leaf 'uri = "nbd://127.0.0.1:10814/good"; size = "128M";' > "$d/small.conf"
  bad_start too-small 'the export is 64M, smaller than 128M' "$d/small.conf"
  leaf 'uri = "nbd:/127.0.0.1:10814/good";' > "$d/typo.conf"
  bad_start uri-typo 'cannot connect' "$d/typo.conf"
  [ ! -e "$d/a.img" ] || fail "a refused start left the file leg's a.img behind"
  # and the good one starts
  leaf 'uri = "nbd://127.0.0.1:10814/good";' > "$d/good.conf"
  start_daemon "$d/good.conf"
  stop_daemon_ok
  check_daemon_logs strict
}

NBD_CASES=(
  "stripe-fio case_nbd_stripe_fio nbd"
  "mirror-kill case_nbd_mirror_kill nbd"
  "hung-server case_nbd_hung_server nbd"
  "read-errors case_nbd_read_errors nbd"
  "mirror-user-copy case_nbd_mirror_user_copy nbd"
  "bad-input case_nbd_bad_input nbd"
)
