#!/bin/bash
# tests/package.sh: the package job (tests/run-all.sh runs it; alone: `bash tests/package.sh`).
#  1. builds ublk-compose_*.deb with `dpkg-buildpackage -us -uc -b` from a copy of the tree (the
#     unit tests already ran in build/: DEB_BUILD_OPTIONS=nocheck unless PKG_CHECK=1);
#  2. lintian: no error and no warning that debian/ublk-compose.lintian-overrides does not list;
#  3. installs it with `apt-get install ./ublk-compose_*.deb` into a clean Debian 12 root
#     (debootstrap --variant=minbase, plus man-db to read man pages) and runs there
#     `ublk-compose --version`, `man -w ublk-compose`, `man -w ublk-compose.conf` and
#     `ublk-compose check` on an installed example config.
# Cache (outside the repo): $PKG_CACHE (default /var/tmp/uc-pkg) holds the bootstrapped root and
# the .debs apt fetched; each run installs into a throwaway overlay on that root (a copy where
# overlayfs is missing), so the root stays clean. A cold run (no cache) bootstraps it first.
# env: PKG_CACHE, PKG_MIRROR (default http://deb.debian.org/debian), PKG_KEEP=1 (keep the work dir),
#      PKG_CHECK=1 (run the unit tests inside dpkg-buildpackage too)
# Prints PASS:/FAIL: lines and the seconds each step took; exits non-zero on any failure.
set -u -o pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
REPO=$PWD
CACHE=${PKG_CACHE:-/var/tmp/uc-pkg}
MIRROR=${PKG_MIRROR:-http://deb.debian.org/debian}
BASE=$CACHE/bookworm-minbase
T0=$SECONDS
failed=0
step() { echo "== package [$((SECONDS - T0))s] $*"; }
pass() { echo "PASS: package: $*"; }
fail() { echo "FAIL: package: $*"; failed=$((failed + 1)); }

[ "$(id -u)" = 0 ] || { echo "SKIP: package job (needs root: debootstrap, chroot, mount)"; exit 77; }
for t in dpkg-buildpackage lintian debootstrap chroot; do
	command -v "$t" > /dev/null || { fail "$t missing (tools/install-deps.sh installs it)"; exit 1; }
done
mkdir -p "$CACHE/archives/partial" || exit 1
W=$(mktemp -d "$CACHE/run.XXXXXX") || exit 1
ROOT=$W/root
MOUNTS=()
# mounts_under DIR: the mount points below DIR, deepest first
mounts_under() { awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r; }
# remove DIR once nothing is mounted below it (the root has /dev bound in: never rm through that)
remove_run() {
	mounts_under "$1" | xargs -r -n 1 umount -l 2> /dev/null
	[ -z "$(mounts_under "$1")" ] && rm -rf --one-file-system "$1"
}
cleanup() {
	local i
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[i]}" 2> /dev/null; done
	[ -n "${PKG_KEEP:-}" ] && { echo "package: kept $W"; return; }
	remove_run "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
# work dirs of runs that were killed (more than 2 hours old)
for d in "$CACHE"/run.*; do
	[ "$d" != "$W" ] && [ -n "$(find "$d" -maxdepth 0 -mmin +120 2> /dev/null)" ] && remove_run "$d"
done

# ---- 1. build the .deb from a copy of the tree (dpkg-buildpackage writes into ..)
step "dpkg-buildpackage"
SRC=$W/src/ublk-compose
mkdir -p "$SRC"
if git -C "$REPO" rev-parse --git-dir > /dev/null 2>&1; then
	# tracked files and new ones not ignored: what a commit of this tree would hold
	git -C "$REPO" ls-files -z -co --exclude-standard |
		(cd "$REPO" && xargs -0 -r tar -cf - --no-recursion --ignore-failed-read) | tar -xf - -C "$SRC"
else
	tar -C "$REPO" --exclude='./build*' --exclude=./.git -cf - . | tar -xf - -C "$SRC"
fi
opts="parallel=$(nproc 2> /dev/null || echo 2)"
[ -n "${PKG_CHECK:-}" ] || opts="nocheck $opts"
if (cd "$SRC" && DEB_BUILD_OPTIONS="$opts" dpkg-buildpackage -us -uc -b) > "$W/build.log" 2>&1; then
	DEB=$(ls "$W"/src/ublk-compose_*.deb 2> /dev/null | head -n 1)
fi
if [ -z "${DEB:-}" ]; then
	tail -n 30 "$W/build.log"
	fail "dpkg-buildpackage -us -uc -b (log above)"
	exit 1
fi
pass "dpkg-buildpackage: ${DEB##*/} ($(du -k "$DEB" | cut -f1) KiB), Depends: $(dpkg-deb -f "$DEB" Depends)"
# the compiler with Debian's flags (hardening=+all: FORTIFY, stack protector, ...) stays silent too
warn=$(grep -E '^[^ ]+:[0-9]+:[0-9]+: warning:' "$W/build.log" | sort -u)
[ -z "$warn" ] || { printf '%s\n' "$warn" | head -n 10; fail "compiler warnings under Debian's build flags"; }

# ---- 2. lintian
step "lintian"
CHANGES=$(ls "$W"/src/ublk-compose_*.changes | head -n 1)
lintian --fail-on error,warning --info "$CHANGES" > "$W/lintian.log" 2>&1
rc=$?
sed 's/^/  lintian: /' "$W/lintian.log"
if [ "$rc" = 0 ] && ! grep -qE '^[EW]: ' "$W/lintian.log"; then
	pass "lintian: no error, no warning ($(grep -c '^I: ' "$W/lintian.log") info tags, $(grep -c '^N: ' "$W/lintian.log") notes)"
else
	fail "lintian (exit $rc): errors or warnings above"
fi

# ---- 3. a clean Debian 12 root: bootstrapped once into the cache
step "root"
(
	flock 9
	if [ ! -e "$BASE/.uc-complete" ]; then
		echo "package: bootstrapping Debian 12 minbase into $BASE (cold cache)"
		# twice: a download cut short by the network is fetched again
		for try in 1 2; do
			rm -rf --one-file-system "$BASE"
			debootstrap --variant=minbase --include=man-db --cache-dir="$CACHE/archives" \
				bookworm "$BASE" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 && break
			[ "$try" = 2 ] && { tail -n 20 "$CACHE/debootstrap.log"; exit 1; }
		done
		echo "deb $MIRROR bookworm main" > "$BASE/etc/apt/sources.list"
		touch "$BASE/.uc-complete"
	fi
	# package lists: fetched once, refreshed when older than a day (an old list may name
	# .debs the mirror no longer has)
	if [ ! -e "$BASE/.uc-lists" ] || [ -n "$(find "$BASE/.uc-lists" -mmin +1440)" ]; then
		cp -L /etc/resolv.conf "$BASE/etc/resolv.conf" 2> /dev/null
		chroot "$BASE" apt-get update -q > "$CACHE/apt-update.log" 2>&1 ||
			{ tail -n 20 "$CACHE/apt-update.log"; exit 1; }
		touch "$BASE/.uc-lists"
	fi
) 9> "$CACHE/lock" || { fail "bootstrap or apt-get update of $BASE (logs in $CACHE)"; exit 1; }

mkdir -p "$ROOT" "$W/upper" "$W/work"
if mount -t overlay overlay -o "lowerdir=$BASE,upperdir=$W/upper,workdir=$W/work" "$ROOT" 2> /dev/null; then
	MOUNTS+=("$ROOT")
	how=overlay
else
	cp -a "$BASE/." "$ROOT/" || { fail "copy of $BASE"; exit 1; }
	how=copy
fi
for m in proc dev; do
	mkdir -p "$ROOT/$m"
	case $m in
	proc) mount -t proc proc "$ROOT/proc" ;;
	dev) mount --bind /dev "$ROOT/dev" ;;
	esac && MOUNTS+=("$ROOT/$m")
done
mount --bind "$CACHE/archives" "$ROOT/var/cache/apt/archives" && MOUNTS+=("$ROOT/var/cache/apt/archives")
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2> /dev/null
cp "$DEB" "$ROOT/tmp/"
pass "clean Debian $(cat "$ROOT/etc/debian_version") minbase root ($how of the cached one)"

# ---- 4. apt-get install ./ublk-compose_*.deb, then use it
step "apt-get install"
in_root() { chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
	DEBIAN_FRONTEND=noninteractive "$@"; }
install_deb() { in_root apt-get install -y -q --no-install-recommends "/tmp/${DEB##*/}"; }
if ! install_deb > "$W/apt.log" 2>&1; then
	in_root apt-get update -q >> "$W/apt.log" 2>&1
	install_deb >> "$W/apt.log" 2>&1
fi
if in_root dpkg-query -W -f='${Status}' ublk-compose 2> /dev/null | grep -q 'install ok installed'; then
	pass "apt-get install ./${DEB##*/} pulled in: $(sed -nE 's/^Setting up ([^ ]+) .*/\1/p' "$W/apt.log" | tr '\n' ' ')"
else
	tail -n 20 "$W/apt.log"
	fail "apt-get install ./${DEB##*/} in the clean root"
	exit 1
fi

want=$(cd "$SRC" && dpkg-parsechangelog -S Version)
v=$(in_root ublk-compose --version 2>&1)
[ "$v" = "ublk-compose ${want%%-*}" ] && pass "ublk-compose --version: $v" ||
	fail "ublk-compose --version printed '$v', the package is $want"
missing=$(in_root ldd /usr/sbin/ublk-compose 2>&1 | grep 'not found')
[ -z "$missing" ] || fail "libraries missing after the install: $missing"
for page in ublk-compose ublk-compose.conf; do
	p=$(in_root man -w "$page" 2>&1)
	case $p in
	/usr/share/man/man[58]/"$page".[58].gz) pass "man -w $page: $p" ;;
	*) fail "man -w $page printed '$p'" ;;
	esac
done
out=$(in_root man ublk-compose.conf 2>&1 | grep -c 'bitmap_chunk')
[ "$out" -gt 0 ] && pass "man ublk-compose.conf renders (bitmap_chunk on $out lines)" ||
	fail "man ublk-compose.conf does not render"
ex=/usr/share/doc/ublk-compose/examples/raid10.conf
out=$(in_root ublk-compose check -c "$ex" 2>&1)
rc=$?
if [ "$rc" = 0 ] && printf '%s\n' "$out" | grep -q 'mirror' && [ -z "$(in_root find /usr/share/doc/ublk-compose/examples -name '*.img')" ]; then
	pass "ublk-compose check -c $ex: $(printf '%s\n' "$out" | head -n 1 | tr -s ' ')"
else
	printf '%s\n' "$out"
	fail "ublk-compose check -c $ex (exit $rc)"
fi
comp=$(in_root dpkg -L ublk-compose | grep -c -e '^/usr/share/bash-completion/completions/ublk-compose$' -e '^/etc/ublk-compose$')
[ "$comp" = 2 ] && pass "the package holds the bash completion and /etc/ublk-compose" ||
	fail "the bash completion or /etc/ublk-compose is missing from the package"
# units: the package enables and starts the plain ones (ublk-compose-monitor.service) and
# leaves the templates (ublk-compose@.service, ublk-compose-scrub@.timer, ...) to the admin
for u in $(in_root dpkg -L ublk-compose | grep -E '^/(usr/)?lib/systemd/system/[^/]+\.(service|timer)$'); do
	name=${u##*/}
	links=$(in_root find /etc/systemd/system -name "$name" 2> /dev/null)
	if [[ $name == *@.* ]]; then
		[ -z "$links" ] && pass "template $name not enabled" || fail "template $name enabled: $links"
	elif in_root grep -q '^\[Install\]' "$u"; then
		[ -n "$links" ] && pass "$name enabled: $links" || fail "$name not enabled"
	fi
done
step "done"
echo "package job: $((SECONDS - T0)) s, $failed failed"
[ "$failed" = 0 ]
