#!/bin/busybox sh
# scripts/ipsec-guest/guest-init.sh — /init-test of the kernel-ESP guest
# (booted with rdinit=/init-test by internal/vmlab's TestIPsecGuest). Loads the
# modules the host listed in /etc/ipsec-guest/modules.order, configures
# eth0, runs `ferry vpn up --dataplane kernel` (XFRM, UDP encapsulation)
# against the peer on the tap network, then pings the peer's inner address
# and fetches a file through the tunnel, checking its sha256. Every result
# is one console line `ipsec-guest: KEY VALUE`; `ipsec-guest: PASS` or
# `ipsec-guest: FAIL REASON` closes the run. Settings come from the kernel
# command line: ipsec.peer= ipsec.subnet= ipsec.target= ipsec.sha256=
# ipsec.port= ipsec.addr= ipsec.gw=. Before the tunnel it runs the
# ipsec/xfrm package's tests (/opt/xfrm.test) on this kernel with ESP.
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
exec >/dev/console 2>&1

say() { echo "ipsec-guest: $*"; }
now() { cut -d' ' -f1 /proc/uptime; }
# ms A B: milliseconds from uptime A to uptime B (both "S.CC").
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 }'; }
xip() { /opt/iproute2/ld-linux-x86-64.so.2 --library-path /opt/iproute2 /opt/iproute2/ip "$@"; }
finish() {
	[ -n "$vpnpid" ] && ferry vpn down --status /run/vpn.sock >/dev/null 2>&1
	sync
	poweroff -f
}
fail() { say "FAIL $*"; finish; }
vpnpid=

for kv in $(cat /proc/cmdline); do
	case $kv in ipsec.*=*) k=${kv#ipsec.}; eval "ARG_${k%%=*}='${kv#*=}'" ;; esac
done
say "peer ${ARG_peer:-?} kernel $(uname -r) up at $(now)s"

# Modules, leaves first (modprobe --show-depends order from the host).
n=0
while read -r ko; do
	[ -z "$ko" ] && continue
	# A failure is reported, not fatal: the tunnel steps below say
	# whether something that mattered was missing.
	if out=$(insmod "$ko" 2>&1); then n=$((n + 1)); else
		case $out in *"File exists"*) ;; *) say "insmod-failed $ko: $out; kernel: $(dmesg | tail -2 | tr '\n' ' ')" ;; esac
	fi
done </etc/ipsec-guest/modules.order
# Anything the kernel still asks for (crypto templates) goes to modprobe.
echo /sbin/modprobe >/proc/sys/kernel/modprobe
say "modules $n loaded at $(now)s"

# ipsec/xfrm's own tests on a kernel with ESP (the host has none).
if /opt/xfrm.test -test.v -test.count=1 >/tmp/xfrm-test.log 2>&1; then say "xfrm-tests PASS"; else
	cat /tmp/xfrm-test.log
	fail "xfrm-tests FAIL: $(grep -- '--- FAIL' /tmp/xfrm-test.log | tr '\n' ' ')"
fi
grep -E -- '--- (SKIP|FAIL)|^    ' /tmp/xfrm-test.log

ip link set lo up
ip addr add "$ARG_addr/24" dev eth0 || fail "address $ARG_addr on eth0"
ip link set eth0 up
i=0
until ping -c 1 -W 1 "$ARG_gw" >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -ge 20 ] && fail "gateway $ARG_gw not reachable on eth0"
done

t0=$(now)
# A CHILD_SA lifetime of 40 s (rekey 30-35 s in) puts a real CHILD rekey
# during or right after the transfer; traffic must survive it (issue "A
# lease that lasts", item 1: the first rekey used to kill the tunnel).
ferry vpn up --dataplane kernel --child-lifetime 40s --rekey-margin 5s --gateway "$ARG_gw" --ca /etc/ipsec-guest/ca.pem \
	--cert /etc/ipsec-guest/lease.pem --key /etc/ipsec-guest/lease.key \
	--subnet "$ARG_subnet" --status /run/vpn.sock &
vpnpid=$!
st=
for i in $(seq 600); do
	st=$(ferry vpn status --status /run/vpn.sock 2>/dev/null)
	case $st in *'"state":"established"'*) break ;; esac
	kill -0 $vpnpid 2>/dev/null || fail "ferry vpn up exited before the tunnel was up"
	usleep 100000
done
case $st in *'"state":"established"'*) ;; *) fail "tunnel not established in 60 s: $st" ;; esac
t1=$(now)
vip=$(echo "$st" | sed -n 's/.*"virtual_ip":"\([0-9.]*\)".*/\1/p')
say "tunnel-up-ms $(ms "$t0" "$t1") vip $vip"
say "status $st"

echo "--- xfrm state (kernel) ---"
xip -s xfrm state
echo "--- xfrm policy (kernel) ---"
xip xfrm policy
echo "--- addresses and routes ---"
ip addr; ip route; xip route show table all | grep -v '^local\|^broadcast'
win=$(xip xfrm state | sed -n 's/.*replay-window \([0-9]*\).*/\1/p; s/.*replay_window \([0-9]*\).*/\1/p' | sort -n | tail -1)
say "replay-window ${win:-none}"
encap=$(xip xfrm state | grep -c 'encap type espinudp')
say "espinudp-states $encap"

ping -c 3 -W 3 "$ARG_target" || fail "ping $ARG_target through the tunnel"
say "ping ok"

t2=$(now)
sum=$(wget -q -O - "http://$ARG_target:$ARG_port/blob" | sha256sum | cut -d' ' -f1)
t3=$(now)
[ "$sum" = "$ARG_sha256" ] || fail "transfer sha256 $sum, want $ARG_sha256"
say "transfer-ms $(ms "$t2" "$t3")"
echo "--- counters after the transfer ---"
xip -s xfrm state | grep -E 'src|lifetime current|bytes|replay|stats'
cat /proc/net/xfrm_stat

# Wait for the CHILD_SA rekey (a new inbound SPI, the old SA deleted),
# then the tunnel must still carry traffic and keep its policies.
spi0=$(echo "$st" | sed -n 's/.*"in_spi":"\([0-9a-f]*\)".*/\1/p')
for i in $(seq 900); do
	st=$(ferry vpn status --status /run/vpn.sock 2>/dev/null)
	spi=$(echo "$st" | sed -n 's/.*"in_spi":"\([0-9a-f]*\)".*/\1/p')
	[ -n "$spi" ] && [ "$spi" != "$spi0" ] && [ "$(xip xfrm state | grep -c '^src')" = 2 ] && break
	usleep 100000
done
[ -n "$spi" ] && [ "$spi" != "$spi0" ] || fail "no CHILD_SA rekey within 90 s: $st"
say "child-rekeyed $spi0 -> $spi"
echo "--- xfrm policies after the rekey ---"
xip xfrm policy # (not the states: they print the keys)
xip xfrm policy | grep -A3 "dir out" | grep -q "tmpl src" || fail "after the CHILD_SA rekey no outbound IPsec policy is left"
ping -c 3 -W 3 "$ARG_target" || fail "ping $ARG_target after the CHILD_SA rekey"
sum=$(wget -q -O - "http://$ARG_target:$ARG_port/blob" | sha256sum | cut -d' ' -f1)
[ "$sum" = "$ARG_sha256" ] || fail "transfer after the CHILD_SA rekey: sha256 $sum, want $ARG_sha256"
say "after-rekey ok"

# vpn down (the deliberate end) must leave the kernel as it found it:
# Teardown removes the fail-closed block policies and guards as well.
ferry vpn down --status /run/vpn.sock >/dev/null || fail "ferry vpn down"
for i in $(seq 50); do kill -0 $vpnpid 2>/dev/null || break; usleep 100000; done
vpnpid=
left="$(xip xfrm state)$(xip xfrm policy)"
[ -z "$left" ] || fail "after vpn down the kernel still has: $left"
ip addr show dev eth0 | grep -q " $vip/" && fail "after vpn down eth0 still has the virtual IP $vip"
ip route | grep -q "^$ARG_subnet" && fail "after vpn down the route to $ARG_subnet remains"
say "down-clean ok"
say "PASS"
finish
