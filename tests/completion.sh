#!/bin/bash
# tests/completion.sh FILE: bash -n on the completion FILE, then its function on command lines
# against a stand-in ublk-compose that answers --help, list and status --json like the real one
# (two running devices: 0 a raid10 with a fault node, 3 a compress volume; device 5's server gone).
# Exit 77 (skipped) without bash-completion, whose helpers the function uses.
set -u
FILE=$(readlink -f "$1")
bash -n "$FILE" || { echo "FAIL: bash -n $FILE"; exit 1; }
BC=/usr/share/bash-completion/bash_completion
[ -r "$BC" ] || { echo "SKIP: no $BC (apt-get install bash-completion)"; exit 77; }

T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
cat > "$T/ublk-compose" <<'EOF'
#!/bin/bash
case "$*" in
--help) cat <<'EOH'
usage: ublk-compose -c FILE [-v] [--log FILE]  serve the volume in FILE as /dev/ublkbN until
                                       stopped (SIGTERM, `stop`); recovers its device if a server died
       ublk-compose check -c FILE      validate FILE and print the layer tree with sizes
       ublk-compose list               list ublk devices: id, state, size, daemon pid, name
       ublk-compose stop [--force] DEV...  stop and delete DEV; refused while it is in use
       ublk-compose del DEV...|--all   remove a device whose daemon is gone
       ublk-compose -c FILE --recover ID  serve device ID again after its server died
       ublk-compose recover ID         the same, with the config ID was started with
       ublk-compose status [ID...] [--json] [--watch]  layer tree, health, resync progress
       ublk-compose fail ID NODE       mark a mirror leg faulty
       ublk-compose replace ID NODE PATH  swap a mirror leg for a new file, rebuilt online
       ublk-compose add ID MIRROR PATH  grow a mirror by a new file leg, rebuilt online
       ublk-compose scrub ID [--repair] [--json]  compare every mirror copy, report (fix) mismatches
       ublk-compose ctl ID NODE KEY [VALUE]  change a layer setting at runtime (e.g. fault errors)
       ublk-compose monitor [--json] [--syslog] [--program PROG] [--test] [--oneshot]
                                       report device events (LegFailed, Degraded, ServerDied...)
       ublk-compose --help | --version
DEV: a device id N, /dev/ublkbN, its name (device.name) or /dev/ublk-compose/NAME
Layers:
  file     path=<file or block device> size=<size> direct=<bool, default true>
EOH
;;
list) printf '%s\n' "ID    STATE           SIZE      PID DAEMON" \
	"0     LIVE            254M     1234 running" "3     LIVE              4G     1240 running" \
	"5     QUIESCED        1.0G      999 gone";;
"status --json 0"|"status --json /dev/ublkb0"|"status --json r10") echo '{"id": 0, "name": "r10", "device": "/dev/ublkb0", "size": 266338304, "config": "/etc/ublk-compose/r10.conf", "queues": 2, "depth": 128, "io_path": "copy", "health": "clean", "volume": {"name": "volume", "type": "stripe", "size": 266338304, "health": "clean", "status": "chunk=64K legs=2", "children": [{"name": "m0", "type": "mirror", "size": 133169152, "health": "clean", "status": "clean [0 in-sync errors=0] [1 in-sync errors=0]", "uuid": "9d11", "events": 2, "legs": [{"index": 0, "node": "d0", "state": "in-sync", "errors": 0, "uuid": "fc13"}], "children": [{"name": "d0", "type": "file", "size": 134217728, "health": "clean", "status": "d0.img", "children": []}, {"name": "f1", "type": "fault", "size": 134217728, "health": "clean", "status": "errors=none", "children": [{"name": "d1", "type": "file", "size": 134217728, "health": "clean", "status": "d1.img", "children": []}]}]}, {"name": "volume.children[1]", "type": "mirror", "size": 133169152, "health": "clean", "status": "clean", "children": [{"name": "d2", "type": "file", "size": 134217728, "health": "clean", "status": "d2.img", "children": []}, {"name": "d3", "type": "file", "size": 134217728, "health": "clean", "status": "d3.img", "children": []}]}]}}';;
"status --json 3") echo '{"id": 3, "name": "scratch", "device": "/dev/ublkb3", "size": 4294967296, "config": "/etc/ublk-compose/scratch.conf", "queues": 1, "depth": 128, "io_path": "copy", "health": "clean", "volume": {"name": "cz", "type": "compress", "size": 4294967296, "health": "clean", "status": "", "children": [{"name": "store", "type": "file", "size": 2147483648, "health": "clean", "status": "s.img", "children": []}]}}';;
"status --json") "$0" status --json 0; "$0" status --json 3;;
*) exit 1;;
esac
EOF
chmod +x "$T/ublk-compose"
mkdir -p "$T/cwd/sub"
touch "$T/cwd/a.conf" "$T/cwd/b.txt"
cd "$T/cwd" || exit 1

# shellcheck disable=SC1090
source "$BC"
source "$FILE" && declare -F _ublk_compose >/dev/null || { echo "FAIL: $FILE defines no _ublk_compose"; exit 1; }
fails=0
# check LINE EXPECTED...: complete LINE (the cursor at its end) and compare the sorted candidates
check() {
	local line=$1 got want
	shift
	COMP_LINE="$T/ublk-compose $line"
	COMP_POINT=${#COMP_LINE}
	read -ra COMP_WORDS <<<"$COMP_LINE"
	[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_ublk_compose "$T/ublk-compose" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
	got=$(printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | sort | tr '\n' ' ')
	want=$(printf '%s\n' "$@" | sed '/^$/d' | sort | tr '\n' ' ')
	if [ "$got" = "$want" ]; then
		echo "ok   '$line' -> $got"
	else
		echo "FAIL '$line': got [$got], want [$want]"
		fails=$((fails + 1))
	fi
}

check "" add check ctl del fail list monitor recover replace scrub status stop
check "st" status stop
check "--v" --verbose --version
check "--l" --log
check "fail " 0 3 r10 scratch
check "fail r10 " volume m0 d0 f1 d1 "volume.children[1]" d2 d3
check "fail 0 " volume m0 d0 f1 d1 "volume.children[1]" d2 d3
check "fail /dev/ublkb0 d" d0 d1 d2 d3
check "replace 0 " d0 d1 d2 d3
check "replace 0 d1 s" sub
check "add 0 " m0 "volume.children[1]"
check "ctl 0 f1 " errors ranges after delay reset lose_unflushed crash
check "ctl 0 f1 errors " none read write all
check "ctl 0 f1 crash o" on off
check "ctl 0 m0 " scrub scrub-repair
check "ctl 3 cz " locate
check "ctl 0 d0 "
check "check -c " a.conf sub $(compgen -G "/etc/ublk-compose/*.conf")
check "check -c a" a.conf
check "-c a.conf --recover " 5
check "del " --all 5
check "recover " 5
check "status --" --json --watch
check "scrub 0 --r" --repair
check "scrub " 0 3 r10 scratch
check "stop " 0 3 r10 scratch
check "stop --" --force
check "stop --force s" scratch
check "monitor --" --json --syslog --program --test --oneshot
check "monitor --o" --oneshot
check "monitor --json --program /usr/bin/whoam" /usr/bin/whoami
check "examine b" b.txt
echo "$fails failed"
[ "$fails" = 0 ]
