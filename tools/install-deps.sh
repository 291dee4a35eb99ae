#!/bin/bash
# tools/install-deps.sh: install the Debian packages needed to build and test ublk-compose
# (skips apt entirely when everything is already installed). Needs root for installing.
set -u -o pipefail
PKGS="build-essential cmake pkg-config liburing-dev libconfig-dev libzstd-dev libnbd-dev clang libclang-rt-14-dev
      fio mdadm e2fsprogs util-linux mount kmod nbdkit nbd-client iproute2
      qemu-system-x86 busybox-static cpio xz-utils zstd debian-archive-keyring
      scdoc groff-base man-db bash-completion dpkg-dev debhelper lintian debootstrap"
missing=()
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "deps: all installed" >&2; exit 0; }
echo "deps: installing ${missing[*]}" >&2
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null || echo "deps: apt-get update failed" >&2
$SUDO apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing[@]}" </dev/null >/tmp/install-deps.log 2>&1 || { tail -n 20 /tmp/install-deps.log >&2; echo "deps: apt-get install failed" >&2; exit 1; }
echo "deps: done" >&2
