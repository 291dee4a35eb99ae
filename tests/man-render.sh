#!/bin/bash
# tests/man-render.sh PAGE...: each man page renders without a single warning, under
# `groff -man -ww -z` and as lintian renders it (`man --warnings -E UTF-8 -l -Tutf8 -Z`).
set -u
bad=0
for p in "$@"; do
	[ -s "$p" ] || { echo "FAIL: $p missing or empty"; bad=1; continue; }
	out=$(LC_ALL=C.UTF-8 groff -man -ww -z "$p" 2>&1)
	[ -z "$out" ] || { echo "FAIL: groff -man -ww -z $p:"; echo "$out"; bad=1; }
	if command -v man > /dev/null; then
		out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$p" 2>&1 > /dev/null)
		[ -z "$out" ] || { echo "FAIL: man --warnings $p:"; echo "$out"; bad=1; }
	fi
	grep -q '^\.SH "*NAME' "$p" || { echo "FAIL: $p has no NAME section"; bad=1; }
	[ "$bad" = 0 ] && echo "ok: $p ($(wc -l < "$p") lines)"
done
exit $bad
