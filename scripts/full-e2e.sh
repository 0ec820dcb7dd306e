#!/usr/bin/env bash
# scripts/full-e2e.sh — the whole transfer, docs/ARCHITECTURE.md steps 1-14, with
# the real managers, the real gateway and a QEMU lent server.
#
#   lender net 10.50.0.0/24   ns ferry-full-L-PID: `ferry lender serve`
#                             (netboot DHCP mode on a bridge holding the
#                             guest's tap, agent API, CA, CRL); QEMU started
#                             paused, powered on by the lender over QMP.
#                             It routes the lent server to the WAN.
#   WAN        10.51.0.0/24   ns ferry-full-W-PID: a bridge between the two
#                             organisations; tcpdump listens here.
#   borrower   10.52.0.0/24   ns ferry-full-B-PID: `ferry gateway` on
#                             10.51.0.2 (allow list written by the borrower
#                             manager, virtual IPs from 10.52.8.0/24),
#                             `ferry borrower serve` (image B from the
#                             catalogue on https://10.52.0.1:9444, roots
#                             prepared by rootprep), nfs-ganesha on
#                             10.52.0.1: each root exported to its
#                             server's tunnel address alone (the
#                             borrower's generated include), and a stray
#                             root exported to another address.
#
# A borrower lease request drives everything: the lender powers the guest
# on, it PXE-boots image A, enrolls, opens the tunnel, fetches image B
# through it, kexecs; B's keeper re-opens the tunnel, the root is mounted
# through it, switch_root. Then the checks, `ferry borrower lease return`,
# and the timeline.
#
# Passes when every phase is ok on the console and in `ferry borrower lease
# show`; the root's own checks pass (among them: it can mount its own root
# again but not the stray root, and sees no other root under /srv/roots); the keeper answers through the tunnel
# after the switch with the tunnel up; every WAN packet of the lent server
# is IKE or ESP (UDP 500/4500) and no NFS or image traffic crosses in clear;
# the lent server's disk is byte-identical; at `lease return` the borrower
# asks the keeper (HTTPS, client certificate) to shut the server down and
# the guest powers off by itself (QMP quit only as a failing fallback), the
# lease shows the clean shutdown, and the lender's CRL lists the one-time
# certificate.
#
# usage: scripts/full-e2e.sh [FERRY]   (root; FERRY defaults to ./ferry)
# env:   FERRY_FULL_TIMEOUT (guest seconds, default 600), FERRY_ACCEL,
#        FERRY_FULL_KEEP=1 keeps the work dir after a pass, FERRY_STREAM=1
#        shows the console as it runs, FERRY_FULL_HOLD=SECONDS keeps the lab
#        up that long after a failure, FERRY_DATAPLANE=auto|kernel|user
#        (default auto, which must pick kernel) the ESP data plane: ferry.dataplane= on A's
#        command line, carried to B's keeper; the run asserts that plane
set -euo pipefail
FERRY_LAB_DIR=${FERRY_LAB_DIR:-$(cd "$(dirname "$0")/.." && pwd)/build/full-lab}
export FERRY_LAB_DIR
. "$(dirname "$0")/lib.sh"

FERRY=$(readlink -f "${1:-$FERRY_REPO/ferry}")
TIMEOUT=${FERRY_FULL_TIMEOUT:-600}
DATAPLANE=${FERRY_DATAPLANE:-auto}
case $DATAPLANE in auto | kernel) WANT_PLANE=kernel ;; user) WANT_PLANE=user ;; *) die "FERRY_DATAPLANE=$DATAPLANE: want auto, kernel or user" ;; esac
if [ -z "${FERRY_FULL_DEADLINE:-}" ]; then
	FERRY_FULL_DEADLINE=$((TIMEOUT + 240)) exec timeout "$((TIMEOUT + 240))" bash "$0" "$@"
fi

LNS=ferry-full-L-$$ WNS=ferry-full-W-$$ BNS=ferry-full-B-$$
LENDER=10.50.0.1 SERVER_IP= # the lent server: from the lender's DHCP pool, read off its console
LENDER_WAN=10.51.0.1 GATEWAY=10.51.0.2
BORROWER=10.52.0.1 POOL=10.52.8.0/24
STRAY_CLIENT=10.52.8.250 # a tunnel address the borrower gives no server of this run
MAC=52:54:00:50:00:10
DIR=$LAB/run-$$
PKI=$DIR/pki LDIR=$DIR/lender BDIR=$DIR/borrower

need ip qemu-system-x86_64 timeout openssl busybox ganesha.nfsd tcpdump unshare
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, tap)"
[ -x "$FERRY" ] || die "no ferry binary at $FERRY: run make build"

PIDS_TO_END=()
PASSED=
# cleanup ends everything the run started (SIGKILL after 5 s), ganesha
# from its pid file before the work dir goes, then the namespaces; the work
# dir is removed only after a pass (and not with FERRY_FULL_KEEP).
cleanup() {
	local p pids=("${PIDS_TO_END[@]}")
	[ -s "$DIR/ganesha.pid" ] && pids+=("$(cat "$DIR/ganesha.pid")")
	end_pids "${pids[@]}"
	wait 2>/dev/null || true
	for p in "$LNS" "$WNS" "$BNS"; do ip netns del "$p" 2>/dev/null || true; done
	[ -n "$PASSED" ] && [ -z "${FERRY_FULL_KEEP:-}" ] && rm -rf "$DIR"
	return 0
}
trap cleanup EXIT
trap 'die "stopped by a signal (deadline ${FERRY_FULL_DEADLINE} s?)"' TERM INT
bg() { "$@" & PIDS_TO_END+=($!); }
inL() { ip netns exec "$LNS" "$@"; }
inB() { ip netns exec "$BNS" "$@"; }
fail() {
	local f
	for f in lender borrower gateway ganesha-out; do
		[ -s "$DIR/$f.log" ] && { echo "--- $f.log (tail)" >&2; tail -12 "$DIR/$f.log" >&2; }
	done
	[ -s "$DIR/console.log" ] && { echo "--- console (tail)" >&2; tail -c 3000 "$DIR/console.log" | tr -d '\033' >&2; }
	[ -n "${FERRY_FULL_HOLD:-}" ] && { log "holding the lab for debugging (FERRY_FULL_HOLD): $*"; sleep "$FERRY_FULL_HOLD"; }
	die "$* (files in $DIR)"
}
# wait_log SECONDS FILE PATTERN
wait_log() {
	local i
	for ((i = 0; i < $1 * 5; i++)); do grep -aq -- "$3" "$2" 2>/dev/null && return 0; sleep 0.2; done
	return 1
}
stamp() { date +%s.%N; }

# make_certs: each organisation's CA (openssl, P-256) and its leaves:
# lender-m2m (server, on the WAN), borrower-m2m (client), borrower-keeper
# (client: asks keepers to shut their servers down at return), borrower-images
# (server, borrower LAN), gateway (IKE, signed by the borrower CA that the
# lent server receives at enrollment).
make_certs() {
	local org name ku ip
	mkdir -p "$PKI"
	for org in lender-org borrower-org; do
		(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
			-subj "/CN=$org" -keyout "$PKI/$org-ca.key" -out "$PKI/$org-ca.pem" \
			-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign) 2>/dev/null
	done
	for name in lender-m2m:lender-org:server:$LENDER_WAN borrower-m2m:borrower-org:client: borrower-keeper:borrower-org:client: \
		borrower-images:borrower-org:server:$BORROWER gateway:borrower-org::$GATEWAY; do
		IFS=: read -r name org ku ip <<<"$name"
		(umask 077 && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-subj "/CN=$name" -keyout "$PKI/$name.key" -out "$PKI/$name.csr") 2>/dev/null
		{
			echo "keyUsage=critical,digitalSignature"
			[ -n "$ku" ] && echo "extendedKeyUsage=${ku}Auth"
			[ -n "$ip" ] && echo "subjectAltName=IP:$ip"
		} >"$PKI/$name.ext"
		openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$org-ca.pem" -CAkey "$PKI/$org-ca.key" -CAcreateserial \
			-days 2 -extfile "$PKI/$name.ext" -out "$PKI/$name.pem" 2>/dev/null
	done
}

# topology: the three namespaces, the WAN bridge, the guest's tap.
topology() {
	local n
	for n in "$LNS" "$WNS" "$BNS"; do ip netns add "$n"; ip -n "$n" link set lo up; done
	ip -n "$WNS" link add wan type bridge && ip -n "$WNS" link set wan up
	ip link add lw0 netns "$LNS" type veth peer name wl0 netns "$WNS"
	ip link add bw0 netns "$BNS" type veth peer name wb0 netns "$WNS"
	for n in wl0 wb0; do ip -n "$WNS" link set "$n" master wan up; done
	ip -n "$LNS" addr add "$LENDER_WAN/24" dev lw0 && ip -n "$LNS" link set lw0 up
	ip -n "$BNS" addr add "$GATEWAY/24" dev bw0 && ip -n "$BNS" link set bw0 up
	# Lender net: a bridge with the guest's tap; the lender routes its
	# servers to the WAN, the borrower routes back to them.
	ip -n "$LNS" link add lan type bridge
	ip -n "$LNS" tuntap add dev tap0 mode tap
	ip -n "$LNS" link set tap0 master lan up
	ip -n "$LNS" addr add "$LENDER/24" dev lan && ip -n "$LNS" link set lan up
	inL sysctl -qw net.ipv4.ip_forward=1
	ip -n "$BNS" route add 10.50.0.0/24 via "$LENDER_WAN"
	# Borrower LAN: its services' address (image server, NFS).
	ip -n "$BNS" link add lan type bridge
	ip -n "$BNS" addr add "$BORROWER/24" dev lan && ip -n "$BNS" link set lan up
}

start_ganesha() {
	mkdir -p "$BDIR/roots" "$DIR/ganesha-recov" "$DIR/stray-root"
	echo "another lent server's root" >"$DIR/stray-root/SECRET"
	echo "# written by ferry borrower" >"$DIR/ferry-exports.conf"
	cat >"$DIR/ganesha.conf" <<-CONF
	NFS_CORE_PARAM { Protocols = 4; Bind_addr = $BORROWER; NFS_Port = 2049; Enable_NLM = false;
	                 Enable_RQUOTA = false; Enable_UDP = false; }
	NFSV4 { Graceless = true; Allow_Numeric_Owners = true; Only_Numeric_Owners = true;
	        RecoveryBackend = fs; RecoveryRoot = $DIR/ganesha-recov; }
	# A root the lent server must fail to mount: another lent server's,
	# exported to that server's tunnel address alone, as the borrower does.
	EXPORT { Export_Id = 1; Path = $DIR/stray-root; Pseudo = /srv/roots/stray; Access_Type = None;
	         Squash = Root_Squash; SecType = sys; Protocols = 4; Transports = TCP; FSAL { Name = VFS; }
	         CLIENT { Clients = $STRAY_CLIENT; Access_Type = RW; Squash = No_Root_Squash; } }
	# The borrower's exports, one per lent server (nfs_exports ganesha).
	%include "$DIR/ferry-exports.conf"
	LOG { Default_Log_Level = WARN; }
	CONF
	inB unshare -m --propagation private sh -c 'mount -t tmpfs none /run && mount -t tmpfs none /var/lib/nfs &&
		mkdir -p /run/ganesha /var/lib/nfs/ganesha && exec ganesha.nfsd -f "$1" -L "$2" -p "$3" -N NIV_WARN' \
		sh "$DIR/ganesha.conf" "$DIR/ganesha.log" "$DIR/ganesha.pid" >"$DIR/ganesha-out.log" 2>&1 ||
		fail "ganesha did not start"
	for _ in $(seq 100); do inB ss -Hltn "sport = :2049" | grep -q . && return 0; sleep 0.2; done
	fail "ganesha does not listen on $BORROWER:2049"
}

start_lender() {
	local ca
	ca=$("$FERRY" lender init --dir "$LDIR" --config "$LDIR/lender-init.json" --host "$LENDER" | awk '$1 == "ca_sha256" {print $2}')
	[ -n "$ca" ] || fail "lender init printed no ca_sha256"
	# No ip= in cmdline: the lender adds ip=dhcp, A asks the lender's DHCP
	# server (pool 10.50.0.100-150, router = the lender) and B keeps A's
	# address.
	cat >"$DIR/lender.json" <<-JSON
	{"dir": "$LDIR", "agent_listen": "$LENDER:8443", "public_url": "https://$LENDER:8443",
	 "m2m_listen": "$LENDER_WAN:9443", "m2m_cert": "$PKI/lender-m2m.pem", "m2m_key": "$PKI/lender-m2m.key",
	 "m2m_client_ca": "$PKI/borrower-org-ca.pem", "token_ttl": "10m",
	 "netboot": {"interface": "lan", "server_ip": "$LENDER", "mode": "dhcp",
	             "pool_first": "10.50.0.100", "pool_last": "10.50.0.150", "prefix": "10.50.0.0/24", "router": "$LENDER",
	             "http_addr": "$LENDER:8080", "kernel_a": "$VMLINUZ", "initrd_a": "$DIR/initrd-a.img",
	             "cmdline": "console=ttyS0 quiet ferry.dataplane=$DATAPLANE"}}
	JSON
	bg ip netns exec "$LNS" "$FERRY" lender serve --config "$DIR/lender.json" >"$DIR/lender.log" 2>&1
	wait_log 20 "$DIR/lender.log" 'dhcp listening' || fail "lender did not start serving DHCP"
	"$FERRY" lender server add --dir "$LDIR" --mac "$MAC" --power qmp \
		--power-opt "socket=$DIR/qmp.sock" --power-opt off=quit >/dev/null
}

start_borrower_side() {
	: >"$DIR/allow.jsonl"
	cat >"$DIR/gateway.json" <<-JSON
	{"listen": "$GATEWAY", "ca": "$LDIR/ca.pem", "cert": "$PKI/gateway.pem", "key": "$PKI/gateway.key",
	 "pool": "$POOL", "subnets": ["10.52.0.0/24"], "inner": "10.52.0.254/32",
	 "allow": "$DIR/allow.jsonl", "status": "$DIR/gateway.sock", "crl": "$DIR/lender.crl"}
	JSON
	bg ip netns exec "$BNS" "$FERRY" gateway --config "$DIR/gateway.json" >"$DIR/gateway.log" 2>&1
	for _ in $(seq 50); do [ -S "$DIR/gateway.sock" ] && break; sleep 0.2; done
	[ -S "$DIR/gateway.sock" ] || fail "ferry gateway made no status socket"
	start_ganesha
	cat >"$DIR/borrower.json" <<-JSON
	{"dir": "$BDIR", "lender_url": "https://$LENDER_WAN:9443",
	 "m2m_cert": "$PKI/borrower-m2m.pem", "m2m_key": "$PKI/borrower-m2m.key", "m2m_ca": "$PKI/lender-org-ca.pem",
	 "borrower_ca": "$PKI/borrower-org-ca.pem", "gateway": "$GATEWAY:500", "allow_file": "$DIR/allow.jsonl", "gateway_status": "$DIR/gateway.sock",
	 "gateway_crl_file": "$DIR/lender.crl",
	 "image_listen": "$BORROWER:9444", "image_url": "https://$BORROWER:9444",
	 "image_cert": "$PKI/borrower-images.pem", "image_key": "$PKI/borrower-images.key",
	 "tunnel_pool": "$POOL", "nfs_server": "$BORROWER", "nfs_export": "/srv/roots",
	 "nfs_exports": "ganesha", "ganesha_exports_file": "$DIR/ferry-exports.conf", "ganesha_pid_file": "$DIR/ganesha.pid",
	 "keeper_client_cert": "$PKI/borrower-keeper.pem", "keeper_client_key": "$PKI/borrower-keeper.key",
	 "default_template": "$EXPORT", "poll_seconds": 1}
	JSON
	"$FERRY" borrower image add --dir "$BDIR" b1 --kernel "$WWW/vmlinuz-b" --initrd "$WWW/initrd-b.img" \
		--cmdline "console=ttyS0 quiet nfs.nfs4_unique_id=ferry-full-$$" >"$DIR/image-add.log" 2>&1 ||
		fail "borrower image add: $(cat "$DIR/image-add.log")"
	bg ip netns exec "$BNS" "$FERRY" borrower serve --config "$DIR/borrower.json" >"$DIR/borrower.log" 2>&1
	for _ in $(seq 50); do "$FERRY" borrower lease list --dir "$BDIR" >/dev/null 2>&1 && return 0; sleep 0.2; done
	fail "borrower manager did not start"
}

# qmp_quit ends QEMU over QMP (the return's fallback only).
qmp_quit() {
	python3 - "$DIR/qmp.sock" <<-'PY' || kill "$QEMU_PID" 2>/dev/null || true
	import socket, sys
	s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1]); f = s.makefile("rw")
	f.readline(); f.write('{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n'); f.flush(); f.readline()
	PY
}

start_guest() {
	cp "$LAB/disk.raw" "$DIR/disk.raw"
	sha256sum <"$DIR/disk.raw" | cut -d' ' -f1 >"$DIR/disk.sha256.before"
	local chardev="file,id=con0,path=$DIR/console.log"
	[ "${FERRY_STREAM:-0}" = 1 ] && chardev="stdio,id=con0,signal=off,logfile=$DIR/console.log"
	: >"$DIR/console.log"
	bg ip netns exec "$LNS" timeout "$TIMEOUT" qemu-system-x86_64 -name ferry-lent-server \
		-accel "${FERRY_ACCEL:-tcg,thread=multi}" -cpu max -m 1024 -smp 2 \
		-display none -vga none -monitor none -no-reboot -boot n -S \
		-qmp "unix:$DIR/qmp.sock,server=on,wait=off" -chardev "$chardev" -serial chardev:con0 \
		-netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device "virtio-net-pci,netdev=n0,mac=$MAC" \
		-drive "file=$DIR/disk.raw,format=raw,if=virtio" </dev/null
	QEMU_PID=$!
	for _ in $(seq 50); do [ -S "$DIR/qmp.sock" ] && return 0; sleep 0.1; done
	fail "QEMU made no QMP socket"
}

# leaks counts, in both captures, the lent server's packets that are not
# IKE/ESP and everything of the borrower's networks (10.52.0.0/16: its LAN
# and the tunnel pool) that is not inside ESP. Only packets the lent server
# sent count ("src"): the gateway's ICMP errors towards it are the
# gateway's. On the lender LAN the server may also speak DHCP, TFTP and
# HTTP(S) to the lender itself (netboot, enrollment, phase reports).
# Sets ESP_PKTS; prints each leak; fails when there is one.
leaks() {
	local wan lan borrower_wan borrower_lan
	wan=$(tcpdump -n -r "$DIR/wan.pcap" "src host $SERVER_IP and not (udp port 500 or udp port 4500)" 2>/dev/null)
	borrower_wan=$(tcpdump -n -r "$DIR/wan.pcap" "src net 10.52.0.0/16 and dst host $SERVER_IP and not (udp port 500 or udp port 4500)" 2>/dev/null)
	lan=$(tcpdump -n -r "$DIR/lan.pcap" "src host $SERVER_IP and not dst host $LENDER and not (udp port 500 or udp port 4500) and not (udp port 67 or udp port 68) and not arp" 2>/dev/null)
	borrower_lan=$(tcpdump -n -r "$DIR/lan.pcap" "net 10.52.0.0/16 and not (udp port 500 or udp port 4500)" 2>/dev/null)
	ESP_PKTS=$(tcpdump -n -r "$DIR/wan.pcap" "src host $SERVER_IP and udp port 4500" 2>/dev/null | wc -l)
	LEAKS_WAN=$(printf '%s\n%s' "$wan" "$borrower_wan" | grep -c . || true)
	LEAKS_LAN=$(printf '%s\n%s' "$lan" "$borrower_lan" | grep -c . || true)
	[ "$LEAKS_WAN" = 0 ] && [ "$LEAKS_LAN" = 0 ] && [ "$ESP_PKTS" -gt 0 ] && return 0
	log "in clear on the WAN: $LEAKS_WAN, on the lender LAN: $LEAKS_LAN; ESP-in-UDP from the server: $ESP_PKTS"
	printf '%s\n%s\n%s\n%s\n' "$wan" "$borrower_wan" "$lan" "$borrower_lan" | grep . | head -20 >&2
	return 1
}

# ------------------------------------------------------------------ build
T0=$(stamp)
[ -r "$KERNEL_ENV" ] || "$FERRY_REPO/scripts/fetch-kernel.sh" >/dev/null
load_kernel_env
log "images: image B, the busybox root, the disk (build-images.sh into $LAB)"
"$FERRY_REPO/scripts/build-images.sh" "$FERRY" >"$LAB/build.log" 2>&1 || die "build-images.sh failed (see $LAB/build.log)"
write_variant 4.1
# What the root must fail to read (root-init.sh check_foreign): the stray
# root of another lent server, and the directory above every root.
printf 'foreign_root=%s\nroots_parent=%s\n' "$BORROWER:/srv/roots/stray" "$BORROWER:/srv/roots" >>"$ROOT_CONF"
mkdir -p "$DIR"
# Kernel ESP's modules (--esp: kmod.ESPModules, which the agent loads in
# the order drbg's self-test needs), tun for user-space ESP, the fallback,
# and tcp_diag, through which B's keeper resets a stalled NFS connection.
log "image A with kernel ESP's modules and tun (ferry.dataplane=$DATAPLANE)"
"$FERRY" initrd build -o "$DIR/initrd-a.img" --kernel-modules "$MODDIR" \
	--module virtio_net --module virtio_blk --module virtio_pci --module nfsv4 --module tun --module tcp_diag \
	--esp --compress zstd >/dev/null
make_certs

# ------------------------------------------------------------------ lab up
log "namespaces $LNS $WNS $BNS"
topology
# Two captures: the WAN, and the lender's own LAN, where a lent server's
# clear-text fallback (no SA, no policy) would show first.
bg ip netns exec "$WNS" tcpdump -i wan -n -U -w "$DIR/wan.pcap" 2>"$DIR/tcpdump.log"
bg ip netns exec "$LNS" tcpdump -i lan -n -U -w "$DIR/lan.pcap" 2>"$DIR/tcpdump-lan.log"
start_guest
start_lender
start_borrower_side
[ ! -s "$DIR/console.log" ] || fail "the guest printed before the lender powered it on"

# ------------------------------------------------------------------ transfer
log "borrower lease request (drives everything; console in $DIR/console.log)"
T_REQ=$(stamp)
out=$("$FERRY" borrower lease request --dir "$BDIR" --count 1 --image b1 --key "full-e2e-$$" 2>&1) ||
	fail "lease request failed: $out"
LEASE=$(sed -n 's/.*lease \(B[0-9a-f]*\).*/\1/p' <<<"$out" | head -1)
[ -n "$LEASE" ] || fail "lease request printed '$out', want a lease id"
wait_log "$TIMEOUT" "$DIR/console.log" 'ferry-root: ready' || fail "the borrower's root never said ready"
T_READY=$(stamp)

# ------------------------------------------------------------------ checks
log "checks"
# The console without CRs and escapes, in a file: grep -q on a pipe would
# end the writer with SIGPIPE, which pipefail reports as a failure.
tr -d '\r\033' <"$DIR/console.log" >"$DIR/console.txt"
con() { cat "$DIR/console.txt"; }
for p in boot-a modules disks-ro network enroll tunnel-a fetch-b patch-b kexec \
	boot-b state tunnel-b mount-root place-state keeper switch-root; do
	grep -aq "ferry: phase $p ok" "$DIR/console.txt" || fail "no 'phase $p ok' on the console"
done
grep -aq 'ferry: phase .* failed' "$DIR/console.txt" && fail "a phase failed: $(con | grep -a 'phase .* failed')"
grep -a 'ferry-root: check' "$DIR/console.txt" | grep FAIL >/dev/null && fail "the root's checks failed: $(con | grep -a 'check .* FAIL')"
VIP=$(con | grep -ao 'tunnel up gateway=[0-9.]* vip=[0-9.]* (keeper)' | sed 's/.*vip=\([0-9.]*\).*/\1/' | tail -1)
[ -n "$VIP" ] || fail "the keeper never reported the tunnel up"
# One export per lent server: its root to its tunnel address alone; the
# stray root and the parent of all roots refused to it.
for c in foreign-root roots-parent; do
	grep -aq "ferry-root: check $c ok" "$DIR/console.txt" || fail "check $c: $(con | grep -a "check $c" || echo 'not run')"
done
REFUSED=$(con | grep -a 'ferry-root: check foreign-root ok' | sed 's/.*check foreign-root ok //' | tail -1)
grep -q "Clients = $VIP;" "$DIR/ferry-exports.conf" || fail "the borrower's ganesha exports do not name $VIP: $(cat "$DIR/ferry-exports.conf")"
[ "$(grep -c 'EXPORT {' "$DIR/ferry-exports.conf")" = 1 ] || fail "the borrower's ganesha exports hold more than the one lent server: $(cat "$DIR/ferry-exports.conf")"
# A's address came from the lender's DHCP pool; B kept it (no second DHCP).
SERVER_IP=$(con | grep -ao 'ferry: address [0-9.]*/[0-9]* dev [^ ]* via [0-9.]* from dhcp server' | sed 's/ferry: address \([0-9.]*\)\/.*/\1/' | head -1)
case $SERVER_IP in 10.50.0.1[0-4][0-9] | 10.50.0.150) ;; *) fail "image A printed no address from the lender's DHCP pool (got '$SERVER_IP')" ;; esac
grep -aq "ferry: address $SERVER_IP/24 dev [^ ]* via $LENDER kept from A's dhcp lease" "$DIR/console.txt" ||
	fail "image B did not keep A's address $SERVER_IP: $(con | grep -a 'ferry: address')"
status=$(inB curl -sS -m 10 "http://$VIP:7070/status" 2>&1) ||
	fail "keeper status through the tunnel: $status; route: $(inB ip route get "$VIP" 2>&1)"
grep '"root_fstype":"nfs4"' >/dev/null <<<"$status" || fail "keeper status: root is not nfs4: $status"
grep -q '"up":true' <<<"$status" || fail "keeper status: tunnel not up: $status"
# The data plane that ran: A's tunnel, B's keeper (console and /status).
PLANE_DESC="kernel ESP"
[ "$WANT_PLANE" = kernel ] || PLANE_DESC="user-space ESP"
grep -aq "ferry: tunnel up gateway=[0-9.]* vip=[0-9.]* via $PLANE_DESC" "$DIR/console.txt" ||
	fail "tunnel-a did not run on $PLANE_DESC: $(con | grep -a 'tunnel up\|kernel ESP unusable')"
grep -aq "ferry: tunnel up gateway=[0-9.]* vip=[0-9.]* (keeper) via $PLANE_DESC" "$DIR/console.txt" ||
	fail "tunnel-b (keeper) did not run on $PLANE_DESC: $(con | grep -a 'tunnel up\|kernel ESP unusable')"
grep -q "\"dataplane\":\"$WANT_PLANE\"" <<<"$status" || fail "keeper status: data plane is not $WANT_PLANE: $status"
show=""
for _ in $(seq 30); do
	show=$("$FERRY" borrower lease show --dir "$BDIR" "$LEASE" 2>&1) || true
	grep -q 'switch-root' <<<"$show" && break
	sleep 1
done
for p in enroll tunnel-a fetch-b patch-b kexec-armed tunnel-b mount-root switch-root; do
	grep -q "$p" <<<"$show" || fail "lease show lacks phase $p: $show"
done

# ------------------------------------------------------------------ return
log "borrower lease return"
T_RET=$(stamp)
"$FERRY" borrower lease return --dir "$BDIR" "$LEASE" >"$DIR/return.log" 2>&1 || fail "lease return: $(cat "$DIR/return.log")"
# The keeper asked the root's init to power off: QEMU (-no-reboot) exits by
# itself. Quit over QMP only as a fallback, which fails the check.
for _ in $(seq 150); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$QEMU_PID" 2>/dev/null; then
	qmp_quit
	fail "the guest did not power off by itself within 30 s of the return (QMP quit sent); return: $(cat "$DIR/return.log")"
fi
T_OFF=$(stamp)
tr -d '\r\033' <"$DIR/console.log" >"$DIR/console.txt"
grep -aq 'ferry-root: clean shutdown requested' "$DIR/console.txt" ||
	fail "the root's init never got the keeper's power-off signal: $(tail -5 "$DIR/console.txt")"
grep -aq 'reboot: Power down' "$DIR/console.txt" ||
	fail "QEMU ended but the guest's kernel never powered down (the lender's power-off came first?): $(tail -5 "$DIR/console.txt")"
show=$("$FERRY" borrower lease show --dir "$BDIR" "$LEASE" 2>&1) || true
grep -Eq '^shutdown [^ ]+ +clean' <<<"$show" || fail "lease show does not record a clean shutdown: $show"
grep -q 'EXPORT {' "$DIR/ferry-exports.conf" && fail "the lent server's export is still there after the return: $(cat "$DIR/ferry-exports.conf")"
SHUT_S=$(sed -n 's/^shutdown [^ ]* *clean *\([0-9.]*\) s.*/\1/p' <<<"$show" | head -1)
HOW="poweroff -f"
grep -aq 'sysrq power off' "$DIR/console.txt" && HOW="the sysrq fallback (poweroff -f did not act)"
serial=$(con | grep -ao 'ferry: enrolled .*serial=[0-9a-f]*' | sed 's/.*serial=//' | tail -1)
inL curl -sk -o "$DIR/crl.der" "https://$LENDER:8443/v1/crl" || fail "no CRL from the lender"
crl=$(openssl crl -inform DER -in "$DIR/crl.der" -noout -text 2>&1)
[ -n "$serial" ] && grep -Eiq "Serial Number: *0*$serial\$" <<<"$crl" || fail "CRL lacks the one-time certificate (serial '$serial'): $crl"
# The borrower relays that CRL to the gateway (gateway_crl_file -> "crl").
relayed=$(openssl crl -inform DER -in "$DIR/lender.crl" -noout -text 2>&1) || fail "no CRL relayed to the gateway: $relayed"
grep -Eiq "Serial Number: *0*$serial\$" <<<"$relayed" || fail "the CRL relayed to the gateway lacks serial $serial: $relayed"
wait_log 10 "$DIR/gateway.log" 'authz: CRL loaded.*revoked=[1-9]' || fail "the gateway did not load the relayed CRL: $(grep -a CRL "$DIR/gateway.log" | tail -3)"

sha256sum <"$DIR/disk.raw" | cut -d' ' -f1 | cmp -s - "$DIR/disk.sha256.before" || fail "the lent server's disk changed"
end_pids "${PIDS_TO_END[0]}" "${PIDS_TO_END[1]}"
leaks || fail "the lent server sent in clear (see above; captures in $DIR)"

# ------------------------------------------------------------------ timeline
echo
echo "timeline (guest console; then the managers):"
con | grep -a 'ferry: phase .* ok in' | sed 's/.*ferry: phase \([^ ]*\) ok in \(.*\)/  \1 \2/' | awk '{printf "  %-12s %s\n", $1, $2}'
# Before image A runs, only the lender sees the boot (its netboot's DHCP,
# script and file fetches, recorded as pxe-* phases): lease show has every
# phase with its start counted from the lease request.
echo "timeline from the lease request (lease show: the lender's netboot, then the agent's phases):"
grep -E '^  [a-z0-9-]+ .* at \+[0-9.]+ s$' <<<"$show" | sed 's/ *at +\([0-9.]*\) s$/ \1/' |
	awk '{printf "  +%6.1f s  %-18s %-12s %s\n", $NF, $1, $2, ($(NF-2) > 0 ? $(NF-2) " bytes" : "")}' | sort -t+ -k2 -n
awk -v t0="$T0" -v q="$T_REQ" -v r="$T_READY" -v b="$T_RET" -v o="$T_OFF" -v e="$ESP_PKTS" -v s="$SHUT_S" -v how="$HOW" 'BEGIN {
	printf "  lease request -> borrower root ready: %.1f s; return -> powered off: %.2f s; whole run %.1f s\n", r - q, o - b, o - t0
	printf "  clean shutdown: keeper asked -> server left the gateway in %s s; guest powered off by itself through %s\n", s, how
	printf "  WAN: %d ESP-in-UDP packets of the lent server; 0 in clear on the WAN and on the lender LAN\n", e }'
echo "  ESP data plane: $PLANE_DESC in A and in B's keeper (ferry.dataplane=$DATAPLANE)"
echo "  NFS: root exported to $VIP alone; the lent server $REFUSED"
echo "full-e2e: ok (lease $LEASE, tunnel address $VIP)"
PASSED=1
