#!/usr/bin/env bash
# scripts/lab.sh up|down|status — the lab's network and servers.
#   up:   netns $NETNS (lo up, tap0 = 10.9.0.1/24 for the QEMU guest), in it
#         nfs-ganesha serving $LAB/export at pseudo "/" over NFSv4.1 (in a
#         private mount namespace with its own /run and /var/lib/nfs) and
#         busybox httpd on 10.9.0.1:8080 serving $LAB/www (image B and
#         transfer.json); waits (bounded) until both listen.
#   down: stops what up started (by the pid files in $LAB/pids), deletes netns.
# Both are idempotent. Logs go to $LAB/logs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need ip ss ganesha.nfsd busybox unshare

GANESHA_CONF=$LAB/ganesha.conf
GANESHA_PID=$PIDS/ganesha.pid
HTTPD_PID=$PIDS/httpd.pid
UP_TIMEOUT=${FERRY_LAB_UP_TIMEOUT:-30}

ns_exists() { ip netns list 2>/dev/null | grep -qw "^$NETNS"; }

write_ganesha_conf() {
	mkdir -p "$LAB/ganesha-recov"
	cat > "$GANESHA_CONF" <<CONF
# written by scripts/lab.sh (see docs LAB.md for why each setting is here)
NFS_CORE_PARAM {
	Protocols = 4;
	Bind_addr = $HOST_IP;
	NFS_Port = 2049;
	Enable_NLM = false;
	Enable_RQUOTA = false;
	Enable_UDP = false;
}
NFSV4 {
	Graceless = true;
	Allow_Numeric_Owners = true;
	Only_Numeric_Owners = true;
	RecoveryBackend = fs;
	RecoveryRoot = $LAB/ganesha-recov;
}
EXPORT {
	Export_Id = 1;
	Path = $EXPORT;
	Pseudo = /;
	Access_Type = RW;
	Squash = No_Root_Squash;
	SecType = sys;
	Protocols = 4;
	Transports = TCP;
	FSAL { Name = VFS; }
}
LOG {
	Default_Log_Level = WARN;
}
CONF
}

up() {
	[ -d "$EXPORT" ] && [ -r "$WWW/transfer.json" ] || die "no images in $LAB: run scripts/build-images.sh first"
	mkdir -p "$PIDS" "$LOGS"
	if ! ns_exists; then
		ip netns add "$NETNS"
	fi
	in_ns ip link set lo up
	if ! in_ns ip link show "$TAP" >/dev/null 2>&1; then
		in_ns ip tuntap add dev "$TAP" mode tap
	fi
	in_ns ip addr replace "$HOST_IP/24" dev "$TAP"
	in_ns ip link set "$TAP" up

	if ! { [ -f "$GANESHA_PID" ] && kill -0 "$(cat "$GANESHA_PID")" 2>/dev/null; }; then
		write_ganesha_conf
		rm -f "$GANESHA_PID"
		[ -f "$LOGS/ganesha.log" ] && mv "$LOGS/ganesha.log" "$LOGS/ganesha.log.old"
		# Private /run and /var/lib/nfs so ganesha leaves the host's alone.
		# ganesha.nfsd daemonizes; its pid lands in $GANESHA_PID.
		in_ns unshare -m --propagation private sh -c '
			mount -t tmpfs none /run &&
			mount -t tmpfs none /var/lib/nfs &&
			mkdir -p /run/ganesha /var/lib/nfs/ganesha &&
			exec ganesha.nfsd -f "$1" -L "$2" -p "$3" -N NIV_WARN' \
			sh "$GANESHA_CONF" "$LOGS/ganesha.log" "$GANESHA_PID" \
			>>"$LOGS/ganesha.out" 2>&1
	fi
	if ! { [ -f "$HTTPD_PID" ] && kill -0 "$(cat "$HTTPD_PID")" 2>/dev/null; }; then
		nohup ip netns exec "$NETNS" busybox httpd -f -vv -p "$HOST_IP:$HTTP_PORT" -h "$WWW" \
			</dev/null >>"$LOGS/httpd.log" 2>&1 &
		echo $! > "$HTTPD_PID"
	fi

	wait_port "$UP_TIMEOUT" 2049 || die "ganesha does not listen on 2049 after ${UP_TIMEOUT}s (see $LOGS/ganesha.log)"
	wait_port "$UP_TIMEOUT" "$HTTP_PORT" || die "httpd does not listen on $HTTP_PORT after ${UP_TIMEOUT}s (see $LOGS/httpd.log)"
	# Ganesha's pid file may appear a little after it listens.
	for _ in $(seq 50); do [ -s "$GANESHA_PID" ] && break; sleep 0.1; done
	log "up: netns $NETNS, $TAP $HOST_IP/24, nfs $HOST_IP:2049 -> $EXPORT, http://$HOST_IP:$HTTP_PORT/ -> $WWW"
}

down() {
	kill_pidfile "$PIDS/qemu.pid"
	kill_pidfile "$HTTPD_PID"
	kill_pidfile "$GANESHA_PID"
	if ns_exists; then
		ip netns del "$NETNS"
	fi
	log "down"
}

status() {
	local f
	ns_exists && echo "netns $NETNS: present" || echo "netns $NETNS: absent"
	for f in "$PIDS"/*.pid; do
		[ -f "$f" ] || continue
		if kill -0 "$(cat "$f")" 2>/dev/null; then echo "$(basename "$f" .pid): running ($(cat "$f"))"
		else echo "$(basename "$f" .pid): dead"; fi
	done
	ns_exists && in_ns ss -Hltn || true
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
