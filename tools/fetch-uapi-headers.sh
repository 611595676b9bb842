#!/usr/bin/env bash
# Fetch the Linux 7.3 UAPI headers (vfio.h, iommufd.h, kvm.h, pci_regs.h) that the
# header-compiled ABI test compares pyvfio against, without touching the system's apt
# configuration: a private sources list, lists and cache under DEST, the trixie-backports
# suite of the mirror the machine already uses, `apt-get download` + `dpkg-deb -x`.
#
# usage: tools/fetch-uapi-headers.sh [DEST]   (default .cache/uapi)
# prints the include directory to put in PYVFIO_UAPI_INCLUDE.
set -euo pipefail
dest=$(realpath -m "${1:-.cache/uapi}")
pkg=linux-headers-7.3.4+deb13-common
inc="$dest/root/usr/src/$pkg/include/uapi"
if [ -f "$inc/linux/iommufd.h" ]; then echo "$inc"; exit 0; fi
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
         | grep -E '^(URIs:|deb )' | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ' || true)
mirror=${mirror:-http://deb.debian.org/debian}
mkdir -p "$dest/etc/sources.list.d" "$dest/lists/partial" "$dest/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} trixie-backports main" \
    > "$dest/etc/sources.list"
opts=(-o "Dir::Etc::SourceList=$dest/etc/sources.list" -o "Dir::Etc::SourceParts=$dest/etc/sources.list.d"
      -o "Dir::State::Lists=$dest/lists" -o "Dir::Cache=$dest/cache" -o Debug::NoLocking=1
      -o APT::Sandbox::User=root)
apt-get "${opts[@]}" -qq update >&2
(cd "$dest" && apt-get "${opts[@]}" -qq download "$pkg" >&2)
dpkg-deb -x "$dest"/"${pkg}"_*.deb "$dest/root"
test -f "$inc/linux/iommufd.h"
echo "$inc"
