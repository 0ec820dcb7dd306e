#!/usr/bin/env bash
# scripts/ipsec-guest.sh FERRY — kernel ESP in a QEMU guest (issue 3).
# Boots the cached Debian kernel with a busybox initramfs whose
# /init-test (scripts/ipsec-guest/guest-init.sh) runs
# `ferry vpn up --dataplane kernel` (XFRM states and policies, espinudp)
# against a peer on the host side of a tap, in netns ferry-ipsec-lab:
#   1. `ferry gateway` (user-space ESP over TUN), inner address 10.34.12.1
#   2. strongSwan charon (kernel-libipsec), inner address 10.34.13.1
# For each peer the guest pings the inner address and fetches a 20 MB file
# from busybox httpd bound to it, checking the sha256. One summary line per
# peer (`ipsec-guest: peer NAME PASS|FAIL ...`); exits non-zero on failure.
#   FERRY_ACCEL              QEMU accelerator (default tcg,thread=multi)
#   FERRY_IPSEC_VM_TIMEOUT   seconds per guest boot (default 300)
#   FERRY_IPSEC_PEERS        peers to run (default "gateway strongswan")
#   FERRY_IPSEC_MB           size of the transferred file (default 20)
# The guest also runs ipsec/xfrm's tests (go test -c) on its ESP kernel:
# summary line `peer NAME ... xfrm-tests PASS|FAIL`.
# Work dir and logs: build/ipsec-guest/ (console-PEER.log, gateway.log,
# swan/charon.log, result.txt). Needs root, scripts/ci-deps.sh, the kernel
# cache (scripts/fetch-kernel.sh runs when it is missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
FERRY_LAB_DIR=${FERRY_IPSEC_DIR:-$here/../build/ipsec-guest}
FERRY_NETNS=ferry-ipsec-lab
. "$here/lib.sh"
W=$LAB
NS=$NETNS
TAPDEV=fipsec0
HOST=10.34.0.1 GUEST=10.34.0.2
GW_SUBNET=10.34.12.0/24 GW_INNER=10.34.12.1 GW_POOL=10.34.201.0/24
SW_SUBNET=10.34.13.0/24 SW_INNER=10.34.13.1 SW_POOL=10.34.202.0/24
PORT=8080
# Loaded in this order (each after its dependencies). The crypto ones are
# what the kernel would otherwise ask /sbin/modprobe for (docs/LAB.md): drbg
# for seqiv's stdrng (its default is hmac(sha512)), seeded by
# jitterentropy_rng, which needs sha3.
MODULES="virtio_pci virtio_net veth esp4 xfrm_user xfrm_interface sha512_generic sha3_generic jitterentropy_rng drbg
	gcm ctr ghash_generic ghash_clmulni_intel aesni_intel seqiv echainiv"

FERRY=$(realpath "${1:-$here/../ferry}")
[ -x "$FERRY" ] || die "usage: $0 FERRY (the static ferry binary; make build)"
[ "$(id -u)" = 0 ] || die "needs root (netns, tap, QEMU)"
need qemu-system-x86_64 timeout ip busybox pki depmod modprobe sha256sum
[ -r "$KERNEL_ENV" ] || "$here/fetch-kernel.sh"
load_kernel_env

say() { echo "ipsec-guest: $*"; }
mkdir -p "$W/logs"
LOGS=$W/logs
: >"$W/result.txt"

# --- keys and certificates: a lab CA (strongSwan pki), keys from ferry keygen
make_pki() {
	local d=$W/pki
	rm -rf "$d" && mkdir -p "$d"
	exec 3>&2 2>"$d/pki.log" # pki reports every plugin it lacks
	pki --gen --type ecdsa --size 256 >"$d/ca.key"
	pki --self --ca --in "$d/ca.key" --dn "CN=ferry ipsec-guest CA" --outform pem >"$d/ca.pem"
	local cn
	for cn in gateway lease-guest; do
		"$FERRY" keygen --cn "$cn" --key "$d/$cn.key" --allow-disk --csr "$d/$cn.csr" 2>"$d/$cn.log"
		pki --issue --type pkcs10 --in "$d/$cn.csr" --cacert "$d/ca.pem" --cakey "$d/ca.key" --outform pem >"$d/$cn.pem"
	done
	# strongSwan loads its own key format: a pki key for its certificate.
	pki --gen --type ecdsa --size 256 >"$d/swan.key"
	pki --req --in "$d/swan.key" --dn "CN=swan-gateway" --outform pem >"$d/swan.csr"
	pki --issue --type pkcs10 --in "$d/swan.csr" --cacert "$d/ca.pem" --cakey "$d/ca.key" --outform pem >"$d/swan.pem"
	exec 2>&3 3>&-
	PIN=$(grep -o 'pin=[0-9a-f]*' "$d/lease-guest.log" | cut -d= -f2)
	[ -n "$PIN" ] || die "ferry keygen printed no pin (see $d/lease-guest.log)"
	echo "{\"pin\":\"$PIN\",\"lease\":\"lease-guest\"}" >"$d/allow.jsonl"
}

# --- the file served through the tunnel
make_blob() {
	mkdir -p "$W/www"
	head -c "$((${FERRY_IPSEC_MB:-20} << 20))" /dev/urandom >"$W/www/blob"
	BLOB_SHA=$(sha256sum <"$W/www/blob" | cut -d' ' -f1)
}

# --- the guest initramfs
# Modules: ferry resolves the .modinfo dependencies; kmod's depmod and
# modprobe --show-depends on the unpacked copy give the load order.
stage_modules() {
	local m want=() ko
	for m in $MODULES; do
		ko=$(find "$MODDIR" \( -name "$m.ko*" -o -name "${m//_/-}.ko*" \) -print -quit)
		if [ -n "$ko" ]; then want+=(--module "$m"); else log "module $m not in $KVER: skipped"; fi
	done
	rm -rf "$W/root" && mkdir -p "$W/root"
	"$FERRY" initrd build -o "$W/modules.img" --kernel-modules "$MODDIR" "${want[@]}" >/dev/null
	"$FERRY" initrd extract "$W/modules.img" "$W/root" >/dev/null
	rm -rf "$W/root/bin" "$W/root/init"
	depmod -b "$W/root" "$KVER" 2>/dev/null # no modules.order/builtin in a partial tree
	mkdir -p "$W/root/etc/ipsec-guest"
	for m in $MODULES; do
		modprobe -d "$W/root" -S "$KVER" --show-depends "$m" 2>/dev/null || true
	done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | sed "s|^$W/root||" >"$W/root/etc/ipsec-guest/modules.order"
	[ -s "$W/root/etc/ipsec-guest/modules.order" ] || die "no module load order (depmod/modprobe on $W/root)"
}

# iproute2's ip with its libraries, run through the loader: `ip xfrm` to
# read back what ferry put into the kernel (busybox ip has no xfrm).
stage_iproute() {
	local d=$W/root/opt/iproute2 ipbin lib
	mkdir -p "$d"
	ipbin=$(readlink -f "$(command -v ip)")
	cp "$ipbin" "$d/ip"
	for lib in $(ldd "$ipbin" | grep -o '/[^ ]*'); do cp -L "$lib" "$d/"; done
}

# The ipsec/xfrm package's tests, to run where the kernel has ESP (they
# skip their kernel cases on this host).
stage_gotest() {
	(cd "$here/.." && CGO_ENABLED=0 go test -c -o "$W/root/opt/xfrm.test" ./ipsec/xfrm) ||
		die "go test -c ./ipsec/xfrm failed"
}

build_initrd() {
	stage_modules
	stage_iproute
	stage_gotest
	cp "$W/pki/ca.pem" "$W/pki/lease-guest.pem" "$W/root/etc/ipsec-guest/"
	mv "$W/root/etc/ipsec-guest/lease-guest.pem" "$W/root/etc/ipsec-guest/lease.pem"
	install -m 0600 "$W/pki/lease-guest.key" "$W/root/etc/ipsec-guest/lease.key"
	"$FERRY" initrd build -o "$W/guest.img" --add "$W/root/lib:/lib" --add "$W/root/etc:/etc" \
		--add "$W/root/opt:/opt" --add "$(readlink -f "$(command -v busybox)"):/bin/busybox" \
		--add "$here/ipsec-guest/guest-init.sh:/init-test" >/dev/null
	log "guest initramfs $W/guest.img: $(du -h "$W/guest.img" | cut -f1), $(wc -l <"$W/root/etc/ipsec-guest/modules.order") modules"
}

# --- host side: netns, tap, peers
lab_up() {
	lab_down
	ip netns add "$NS"
	in_ns ip link set lo up
	in_ns ip tuntap add dev "$TAPDEV" mode tap
	in_ns ip addr add "$HOST/24" dev "$TAPDEV"
	in_ns ip link set "$TAPDEV" up
}

lab_down() {
	local f
	for f in "$PIDS"/*.pid; do [ -e "$f" ] && kill_pidfile "$f"; done
	[ -f "$W/swan/charon.pid" ] && "$here/strongswan/charon.sh" stop "$W/swan"
	ip netns del "$NS" 2>/dev/null || true
}

mkdir -p "$PIDS"
cleanup() { lab_down; }
trap cleanup EXIT

# daemon NAME CMD...: CMD in the netns, in the background, log in
# $LOGS/NAME.log. The pid file is written from inside: `ip netns exec`
# forks, so $! would be ip, and killing it would orphan CMD.
daemon() {
	local name=$1
	shift
	ip netns exec "$NS" sh -c 'echo $$ >"$0" && exec "$@"' "$PIDS/$name.pid" "$@" >"$LOGS/$name.log" 2>&1 &
	local i
	for ((i = 0; i < 20; i++)); do [ -s "$PIDS/$name.pid" ] && return 0; sleep 0.05; done
	die "$name did not start"
}

serve_file() { # inner address
	local i
	for ((i = 0; i < 50; i++)); do in_ns ip -o addr | grep -q " $1/" && break; sleep 0.1; done
	daemon httpd busybox httpd -f -p "$1:$PORT" -h "$W/www"
	wait_port 5 "$PORT" || die "httpd on $1:$PORT did not listen"
}

start_gateway() {
	cat >"$W/gateway.json" <<JSON
{"listen": "$HOST", "ca": "$W/pki/ca.pem", "cert": "$W/pki/gateway.pem", "key": "$W/pki/gateway.key",
 "pool": "$GW_POOL", "subnets": ["$GW_SUBNET"], "inner": "$GW_INNER/32",
 "allow": "$W/pki/allow.jsonl", "status": "$W/gateway.sock", "tun": "fipsecgw0"}
JSON
	daemon gateway "$FERRY" gateway --config "$W/gateway.json"
	serve_file "$GW_INNER"
}

start_strongswan() {
	local d=$W/swan
	rm -rf "$d" && mkdir -p "$d/x509" "$d/x509ca" "$d/private"
	cp "$W/pki/swan.pem" "$d/x509/gw.pem"
	cp "$W/pki/ca.pem" "$d/x509ca/ca.pem"
	install -m 0600 "$W/pki/swan.key" "$d/private/gw.key"
	sed -e "s|@HOST@|$HOST|; s|@SUBNET@|$SW_SUBNET|; s|@POOL@|$SW_POOL|" \
		"$here/ipsec-guest/swanctl.conf.in" >"$d/swanctl.conf"
	in_ns ip addr add "$SW_INNER/32" dev lo
	"$here/strongswan/charon.sh" start "$NS" "$d" "$d/swanctl.conf" >"$LOGS/swanctl.log" 2>&1 ||
		die "charon did not start: $(cat "$LOGS/swanctl.log")"
	serve_file "$SW_INNER"
}

stop_peer() {
	kill_pidfile "$PIDS/httpd.pid"
	kill_pidfile "$PIDS/gateway.pid"
	[ -f "$W/swan/charon.pid" ] && "$here/strongswan/charon.sh" stop "$W/swan"
	in_ns ip addr del "$SW_INNER/32" dev lo 2>/dev/null || true
}

boot_guest() { # peer subnet target -> console log $LOGS/console-PEER.log
	local peer=$1 console=$LOGS/console-$1.log
	local append="console=ttyS0 quiet panic=-1 rdinit=/init-test ipsec.peer=$peer ipsec.addr=$GUEST ipsec.gw=$HOST"
	append+=" ipsec.subnet=$2 ipsec.target=$3 ipsec.port=$PORT ipsec.sha256=$BLOB_SHA"
	: >"$console"
	set +e
	in_ns timeout --kill-after=10 "${FERRY_IPSEC_VM_TIMEOUT:-300}" qemu-system-x86_64 \
		-name "ferry-ipsec-$peer" -accel "${FERRY_ACCEL:-tcg,thread=multi}" -cpu max -m 512 -smp 2 \
		-display none -vga none -monitor none -no-reboot \
		-chardev "file,id=con0,path=$console" -serial chardev:con0 \
		-kernel "$VMLINUZ" -initrd "$W/guest.img" -append "$append" \
		-netdev "tap,id=n0,ifname=$TAPDEV,script=no,downscript=no" \
		-device virtio-net-pci,netdev=n0 </dev/null >"$LOGS/qemu-$peer.log" 2>&1
	local rc=$?
	set -e
	case $rc in 0) ;; 124 | 137) echo "VM timed out after ${FERRY_IPSEC_VM_TIMEOUT:-300} s" ;; *) echo "QEMU exited $rc" ;; esac
}

# verdict PEER QEMU_PROBLEM: one summary line from the console markers.
verdict() {
	local peer=$1 problem=$2 c=$LOGS/console-$1.log up xfer mbs win enc
	val() { grep -a "^ipsec-guest: $1 " "$c" | tail -1 | tr -d '\r' | cut -d' ' -f3; }
	up=$(val tunnel-up-ms) xfer=$(val transfer-ms) win=$(val replay-window) enc=$(val espinudp-states)
	mbs=-
	[ -n "$xfer" ] && [ "$xfer" -gt 0 ] && mbs=$(awk -v b="$((${FERRY_IPSEC_MB:-20} << 20))" -v t="$xfer" 'BEGIN { printf "%.1f", b / 1048576 / (t / 1000) }')
	local gt
	gt=$(val xfrm-tests)
	local line="peer $peer tunnel-up ${up:--}ms transfer ${FERRY_IPSEC_MB:-20}MB ${xfer:--}ms ($mbs MB/s) replay-window ${win:--} espinudp-states ${enc:--} xfrm-tests ${gt:--}"
	if grep -aq '^ipsec-guest: PASS' "$c"; then
		say "$line PASS" | tee -a "$W/result.txt"
		return 0
	fi
	local why
	why=$(grep -a '^ipsec-guest: FAIL' "$c" | head -1 | cut -d' ' -f3-)
	say "$line FAIL ${why:-${problem:-no PASS marker}} (console: $c)" | tee -a "$W/result.txt"
	return 1
}

run_peer() { # peer
	local problem rc=0
	case $1 in
	gateway) start_gateway && problem=$(boot_guest gateway "$GW_SUBNET" "$GW_INNER") ;;
	strongswan) start_strongswan && problem=$(boot_guest strongswan "$SW_SUBNET" "$SW_INNER") ;;
	*) die "unknown peer $1 (gateway, strongswan)" ;;
	esac
	verdict "$1" "$problem" || rc=1
	stop_peer
	return $rc
}

make_pki
make_blob
build_initrd
lab_up
status=0
for peer in ${FERRY_IPSEC_PEERS:-gateway strongswan}; do
	run_peer "$peer" || status=1
done
[ $status = 0 ] && say "PASS" || say "FAIL (details: $W/logs)"
exit $status
