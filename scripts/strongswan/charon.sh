#!/usr/bin/env bash
# scripts/strongswan/charon.sh — run one strongSwan charon (kernel-libipsec:
# userspace ESP over TUN, always UDP-encapsulated) in network namespace NS
# with its own /run, config and vici socket under DIR, as docs/LAB.md describes.
#
#   charon.sh start NS DIR [SWANCTL_CONF]   start charon, load SWANCTL_CONF
#   charon.sh swanctl DIR --OP ARGS...      run swanctl --OP against that charon
#   charon.sh stop DIR                      stop it
#
# swanctl looks for credentials next to SWANCTL_CONF: put it in DIR with
# certificates in DIR/x509/, CA certificates in DIR/x509ca/ and keys in
# DIR/private/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
charon=${CHARON:-/usr/lib/ipsec/charon}

start() {
	local ns=$1 dir=$2 conf=${3:-}
	[ -x "$charon" ] || { echo "charon.sh: $charon missing: run scripts/ci-deps.sh" >&2; exit 1; }
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	sed "s|@DIR@|$dir|g" "$here/strongswan.conf.in" >"$dir/strongswan.conf"
	STRONGSWAN_CONF=$dir/strongswan.conf ip netns exec "$ns" unshare -m sh -c \
		"mount -t tmpfs none /run && exec $charon" >"$dir/charon.out" 2>&1 &
	echo $! >"$dir/charon.pid"
	for _ in $(seq 100); do
		[ -S "$dir/charon.vici" ] && break
		sleep 0.05
	done
	[ -S "$dir/charon.vici" ] || { echo "charon.sh: no vici socket in $dir after 5 s; see $dir/charon.log" >&2; exit 1; }
	[ -z "$conf" ] || swanctl "$dir" --load-all --file "$conf"
}

swanctl() {
	local dir=$1 op=$2
	shift 2
	STRONGSWAN_CONF=$dir/strongswan.conf /usr/sbin/swanctl "$op" --uri "unix://$dir/charon.vici" "$@"
}

stop() {
	local dir=$1
	[ -f "$dir/charon.pid" ] || return 0
	kill "$(cat "$dir/charon.pid")" 2>/dev/null || true
	rm -f "$dir/charon.pid"
}

cmd=${1:-}
shift || true
case $cmd in
start) start "$@" ;;
swanctl) swanctl "$@" ;;
stop) stop "$@" ;;
*) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
