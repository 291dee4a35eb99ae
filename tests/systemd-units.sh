#!/bin/bash
# tests/systemd-units.sh BIN SRC: `systemd-analyze verify` every unit in SRC/systemd (templates as
# an instance, timers with their service) and require it to say nothing: an unknown key, a bad
# value, a missing dependency or a missing program is a failure. The units name
# /usr/sbin/ublk-compose, where the package installs it; the checked copies name BIN instead
# (nothing else changes), so the test needs no installed binary.
# Exit: 0 clean, 1 a finding, 77 no systemd-analyze.
set -u -o pipefail
BIN=$(readlink -f "$1") SRC=$(readlink -f "$2")
command -v systemd-analyze >/dev/null || { echo "SKIP: no systemd-analyze"; exit 77; }
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
bad=0 n=0
for f in "$SRC"/systemd/*.service "$SRC"/systemd/*.timer; do
	[ -e "$f" ] || continue
	sed "s|/usr/sbin/ublk-compose|$BIN|g" "$f" > "$T/${f##*/}"
done
for f in "$T"/*; do
	n=$((n + 1))
	# the unit's directory is searched for the units it names (a timer's service)
	out=$(cd "$T" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "./${f##*/}" 2>&1)
	rc=$?
	if [ "$rc" != 0 ] || [ -n "$out" ]; then
		echo "FAIL: ${f##*/} (rc $rc):"; printf '%s\n' "$out" | sed 's/^/  /'; bad=1
	else
		echo "ok: ${f##*/}"
	fi
done
[ "$n" -ge 4 ] || { echo "FAIL: only $n units in $SRC/systemd"; bad=1; }
exit $bad
