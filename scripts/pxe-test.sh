#!/bin/bash
# scripts/pxe-test.sh — a QEMU guest PXE-boots image A from netboot.Server.
#
# QEMU's own iPXE ROM (virtio-net) asks DHCP on a tap device inside a
# private namespace; netboot/internal/pxedemo answers in DHCP mode with the
# sealed URL of a per-boot iPXE script, which fetches vmlinuz(A) (the cached
# Debian kernel) and initrd(A) (`ferry initrd build`) over HTTP. The test
# passes when the guest kernel prints "Command line:" with the bootstrap
# parameters the policy put there. With PXE there is no -append: the only
# way those parameters reach the kernel is the script.
#
# With FERRY_PXE_MODE=proxydhcp, busybox udhcpd hands out the addresses
# (the network's own DHCP server) and pxedemo answers as ProxyDHCP only.
#
# usage: scripts/pxe-test.sh [FERRY]     (root; FERRY defaults to ./ferry)
# env:   FERRY_PXE_TIMEOUT (seconds, default 180), FERRY_PXE_MODE (dhcp|proxydhcp)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

FERRY=${1:-$FERRY_REPO/ferry}
TIMEOUT=${FERRY_PXE_TIMEOUT:-180}
MODE=${FERRY_PXE_MODE:-dhcp}
NS=pxetest$$
TAPDEV=nbtap$$
SERVER=10.42.0.1
MAC=52:54:00:42:00:01
TOKEN=pxe-token-$$
CMDLINE="console=ttyS0 ferry.lender=http://$SERVER:9443 ferry.ca=sha256:0f0e0d ferry.token=$TOKEN ferry.trace=pxe$$"
DIR=$LAB/pxe-$$

need ip qemu-system-x86_64 go timeout
[ "$(id -u)" = 0 ] || die "needs root (network namespace, tap)"
[ -x "$FERRY" ] || die "no ferry binary at $FERRY: run make build"
load_kernel_env
mkdir -p "$DIR"

DEMO_PID= QEMU_PID= UDHCPD_PID=
cleanup() {
	[ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null || true
	[ -n "$UDHCPD_PID" ] && kill "$UDHCPD_PID" 2>/dev/null || true
	[ -n "$DEMO_PID" ] && kill "$DEMO_PID" 2>/dev/null || true
	wait 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT

log "initrd(A) with ferry initrd build"
"$FERRY" initrd build -o "$DIR/initrd-a.img" --kernel-modules "$MODDIR" \
	--module virtio_net --module virtio_pci >/dev/null
log "pxedemo"
(cd "$FERRY_REPO" && CGO_ENABLED=0 go build -o "$DIR/pxedemo" ./netboot/internal/pxedemo)

ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip tuntap add dev "$TAPDEV" mode tap
ip netns exec "$NS" ip addr add "$SERVER/24" dev "$TAPDEV"
ip netns exec "$NS" ip link set "$TAPDEV" up

if [ "$MODE" = proxydhcp ]; then
	need busybox
	cat >"$DIR/udhcpd.conf" <<-CONF
	start 10.42.0.100
	end 10.42.0.150
	interface $TAPDEV
	max_leases 16
	lease_file $DIR/udhcpd.leases
	pidfile $DIR/udhcpd.pid
	option subnet 255.255.255.0
	option router $SERVER
	CONF
	touch "$DIR/udhcpd.leases"
	ip netns exec "$NS" busybox udhcpd -f "$DIR/udhcpd.conf" >"$DIR/udhcpd.log" 2>&1 &
	UDHCPD_PID=$!
fi
ip netns exec "$NS" "$DIR/pxedemo" -mode "$MODE" -iface "$TAPDEV" -server-ip "$SERVER" \
	-kernel "$VMLINUZ" -initrd "$DIR/initrd-a.img" -macs "$MAC" -cmdline "$CMDLINE" \
	>"$DIR/pxedemo.log" 2>&1 &
DEMO_PID=$!
for _ in $(seq 50); do grep -q 'dhcp listening' "$DIR/pxedemo.log" && break; sleep 0.1; done
grep -q 'dhcp listening' "$DIR/pxedemo.log" || { cat "$DIR/pxedemo.log" >&2; die "pxedemo did not start"; }

log "QEMU -boot n (TCG, $MODE), console in $DIR/console.log"
start=$(date +%s.%N)
ip netns exec "$NS" timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m 512 \
	-nographic -no-reboot -boot n \
	-netdev "tap,id=n0,ifname=$TAPDEV,script=no,downscript=no" \
	-device "virtio-net-pci,netdev=n0,mac=$MAC" >"$DIR/console.log" 2>&1 &
QEMU_PID=$!

marker="Command line:.*ferry.token=$TOKEN"
ok=
for _ in $(seq $((TIMEOUT * 5))); do
	if grep -aq "$marker" "$DIR/console.log"; then ok=1; break; fi
	kill -0 "$QEMU_PID" 2>/dev/null || break
	sleep 0.2
done
end=$(date +%s.%N)
if [ -z "$ok" ]; then
	tail -c 3000 "$DIR/console.log" | tr -d '\033' >&2
	tail -20 "$DIR/pxedemo.log" >&2
	die "guest kernel never printed its command line with the bootstrap parameters"
fi
grep -a "Command line:" "$DIR/console.log" | head -1 | tr -d '\r' >&2
for what in 'dhcp answered.*file=http' 'script served' 'file served.*file=kernel' 'file served.*file=initrd'; do
	grep -q "$what" "$DIR/pxedemo.log" || die "pxedemo log lacks '$what'"
done
if [ "$MODE" = proxydhcp ]; then
	# the address came from the network's DHCP server, never from ferry
	grep -q 'sending ACK' "$DIR/udhcpd.log" || die "udhcpd handed out no address"
	! grep 'dhcp answered' "$DIR/pxedemo.log" | grep -vq 'yiaddr=0.0.0.0' || die "ProxyDHCP handed out an address"
fi
printf 'pxe-test: ok (%s): PXE -> iPXE script -> kernel with bootstrap parameters in %.1f s\n' "$MODE" "$(echo "$end - $start" | bc)"
rm -rf "$DIR"
