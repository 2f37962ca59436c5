#!/usr/bin/env bash
# Create a project-local SoftHSM2 token: its own config and token directory
# under DIR, so tests and `make demo` never touch /var/lib/softhsm.
#
#   scripts/softhsm-setup.sh DIR [--label LABEL] [--pin-file F] [--so-pin-file F]
#   eval "$(scripts/softhsm-setup.sh /tmp/mv-hsm)"
#
# Writes DIR/softhsm2.conf, DIR/tokens/, DIR/user.pin and DIR/so.pin (0600,
# random unless given), DIR/env (sourceable), and prints on stdout:
#   export SOFTHSM2_CONF=DIR/softhsm2.conf
#   export MEDVAULT_PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so
#   export MEDVAULT_PIN_FILE=DIR/user.pin
#   export MEDVAULT_TOKEN=LABEL
# Idempotent: an existing token with that label is kept.
set -euo pipefail

usage() {
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

dir= label=medvault pin_file= so_pin_file=
while [ $# -gt 0 ]; do
	case "$1" in
	-h|--help) usage; exit 0 ;;
	--label) label=${2:?--label needs a value}; shift 2 ;;
	--pin-file) pin_file=${2:?--pin-file needs a value}; shift 2 ;;
	--so-pin-file) so_pin_file=${2:?--so-pin-file needs a value}; shift 2 ;;
	-*) echo "softhsm-setup: unknown option $1" >&2; exit 2 ;;
	*) [ -z "$dir" ] || { echo "softhsm-setup: one DIR only" >&2; exit 2; }; dir=$1; shift ;;
	esac
done
[ -n "$dir" ] || { usage >&2; exit 2; }

module=
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
	 /usr/lib64/pkcs11/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
	[ -e "$m" ] && { module=$m; break; }
done
[ -n "$module" ] || { echo "softhsm-setup: libsofthsm2.so not found; run scripts/install-deps.sh" >&2; exit 1; }
command -v softhsm2-util >/dev/null || { echo "softhsm-setup: softhsm2-util missing; run scripts/install-deps.sh" >&2; exit 1; }

umask 077
mkdir -p "$dir/tokens"
dir=$(cd "$dir" && pwd)
conf=$dir/softhsm2.conf
cat >"$conf" <<EOF
# medvault project-local SoftHSM2 token (scripts/softhsm-setup.sh)
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
export SOFTHSM2_CONF=$conf

randpin() { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# The PIN files are what medvault reads; strip one trailing newline like it does.
if [ -n "$pin_file" ]; then
	[ "$(readlink -f "$pin_file")" = "$dir/user.pin" ] || cat "$pin_file" >"$dir/user.pin"
elif [ ! -s "$dir/user.pin" ]; then
	printf '%s\n' "$(randpin)" >"$dir/user.pin"
fi
if [ -n "$so_pin_file" ]; then
	[ "$(readlink -f "$so_pin_file")" = "$dir/so.pin" ] || cat "$so_pin_file" >"$dir/so.pin"
elif [ ! -s "$dir/so.pin" ]; then
	printf '%s\n' "$(randpin)" >"$dir/so.pin"
fi
chmod 600 "$dir/user.pin" "$dir/so.pin"

if softhsm2-util --show-slots 2>/dev/null | grep -Eq "^[[:space:]]*Label:[[:space:]]+$label[[:space:]]*$"; then
	echo "softhsm-setup: token '$label' already exists in $dir/tokens" >&2
else
	pin=$(head -n1 "$dir/user.pin"); so_pin=$(head -n1 "$dir/so.pin")
	# softhsm2-util only takes PINs in argv; acceptable for a local test
	# token, never do this with a production HSM's PIN.
	softhsm2-util --init-token --free --label "$label" --pin "$pin" --so-pin "$so_pin" >/dev/null
	unset pin so_pin
	echo "softhsm-setup: initialised token '$label' in $dir/tokens" >&2
fi

{
	printf 'export SOFTHSM2_CONF=%q\n' "$conf"
	printf 'export MEDVAULT_PKCS11_MODULE=%q\n' "$module"
	printf 'export MEDVAULT_PIN_FILE=%q\n' "$dir/user.pin"
	printf 'export MEDVAULT_TOKEN=%q\n' "$label"
} | tee "$dir/env"
