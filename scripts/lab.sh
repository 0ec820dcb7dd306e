#!/usr/bin/env bash
# scripts/lab.sh up|down|status — the lab's network and servers.
#   up:   netns $NETNS (lo up, tap0 = 10.9.0.1/24 for the QEMU guest), in it
#         nfs-ganesha serving $LAB/export at pseudo "/" over NFSv4.x (in a
#         private mount namespace with its own /run and /var/lib/nfs) and
#         busybox httpd on 10.9.0.1:8080 serving $LAB/www (image B and
#         transfer.json); waits (bounded) until both listen.
#         FERRY_NFS_VERSION=3 (default: the version write_variant recorded in
#         the export, else 4.1) serves NFSv3 too: MOUNT on 20048 and rpcbind
#         on 111 beside ganesha, in the same mount namespace (ganesha
#         registers v3 with rpcbind through /run/rpcbind.sock and exits
#         without it); v3 clients mount the pseudo path "/" as v4 ones do.
#   down: stops what up started (by the pid files in $LAB/pids), deletes netns.
# Both are idempotent. Logs go to $LAB/logs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need ip ss ganesha.nfsd busybox unshare

GANESHA_CONF=$LAB/ganesha.conf
GANESHA_PID=$PIDS/ganesha.pid
RPCBIND_PID=$PIDS/rpcbind.pid
MNT_PORT=20048
NFS_VERSION=$(lab_nfs_version)
if [ "$NFS_VERSION" = 3 ]; then V3=1; PROTOCOLS="3, 4"; else V3=0; PROTOCOLS=4; fi
HTTPD_PID=$PIDS/httpd.pid
UP_TIMEOUT=${FERRY_LAB_UP_TIMEOUT:-30}

ns_exists() { ip netns list 2>/dev/null | grep -qw "^$NETNS"; }

write_ganesha_conf() {
	mkdir -p "$LAB/ganesha-recov"
	cat > "$GANESHA_CONF" <<CONF
# written by scripts/lab.sh (see docs/LAB.md for why each setting is here)
# NFS version $NFS_VERSION: protocols $PROTOCOLS.
NFS_CORE_PARAM {
	Protocols = $PROTOCOLS;
	Bind_addr = $HOST_IP;
	NFS_Port = 2049;
	MNT_Port = $MNT_PORT;
	Mount_Path_Pseudo = true;
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
	Protocols = $PROTOCOLS;
	Transports = TCP;
	FSAL { Name = VFS; }
}
LOG {
	Default_Log_Level = WARN;
}
CONF
}

# Wait (at most $1 seconds) until rpcbind in the netns lists NFS (100003)
# and MOUNT (100005) version 3 over TCP, as the guest's kernel asks for them.
wait_rpc_v3() {
	local limit=$1 i out
	for ((i = 0; i < limit * 5; i++)); do
		out=$(in_ns rpcinfo -p "$HOST_IP" 2>/dev/null || true)
		if grep -Eq '^ *100003 +3 +tcp' <<<"$out" && grep -Eq '^ *100005 +3 +tcp' <<<"$out"; then return 0; fi
		sleep 0.2
	done
	return 1
}

up() {
	[ -d "$EXPORT" ] && [ -r "$WWW/transfer.json" ] || die "no images in $LAB: run scripts/build-images.sh first"
	nfs_fstype "$NFS_VERSION" >/dev/null || die "nfs version '$NFS_VERSION': want 3, 4, 4.0, 4.1 or 4.2"
	if [ "$V3" = 1 ]; then need rpcbind rpcinfo; fi
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

	if [ -f "$GANESHA_PID" ] && kill -0 "$(cat "$GANESHA_PID")" 2>/dev/null &&
		! grep -qx "# NFS version $NFS_VERSION: protocols $PROTOCOLS." "$GANESHA_CONF" 2>/dev/null; then
		die "ganesha runs with another NFS version than $NFS_VERSION ($GANESHA_CONF): run $0 down first"
	fi
	if ! { [ -f "$GANESHA_PID" ] && kill -0 "$(cat "$GANESHA_PID")" 2>/dev/null; }; then
		kill_pidfile "$RPCBIND_PID"
		write_ganesha_conf
		rm -f "$GANESHA_PID"
		[ -f "$LOGS/ganesha.log" ] && mv "$LOGS/ganesha.log" "$LOGS/ganesha.log.old"
		# Private /run and /var/lib/nfs so ganesha (and rpcbind, whose
		# socket /run/rpcbind.sock ganesha registers through) leave the
		# host's alone. rpcbind -f stays in the background (its pid in
		# $RPCBIND_PID); ganesha.nfsd daemonizes, its pid lands in $GANESHA_PID.
		in_ns unshare -m --propagation private sh -c '
			mount -t tmpfs none /run &&
			mount -t tmpfs none /var/lib/nfs &&
			mkdir -p /run/ganesha /var/lib/nfs/ganesha || exit 1
			if [ "$4" = 1 ]; then
				rpcbind -f -w >>"$6" 2>&1 </dev/null &
				echo $! > "$5"
				i=0
				while [ ! -S /run/rpcbind.sock ]; do
					i=$((i + 1))
					if [ $i -gt 100 ] || ! kill -0 $! 2>/dev/null; then
						echo "rpcbind did not create /run/rpcbind.sock" >&2; exit 1
					fi
					sleep 0.1
				done
			fi
			exec ganesha.nfsd -f "$1" -L "$2" -p "$3" -N NIV_WARN' \
			sh "$GANESHA_CONF" "$LOGS/ganesha.log" "$GANESHA_PID" \
			"$V3" "$RPCBIND_PID" "$LOGS/rpcbind.log" \
			>>"$LOGS/ganesha.out" 2>&1 ||
			die "starting ganesha (nfs $NFS_VERSION) failed (see $LOGS/ganesha.out)"
	fi
	if ! { [ -f "$HTTPD_PID" ] && kill -0 "$(cat "$HTTPD_PID")" 2>/dev/null; }; then
		nohup ip netns exec "$NETNS" busybox httpd -f -vv -p "$HOST_IP:$HTTP_PORT" -h "$WWW" \
			</dev/null >>"$LOGS/httpd.log" 2>&1 &
		echo $! > "$HTTPD_PID"
	fi

	wait_port "$UP_TIMEOUT" 2049 || die "ganesha does not listen on 2049 after ${UP_TIMEOUT}s (see $LOGS/ganesha.log)"
	if [ "$V3" = 1 ]; then
		wait_port "$UP_TIMEOUT" 111 || die "rpcbind does not listen on 111 after ${UP_TIMEOUT}s (see $LOGS/rpcbind.log)"
		wait_port "$UP_TIMEOUT" "$MNT_PORT" || die "ganesha's MOUNT does not listen on $MNT_PORT after ${UP_TIMEOUT}s (see $LOGS/ganesha.log)"
		wait_rpc_v3 "$UP_TIMEOUT" || die "nfs v3 or mount v3 over tcp not registered with rpcbind after ${UP_TIMEOUT}s: $(in_ns rpcinfo -p "$HOST_IP" 2>&1 | tr '\n' ';')"
	fi
	wait_port "$UP_TIMEOUT" "$HTTP_PORT" || die "httpd does not listen on $HTTP_PORT after ${UP_TIMEOUT}s (see $LOGS/httpd.log)"
	# Ganesha's pid file may appear a little after it listens.
	for _ in $(seq 50); do [ -s "$GANESHA_PID" ] && break; sleep 0.1; done
	log "up: netns $NETNS, $TAP $HOST_IP/24, nfs $NFS_VERSION (protocols $PROTOCOLS) $HOST_IP:2049 -> $EXPORT, http://$HOST_IP:$HTTP_PORT/ -> $WWW"
}

down() {
	kill_pidfile "$PIDS/qemu.pid"
	kill_pidfile "$HTTPD_PID"
	kill_pidfile "$GANESHA_PID"
	kill_pidfile "$RPCBIND_PID"
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
