#!/bin/bash
# tests/man-drift.sh BIN CONF_KEYS MANDIR: the man pages must not drift from the code.
#  - the commands in `BIN --help` are exactly the entries of COMMANDS in ublk-compose(8),
#    and every option --help shows is an entry of OPTIONS there;
#  - the keys the parser checks against (CONF_KEYS prints the tables: the top level, the device
#    group, each layer's ops.keys) are exactly the keys ublk-compose.conf(5) documents under
#    FILE FORMAT, DEVICE, "Keys of every layer" (type, name) and each layer's own section.
# Entries in the scdoc sources are lines starting with *word* (commands), *-x*/*--long* (options)
# or *key* = (config keys). Prints every difference; exits 1 if there is any.
set -u -o pipefail
BIN=$1 KEYS=$2 MANDIR=$3
P8=$MANDIR/ublk-compose.8.scd P5=$MANDIR/ublk-compose.conf.5.scd
bad=0
fail() { echo "DRIFT: $*"; bad=1; }

# section FILE HEADING: the lines under heading (an exact "# X" or "## X" line) up to the next
# heading of the same or a higher level
section() {
	awk -v h="$2" '
		$0 == h { on = 1; lvl = index(h, " ") - 1; next }
		on && /^#+ / { if (index($0, " ") - 1 <= lvl) exit }
		on { print }' "$1"
}
# words WORD...: sorted, unique, one per line
words() { printf '%s\n' "$@" | sed '/^$/d' | sort -u; }
# compare WHAT CODE-LIST DOC-LIST
compare() {
	local what=$1 w
	for w in $(comm -23 <(words $2) <(words $3)); do fail "$what: '$w' is missing from the man page"; done
	for w in $(comm -13 <(words $2) <(words $3)); do fail "$what: the man page documents '$w', which the code does not have"; done
}

help=$("$BIN" --help) || { echo "FAIL: $BIN --help exited non-zero"; exit 1; }
# usage lines up to "Layers:"; the synopsis is what comes before the first run of 2+ spaces
synopses=$(printf '%s\n' "$help" | sed '/^Layers:/,$d' | sed -E 's/^(usage:)? +//; s/  .*//')
help_cmds=$(printf '%s\n' "$synopses" | awk '$1 == "ublk-compose" && $2 !~ /^-/ { print $2 }')
help_opts=$(printf '%s\n' "$synopses" | grep -oE '(^|[^[:alnum:]-])--?[[:alpha:]][[:alnum:]-]*' | sed -E 's/^[^-]+//')
[ -n "$help_cmds" ] || fail "no commands found in --help"
[ -n "$help_opts" ] || fail "no options found in --help"

man_cmds=$(section "$P8" "# COMMANDS" | sed -nE 's/^\*([a-z][a-z-]*)\*.*/\1/p')
man_opts=$(section "$P8" "# OPTIONS" | grep -E '^\*-' | grep -oE '\*--?[[:alpha:]][[:alnum:]-]*\*' | tr -d '*')
compare "ublk-compose(8) COMMANDS vs --help" "$help_cmds" "$man_cmds"
for o in $(words $help_opts); do
	printf '%s\n' "$man_opts" | grep -qxe "$o" || fail "ublk-compose(8) OPTIONS: '$o' (in --help) is missing"
done

keys=$("$KEYS") || { echo "FAIL: $KEYS exited non-zero"; exit 1; }
# doc_keys HEADING: the keys documented under it (lines "*key* = ...")
doc_keys() { section "$P5" "$1" | sed -nE 's/^\*([a-z_\\]+)\* = .*/\1/p' | tr -d '\\'; }
compare "ublk-compose.conf(5) FILE FORMAT vs the top-level keys" \
	"$(printf '%s\n' "$keys" | awk '$1 == "top" { $1 = ""; print }')" "$(doc_keys '# FILE FORMAT')"
compare "ublk-compose.conf(5) DEVICE vs the device keys" \
	"$(printf '%s\n' "$keys" | awk '$1 == "device" { $1 = ""; print }')" "$(doc_keys '# DEVICE')"
compare "ublk-compose.conf(5) 'Keys of every layer'" "type name" "$(doc_keys '## Keys of every layer')"
layers=$(printf '%s\n' "$keys" | awk '$1 == "layer" { print $2 }')
[ -n "$layers" ] || fail "no layers in $KEYS's output"
for l in $layers; do
	grep -qx "## $l" "$P5" || { fail "ublk-compose.conf(5) has no section '## $l'"; continue; }
	# type and name are documented once for every layer; "name" is accepted by every layer
	compare "ublk-compose.conf(5) layer '$l'" \
		"$(printf '%s\n' "$keys" | awk -v l="$l" '$1 == "layer" && $2 == l { $1 = $2 = ""; print }') name" \
		"$(doc_keys "## $l") type name"
done
# every layer section in LAYERS is a layer of the code
for s in $(section "$P5" "# LAYERS" | sed -nE 's/^## ([a-z]+)$/\1/p'); do
	printf '%s\n' "$layers" | grep -qx "$s" || fail "ublk-compose.conf(5) documents a layer '$s' that does not exist"
done
[ "$bad" = 0 ] && echo "man pages match --help and the parser's key tables ($(words $layers | wc -l) layers)"
exit $bad
