#!/bin/bash
# tests/install-tree.sh BUILD SRC: `DESTDIR=stage cmake --install BUILD` stages exactly the
# expected files (the binary, the man pages, the bash completion, the examples and docs, every
# systemd unit and udev rule of SRC, /etc/ublk-compose) and writes nothing outside the stage;
# the staged binary runs, units and rules name the installed binary.
set -u -o pipefail
BUILD=$(readlink -f "$1") SRC=$(readlink -f "$2")
T=$(mktemp -d) || exit 1
trap 'rm -rf "$T"' EXIT
STAGE=$T/stage
fail() { echo "FAIL: $*"; bad=1; }
bad=0

declare -A dir
while read -r k v; do dir[$k]=$v; done < "$BUILD/install-dirs.txt"
DESTDIR=$STAGE cmake --install "$BUILD" > "$T/install.log" 2>&1 || {
	cat "$T/install.log"; echo "FAIL: cmake --install"; exit 1; }

{
	echo "${dir[sbindir]}/ublk-compose"
	if grep -q '^UC_MAN:BOOL=ON' "$BUILD/CMakeCache.txt"; then
		echo "${dir[mandir]}/man8/ublk-compose.8"
		echo "${dir[mandir]}/man5/ublk-compose.conf.5"
	fi
	echo "${dir[completionsdir]}/ublk-compose"
	for f in "$SRC"/conf/*.conf; do echo "${dir[docdir]}/examples/${f##*/}"; done
	for f in README.md mirror-format.md compress-format.md; do echo "${dir[docdir]}/$f"; done
	for f in "$SRC"/systemd/*.service "$SRC"/systemd/*.timer; do
		[ -e "$f" ] && echo "${dir[unitdir]}/${f##*/}"
	done
	for f in "$SRC"/udev/*.rules; do [ -e "$f" ] && echo "${dir[udevrulesdir]}/${f##*/}"; done
} | sort > "$T/want"
(cd "$STAGE" && find . ! -type d | sed 's|^\.||' | sort) > "$T/got"
if ! diff -u "$T/want" "$T/got" > "$T/diff"; then
	fail "installed files differ from the expected list (- missing, + unexpected):"
	sed -n '3,$p' "$T/diff"
fi
[ -d "$STAGE${dir[sysconfdir]}/ublk-compose" ] || fail "no ${dir[sysconfdir]}/ublk-compose"

# every file cmake installed (its manifest: the paths without DESTDIR) landed inside the stage
while read -r f; do
	[ -e "$STAGE$f" ] || fail "installed outside DESTDIR: $f"
done < "$BUILD/install_manifest.txt"
[ "$(sort -u "$BUILD/install_manifest.txt")" = "$(cat "$T/got")" ] ||
	fail "install_manifest.txt does not list the staged files"

v=$("$STAGE${dir[sbindir]}/ublk-compose" --version) || fail "the staged binary does not run"
[[ $v == "ublk-compose "[0-9]* ]] || fail "--version printed '$v'"
# units and rules: the source with /usr/sbin/ublk-compose replaced by the installed binary
for f in "$SRC"/systemd/*.service "$SRC"/systemd/*.timer "$SRC"/udev/*.rules; do
	[ -e "$f" ] || continue
	case $f in *.rules) d=${dir[udevrulesdir]} ;; *) d=${dir[unitdir]} ;; esac
	sed "s|/usr/sbin/ublk-compose|${dir[sbindir]}/ublk-compose|g" "$f" |
		cmp -s - "$STAGE$d/${f##*/}" || fail "$d/${f##*/} is not $f with the binary's path"
done
[ "$bad" = 0 ] && echo "staged $(wc -l < "$T/got") files under DESTDIR, none outside: $(tr '\n' ' ' < "$T/got")"
exit $bad
