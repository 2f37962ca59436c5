#!/usr/bin/env bash
# Install the comparison filesystems and tools used by scripts/bench.sh
# (Debian 12 "bookworm"), then build libfuse's passthrough_ll example.
#
#   scripts/install-bench-deps.sh            # install + build
#   BUILD=build scripts/install-bench-deps.sh
#
# A package missing from the archive is reported and skipped; bench.sh then
# skips that filesystem with a note. Idempotent.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# Peers first, then tools. psmisc = fuser, procps = pgrep/ps, time = GNU time.
WANT=(gocryptfs cryfs securefs fio libfuse3-dev fuse3 pkg-config gcc psmisc procps
      tar findutils coreutils util-linux)

missing=()
for p in "${WANT[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
	$SUDO apt-get update -qq
	installable=()
	for p in "${missing[@]}"; do
		cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
		if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
			echo "install-bench-deps: package '$p' is not available in this archive; skipping it" >&2
			echo "install-bench-deps:   (bench.sh will skip the corresponding filesystem with a note)" >&2
		else
			installable+=("$p")
		fi
	done
	if [ ${#installable[@]} -gt 0 ]; then
		echo "install-bench-deps: installing ${installable[*]}"
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${installable[@]}"
	fi
fi

[ -e /dev/fuse ] || { modprobe fuse 2>/dev/null || true; }
[ -e /dev/fuse ] || { echo "install-bench-deps: /dev/fuse is missing; FUSE cannot work here" >&2; exit 1; }

# libfuse's unencrypted low-level passthrough example, the "no crypto" baseline.
EX=/usr/share/doc/libfuse3-dev/examples
OUTDIR=$BUILD/bench
PT=$OUTDIR/passthrough_ll
mkdir -p "$OUTDIR"
src=
if [ -f "$EX/passthrough_ll.c" ]; then
	src=$EX/passthrough_ll.c
elif [ -f "$EX/passthrough_ll.c.gz" ]; then
	zcat "$EX/passthrough_ll.c.gz" > "$OUTDIR/passthrough_ll.c"
	src=$OUTDIR/passthrough_ll.c
fi
if [ -z "$src" ]; then
	echo "install-bench-deps: $EX/passthrough_ll.c not found; passthrough baseline unavailable" >&2
	exit 0
fi
if [ ! -x "$PT" ] || [ "$src" -nt "$PT" ]; then
	# passthrough_helpers.h sits next to the example; -I picks it up either way.
	# shellcheck disable=SC2046  # pkg-config output must word-split
	gcc -Wall -O2 -I"$EX" "$src" $(pkg-config fuse3 --cflags --libs) -o "$PT"
	echo "install-bench-deps: built $PT"
fi
for b in gocryptfs cryfs securefs fio; do
	if command -v "$b" >/dev/null; then
		printf 'install-bench-deps: %-10s %s\n' "$b" "$(command -v "$b")"
	else
		printf 'install-bench-deps: %-10s MISSING\n' "$b"
	fi
done
