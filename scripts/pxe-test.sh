#!/bin/bash
# scripts/pxe-test.sh — a QEMU guest PXE-boots image A from `ferry lender`.
#
# Everything is the real product, in a private namespace: `ferry lender init`
# makes the lender CA; `ferry lender serve` runs with a "netboot" section
# (DHCP mode on a bridge that holds the guest's tap); the guest's MAC is in
# the inventory with the qmp power driver pointing at the guest's QMP socket;
# QEMU starts paused (-S), so only the lender's power-on (`cont`) can start
# it. A real `ferry borrower` asks the lender for a lease over mutual TLS
# (org CAs and certificates made here with openssl), which makes the boot
# pending and powers the guest on. QEMU's iPXE ROM then asks DHCP, fetches
# the per-boot iPXE script, vmlinuz(A) (the cached Debian kernel) and
# initrd(A) (`ferry initrd build`). With PXE there is no -append: the only
# way the bootstrap parameters reach the kernel is the lender's script.
#
# Passes when
#  - the guest kernel prints "Command line:" with ferry.lender= (the
#    lender's public URL), ferry.ca= (the CA fingerprint `lender init`
#    printed) and a one-time ferry.token=;
#  - the lender logged the DHCP answer, the script and both files;
#  - a DHCP client with a MAC outside every lease (busybox udhcpc on a veth
#    in the bridge) got no offer from the lender, and the lender logged
#    that it stayed silent for that MAC.
#
# With FERRY_PXE_MODE=proxydhcp, busybox udhcpd hands out the addresses
# (the network's own DHCP server) and the lender answers as ProxyDHCP only.
#
# usage: scripts/pxe-test.sh [FERRY]     (root; FERRY defaults to ./ferry)
# env:   FERRY_PXE_TIMEOUT (seconds, default 180), FERRY_PXE_MODE (dhcp|proxydhcp),
#        FERRY_PXE_KEEP=1 keeps the work dir (logs, console) after a pass
set -euo pipefail
. "$(dirname "$0")/lib.sh"

FERRY=$(readlink -f "${1:-$FERRY_REPO/ferry}")
TIMEOUT=${FERRY_PXE_TIMEOUT:-180}
MODE=${FERRY_PXE_MODE:-dhcp}
NS=ferry-pxe-lab-$$
BR=pxebr$$
TAPDEV=pxetap$$
VETH=pxev$$
SERVER=10.42.0.1
AGENT_PORT=8443 M2M_PORT=9443 IMAGE_PORT=9444
MAC=52:54:00:42:00:01
STRANGER=52:54:00:42:00:99
DIR=$LAB/pxe-$$

# The whole test runs under a deadline: QEMU's own timeout plus two minutes
# for the builds, the managers and the stranger.
if [ -z "${FERRY_PXE_DEADLINE:-}" ]; then
	FERRY_PXE_DEADLINE=$((TIMEOUT + 120)) exec timeout "$((TIMEOUT + 120))" bash "$0" "$@"
fi

need ip qemu-system-x86_64 timeout openssl busybox
[ "$(id -u)" = 0 ] || die "needs root (network namespace, tap)"
[ -x "$FERRY" ] || die "no ferry binary at $FERRY: run make build"
case $MODE in dhcp | proxydhcp) ;; *) die "FERRY_PXE_MODE=$MODE: want dhcp or proxydhcp" ;; esac
[ -r "$KERNEL_ENV" ] || "$FERRY_REPO/scripts/fetch-kernel.sh" >/dev/null
load_kernel_env
mkdir -p "$DIR"

PIDS_TO_END=()
cleanup() {
	end_pids "${PIDS_TO_END[@]}"
	wait 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'die "stopped by a signal (deadline ${FERRY_PXE_DEADLINE} s?)"' TERM INT
# bg CMD...: start CMD (a program, not a shell function, so that $! is the
# program itself: ip netns exec and timeout exec or forward signals) and
# remember it for cleanup.
bg() { "$@" & PIDS_TO_END+=($!); }
in_lab() { ip netns exec "$NS" "$@"; }
fail() {
	local f
	for f in lender borrower udhcpc; do
		[ -s "$DIR/$f.log" ] && { echo "--- $f.log (tail)" >&2; tail -15 "$DIR/$f.log" >&2; }
	done
	[ -s "$DIR/console.log" ] && { echo "--- console (tail)" >&2; tail -c 2000 "$DIR/console.log" | tr -d '\033' >&2; }
	die "$* (files in $DIR)"
}
# wait_log SECONDS FILE PATTERN
wait_log() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do grep -aq -- "$3" "$2" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}

# make_certs DIR IP: the two organisations' CAs and their leaf certificates
# (ECDSA P-256; keys 0600): lender-m2m (server, IP SAN), borrower-m2m
# (client), borrower-images (server, IP SAN).
make_certs() {
	local d=$1 ip=$2 org name ku
	mkdir -p "$d"
	for org in lender-org borrower-org; do
		(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
			-subj "/CN=$org" -keyout "$d/$org-ca.key" -out "$d/$org-ca.pem" \
			-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign) 2>/dev/null
	done
	for name in lender-m2m:lender-org:server borrower-m2m:borrower-org:client borrower-images:borrower-org:server; do
		IFS=: read -r name org ku <<<"$name"
		(umask 077 && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-subj "/CN=$name" -keyout "$d/$name.key" -out "$d/$name.csr") 2>/dev/null
		{
			echo "keyUsage=critical,digitalSignature"
			echo "extendedKeyUsage=${ku}Auth"
			if [ "$ku" = server ]; then echo "subjectAltName=IP:$ip"; fi
		} >"$d/$name.ext"
		openssl x509 -req -in "$d/$name.csr" -CA "$d/$org-ca.pem" -CAkey "$d/$org-ca.key" -CAcreateserial \
			-days 2 -extfile "$d/$name.ext" -out "$d/$name.pem" 2>/dev/null
	done
}

T0=$(date +%s.%N)
log "initrd(A) with ferry initrd build"
"$FERRY" initrd build -o "$DIR/initrd-a.img" --kernel-modules "$MODDIR" \
	--module virtio_net --module virtio_pci --compress zstd >/dev/null

log "certificates: lender and borrower organisations (openssl, P-256)"
make_certs "$DIR/pki" "$SERVER"

log "network: namespace $NS, bridge $BR ($SERVER/24), guest tap, stranger veth"
ip netns add "$NS"
in_lab ip link set lo up
in_lab ip link add "$BR" type bridge
in_lab ip tuntap add dev "$TAPDEV" mode tap
in_lab ip link add "$VETH" type veth peer name "${VETH}c"
in_lab ip link set "${VETH}c" address "$STRANGER"
for l in "$TAPDEV" "$VETH"; do in_lab ip link set "$l" master "$BR" up; done
in_lab ip addr add "$SERVER/24" dev "$BR"
in_lab ip link set "$BR" up
in_lab ip link set "${VETH}c" up
# The lab network's router: iPXE's "Configuring" waits for IPv6 autoconfig
# as well as DHCP, about 15 s under TCG when no router advertises. One RA
# a second (no prefix, lifetime 0: "no default router here") ends that wait
# as a real network's router would. Without python3 the test only runs slower.
if command -v python3 >/dev/null; then
	bg ip netns exec "$NS" python3 -c '
import socket, struct, sys, time
idx = socket.if_nametoindex(sys.argv[1])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 0, 0, 0)
while True:
    try:
        s.sendto(ra, ("ff02::1", 0, 0, idx))
    except OSError:
        pass  # no link-local address yet (DAD)
    time.sleep(1)
' "$BR"
else
	log "no python3: no router advertisements, iPXE will wait for IPv6 autoconfiguration"
fi

if [ "$MODE" = proxydhcp ]; then
	cat >"$DIR/udhcpd.conf" <<-CONF
	start 10.42.0.100
	end 10.42.0.150
	interface $BR
	max_leases 16
	lease_file $DIR/udhcpd.leases
	pidfile $DIR/udhcpd.pid
	option subnet 255.255.255.0
	option router $SERVER
	CONF
	touch "$DIR/udhcpd.leases"
	bg ip netns exec "$NS" busybox udhcpd -f "$DIR/udhcpd.conf" >"$DIR/udhcpd.log" 2>&1
fi

log "QEMU paused (-S): only the lender's power driver can start it"
bg ip netns exec "$NS" timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m 512 \
	-nographic -no-reboot -boot n -S -qmp "unix:$DIR/qmp.sock,server=on,wait=off" \
	-netdev "tap,id=n0,ifname=$TAPDEV,script=no,downscript=no" \
	-device "virtio-net-pci,netdev=n0,mac=$MAC" >"$DIR/console.log" 2>&1
QEMU_PID=$!
for _ in $(seq 50); do [ -S "$DIR/qmp.sock" ] && break; sleep 0.1; done
[ -S "$DIR/qmp.sock" ] || fail "QEMU made no QMP socket"

log "ferry lender init, serve (netboot $MODE on $BR)"
LDIR=$DIR/lender
CA_SHA=$("$FERRY" lender init --dir "$LDIR" --config "$LDIR/lender-init.json" --host "$SERVER" | awk '$1 == "ca_sha256" {print $2}')
[ -n "$CA_SHA" ] || fail "lender init printed no ca_sha256"
PKI=$DIR/pki
POOL=
[ "$MODE" = dhcp ] && POOL='"pool_first": "10.42.0.100", "pool_last": "10.42.0.150", "prefix": "10.42.0.0/24",'
cat >"$DIR/lender.json" <<-JSON
{"dir": "$LDIR", "agent_listen": "$SERVER:$AGENT_PORT", "public_url": "https://$SERVER:$AGENT_PORT",
 "m2m_listen": "$SERVER:$M2M_PORT", "m2m_cert": "$PKI/lender-m2m.pem", "m2m_key": "$PKI/lender-m2m.key",
 "m2m_client_ca": "$PKI/borrower-org-ca.pem", "token_ttl": "10m",
 "netboot": {"interface": "$BR", "server_ip": "$SERVER", "mode": "$MODE", $POOL
             "http_addr": "$SERVER:8080", "kernel_a": "$VMLINUZ", "initrd_a": "$DIR/initrd-a.img",
             "cmdline": "console=ttyS0"}}
JSON
bg ip netns exec "$NS" "$FERRY" lender serve --config "$DIR/lender.json" >"$DIR/lender.log" 2>&1
wait_log 10 "$DIR/lender.log" 'dhcp listening' || fail "lender did not start serving DHCP"
"$FERRY" lender server add --dir "$LDIR" --mac "$MAC" --power qmp --power-opt "socket=$DIR/qmp.sock" >/dev/null
[ ! -s "$DIR/console.log" ] || fail "the guest printed before the lender powered it on"

log "ferry borrower: image b1, serve, lease request (mutual TLS to the lender)"
BDIR=$DIR/borrower
mkdir -p "$DIR/template/etc" && echo lent >"$DIR/template/etc/hostname"
cat >"$DIR/borrower.json" <<-JSON
{"dir": "$BDIR", "lender_url": "https://$SERVER:$M2M_PORT",
 "m2m_cert": "$PKI/borrower-m2m.pem", "m2m_key": "$PKI/borrower-m2m.key", "m2m_ca": "$PKI/lender-org-ca.pem",
 "borrower_ca": "$PKI/borrower-org-ca.pem", "gateway": "$SERVER:4500", "allow_file": "$DIR/allow.jsonl",
 "image_listen": "$SERVER:$IMAGE_PORT", "image_url": "https://$SERVER:$IMAGE_PORT/images",
 "image_cert": "$PKI/borrower-images.pem", "image_key": "$PKI/borrower-images.key",
 "tunnel_pool": "10.42.8.0/24", "nfs_server": "$SERVER", "nfs_export": "/srv/roots", "nfs_exports": "none",
 "default_template": "$DIR/template", "poll_seconds": 1}
JSON
"$FERRY" borrower image add --dir "$BDIR" b1 --kernel "$VMLINUZ" --initrd "$DIR/initrd-a.img" --cmdline console=ttyS0 >/dev/null 2>"$DIR/image-add.log"
bg ip netns exec "$NS" "$FERRY" borrower serve --config "$DIR/borrower.json" >"$DIR/borrower.log" 2>&1
for _ in $(seq 50); do "$FERRY" borrower lease list --dir "$BDIR" >/dev/null 2>&1 && break; sleep 0.2; done
T_LEASE=$(date +%s.%N)
out=$("$FERRY" borrower lease request --dir "$BDIR" --count 1 --image b1 --key "pxe-test-$$") ||
	fail "borrower lease request failed: $out"
grep -q 'state active' <<<"$out" || fail "lease request printed '$out', want an active lease"

log "stranger $STRANGER asks DHCP (udhcpc): the lender must stay silent"
in_lab busybox udhcpc -i "${VETH}c" -n -q -f -t 3 -T 1 -A 1 -V PXEClient:Arch:00000:UNDI:002001 \
	-s /bin/true >"$DIR/udhcpc.log" 2>&1 && stranger_rc=0 || stranger_rc=$?

log "waiting for the guest kernel's command line (console in $DIR/console.log)"
marker='Command line:.*ferry\.token='
ok=
for _ in $(seq $((TIMEOUT * 5))); do
	if grep -aq "$marker" "$DIR/console.log"; then ok=1; break; fi
	kill -0 "$QEMU_PID" 2>/dev/null || break
	sleep 0.2
done
T_CMDLINE=$(date +%s.%N)
[ -n "$ok" ] || fail "guest kernel never printed its command line with the bootstrap parameters"
cmdline=$(grep -a "Command line:" "$DIR/console.log" | head -1 | tr -d '\r')
sed 's/ferry\.token=[^ ]*/ferry.token=(one-time, redacted)/' <<<"$cmdline" >&2

# The parameters are the lender's own: its public URL, its CA, a token.
for want in "ferry.lender=https://$SERVER:$AGENT_PORT " "ferry.ca=$CA_SHA " "console=ttyS0 "; do
	grep -qF -- "$want" <<<"$cmdline " || fail "guest command line lacks '$want'"
done
grep -qE 'ferry\.token=[A-Za-z0-9_-]{43,64}( |$)' <<<"$cmdline" || fail "guest command line has no well-formed one-time token"
# The token is the one of this boot: the lender mints a fresh one per
# script, so it must be the pending boot's (until A enrolls with it).
token=$(sed -n 's/.*ferry\.token=\([^ ]*\).*/\1/p' <<<"$cmdline")
if pending=$("$FERRY" lender boot --dir "$LDIR" "$MAC" 2>/dev/null); then
	grep -qF "\"token\":\"$token\"" <<<"$pending" || fail "the guest's token is not the one the lender holds for $MAC"
	log "the guest's token is the lender's pending boot token for $MAC"
else
	"$FERRY" lender lease list --dir "$LDIR" | grep -q enroll || fail "no pending boot for $MAC and no enrollment either"
	log "image A already enrolled with its token"
fi
for what in 'dhcp answered.*file=http' 'script served' 'file served.*file=kernel' 'file served.*file=initrd'; do
	grep -q "$what" "$DIR/lender.log" || fail "lender log lacks '$what'"
done
grep 'dhcp answered' "$DIR/lender.log" | grep -q "mac=$STRANGER" && fail "lender answered DHCP for $STRANGER, which no lease holds"
grep -q "no pending boot.*mac=$STRANGER" "$DIR/lender.log" || fail "lender did not log its silence towards $STRANGER"
if [ "$MODE" = dhcp ]; then
	[ "$stranger_rc" != 0 ] || fail "udhcpc got a lease for $STRANGER: $(cat "$DIR/udhcpc.log")"
else
	# the address came from the network's DHCP server, never from ferry
	grep -q 'sending ACK' "$DIR/udhcpd.log" || fail "udhcpd handed out no address"
	! grep 'dhcp answered' "$DIR/lender.log" | grep -vq 'yiaddr=0.0.0.0' || fail "ProxyDHCP handed out an address"
fi

T_END=$(date +%s.%N)
awk -v m="$MODE" -v t0="$T0" -v l="$T_LEASE" -v c="$T_CMDLINE" -v e="$T_END" -v s="$STRANGER" 'BEGIN {
	printf "pxe-test: ok (%s): lease -> power on (QMP cont) -> DHCP -> iPXE script -> kernel with bootstrap parameters in %.1f s (whole test %.1f s); stranger %s unanswered by the lender\n", m, c - l, e - t0, s }'
[ -n "${FERRY_PXE_KEEP:-}" ] || rm -rf "$DIR"
