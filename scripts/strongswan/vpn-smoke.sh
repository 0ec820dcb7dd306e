#!/usr/bin/env bash
# scripts/strongswan/vpn-smoke.sh — the applets end to end, as an operator
# runs them: keys and CSRs from `ferry keygen`, certificates issued from
# those CSRs by strongSwan's `pki` (a CA ferry did not make), then
# `ferry gateway` in one namespace and `ferry vpn up --background` in
# another; checks `vpn status` shows the tunnel with a virtual IP and that
# `vpn down` removes it on both sides. Needs root and scripts/ci-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d /tmp/ferry-vpn-smoke.XXXXXX)
A=ferrysmoke$$a B=ferrysmoke$$b
gwpid=
cleanup() {
	[ -z "$gwpid" ] || kill "$gwpid" 2>/dev/null || true
	[ ! -S "$work/vpn.sock" ] || ip netns exec "$A" "$work/ferry" vpn down --status "$work/vpn.sock" >/dev/null 2>&1 || true
	ip netns del "$A" 2>/dev/null || true
	ip netns del "$B" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
say() { echo "vpn-smoke: $*"; }

CGO_ENABLED=0 go build -o "$work/ferry" .
export STRONGSWAN_CONF=$work/strongswan.conf
sed "s|@DIR@|$work|g" scripts/strongswan/strongswan.conf.in >"$STRONGSWAN_CONF"
cd "$work"
pki --gen --type ecdsa --size 256 >ca.key
pki --self --ca --in ca.key --dn "CN=smoke CA" --outform pem >ca.pem
for cn in gateway lease-1; do
	./ferry keygen --cn "$cn" --key "$cn.key" --allow-disk --csr "$cn.csr" 2>"$cn.log"
	pki --issue --type pkcs10 --in "$cn.csr" --cacert ca.pem --cakey ca.key --outform pem >"$cn.pem"
done
pin=$(grep -o 'pin=[0-9a-f]*' lease-1.log | cut -d= -f2)
echo "{\"pin\":\"$pin\",\"lease\":\"lease-1\"}" >allow.jsonl
say "keys from ferry keygen, certificates from strongSwan pki; lease-1 pin $pin"

ip netns add "$A"
ip netns add "$B"
ip link add ferrysm0 netns "$A" type veth peer name ferrysm1 netns "$B"
ip -n "$A" addr add 10.33.9.1/24 dev ferrysm0
ip -n "$B" addr add 10.33.9.2/24 dev ferrysm1
for n in "$A" "$B"; do ip -n "$n" link set lo up; done
ip -n "$A" link set ferrysm0 up
ip -n "$B" link set ferrysm1 up

cat >gw.json <<JSON
{"listen": "10.33.9.2", "ca": "$work/ca.pem", "cert": "$work/gateway.pem", "key": "$work/gateway.key",
 "pool": "10.33.201.0/24", "subnets": ["10.33.12.0/24"], "inner": "10.33.12.1/32",
 "allow": "$work/allow.jsonl", "status": "$work/gw.sock"}
JSON
ip netns exec "$B" ./ferry gateway --config gw.json 2>gw.log &
gwpid=$!
for _ in $(seq 50); do [ -S gw.sock ] && break; sleep 0.1; done
ip netns exec "$A" ./ferry vpn up --background --gateway 10.33.9.2 --ca ca.pem --cert lease-1.pem \
	--key lease-1.key --subnet 10.33.12.0/24 --status "$work/vpn.sock"
for _ in $(seq 50); do
	st=$(ip netns exec "$A" ./ferry vpn status --status "$work/vpn.sock")
	echo "$st" | grep -q '"state":"established"' && break
	sleep 0.1
done
echo "$st" | grep -q '"virtual_ip":"10.33.201.' || { say "FAIL: no tunnel: $st"; cat gw.log; exit 1; }
say "tunnel up: $(echo "$st" | grep -o '"virtual_ip":"[0-9.]*"'), $(echo "$st" | grep -o '"suite":"[^"]*"')"
ip netns exec "$B" ./ferry vpn status --status "$work/gw.sock" | grep -q '"lease":"lease-1"' || { say "FAIL: gateway does not show lease-1"; exit 1; }
ip netns exec "$A" ./ferry vpn down --status "$work/vpn.sock" >/dev/null
sleep 0.5
gst=$(ip netns exec "$B" ./ferry vpn status --status "$work/gw.sock")
[ "$gst" = "[]" ] || { say "FAIL: gateway still has SAs after vpn down: $gst"; exit 1; }
say "ok: vpn down removed the SAs on both sides"
