#!/usr/bin/env bash
# Install everything medvault needs to build, test and demo on Debian 12.
# Idempotent: skips apt-get when every package is already present.
set -euo pipefail

PKGS=(build-essential pkg-config libfuse3-dev fuse3 libsodium-dev libssl-dev liblmdb-dev
      lmdb-utils softhsm2 opensc libp11-kit-dev p11-kit libcmocka-dev rsync
      dcmtk fio attr acl xxd python3 python3-lmdb util-linux procps psmisc e2fsprogs
      clang libclang-rt-14-dev orthanc curl)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	SUDO=
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	echo "install-deps: installing ${missing[*]}"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# FUSE needs the device node; containers sometimes lack the module load.
[ -e /dev/fuse ] || { modprobe fuse 2>/dev/null || true; }
[ -e /dev/fuse ] || { echo "install-deps: /dev/fuse is missing; FUSE cannot work here" >&2; exit 1; }
# The service account root mounts drop to once mounted (docs/DESIGN.md,
# "Privilege separation"); tests/integration/t_47_privsep.sh needs it.
if ! id -u medvault >/dev/null 2>&1; then
	SUDO=
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	echo "install-deps: creating the service account medvault"
	$SUDO useradd --system --no-create-home --shell /usr/sbin/nologin medvault
fi
