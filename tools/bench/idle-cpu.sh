#!/bin/bash
# idle-cpu.sh: what an idle daemon costs. For each volume kind, start ublk-compose, write 64M and
# FLUSH (so layers have had work: mirror bits, compress journal), then count the daemon's CPU time
# (utime+stime of /proc/PID/stat, all threads) and its threads' context switches (wakeups) over two
# windows without I/O: the first 10 s right after the writes ("after"), then SECONDS (30) more
# ("idle"). Needs ublk_drv: run it in the guest, e.g.
#   flock /var/tmp/uc-vm.lock bash tools/vmrun -- bash tools/bench/idle-cpu.sh [SECONDS]
# Output: one line per volume and window: "NAME WINDOW cpu_ms=N wakeups=N seconds=N" (wakeups:
# voluntary + involuntary switches of every thread).
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
UC=${UC_BIN:-$REPO/build/ublk-compose}
SECS=${1:-30}
W=$(mktemp -d /tmp/idle-cpu.XXXXXX)
HZ=$(getconf CLK_TCK)

conf() {	# NAME VOLUME-GROUP
	cat > "$W/$1.conf" <<EOF
device = { queues = 2; depth = 64; max_io = "512K"; block_size = 4096; };
volume = $2;
EOF
}
conf stripe '{ type = "stripe"; chunk = "64K"; children = (
  { type = "file"; path = "st0.img"; size = "128M"; }, { type = "file"; path = "st1.img"; size = "128M"; } ); }'
conf mirror '{ type = "mirror"; name = "md"; children = (
  { type = "file"; name = "a"; path = "m0.img"; size = "128M"; }, { type = "file"; name = "b"; path = "m1.img"; size = "128M"; } ); }'
conf compress '{ type = "compress"; name = "cz"; cluster = "64K"; size = "256M"; children = (
  { type = "file"; path = "cz.img"; size = "192M"; } ); }'
conf fault '{ type = "fault"; lose_unflushed = true; children = (
  { type = "file"; path = "f.img"; size = "128M"; } ); }'
sed -i 's/block_size = 4096;/block_size = 4096; zero_copy = false;/' "$W/fault.conf"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
switches() {
	local n=0 t
	for t in /proc/"$1"/task/*/status; do
		n=$((n + $(awk '/ctxt_switches/{s += $2} END {print s + 0}' "$t" 2>/dev/null || echo 0)))
	done
	echo $n
}

for name in ${IDLE_VOLUMES:-stripe mirror compress fault}; do
	"$UC" -c "$W/$name.conf" > "$W/$name.out" 2> "$W/$name.err" < /dev/null &
	pid=$!
	dev=
	for _ in $(seq 300); do
		dev=$(grep -m1 -oE '^/dev/ublkb[0-9]+' "$W/$name.out" 2>/dev/null) && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.2
	done
	if [ -z "$dev" ]; then
		echo "$name: daemon did not start: $(tail -n 2 "$W/$name.err" | tr '\n' ' ')"
		kill $pid 2>/dev/null; wait $pid 2>/dev/null
		continue
	fi
	dd if=/dev/urandom of="$dev" bs=1M count=64 oflag=direct conv=fsync status=none
	c0=$(cpu_ticks $pid); s0=$(switches $pid)
	sleep 10
	c1=$(cpu_ticks $pid); s1=$(switches $pid)
	sleep "$SECS"
	c2=$(cpu_ticks $pid); s2=$(switches $pid)
	echo "$name after cpu_ms=$(( (c1 - c0) * 1000 / HZ )) wakeups=$((s1 - s0)) seconds=10"
	echo "$name idle cpu_ms=$(( (c2 - c1) * 1000 / HZ )) wakeups=$((s2 - s1)) seconds=$SECS"
	kill -TERM $pid
	for _ in $(seq 300); do kill -0 $pid 2>/dev/null || break; sleep 0.2; done
	wait $pid 2>/dev/null
done
rm -rf "$W"
