#!/bin/sh
# Runs a real IKEv2 handshake between two strongSwan 5.9.8 charons (one per
# network namespace, veth 10.31.1.1 <-> 10.31.1.2, ECDSA P-256 certificates
# from `pki`, aes256gcm16-prfsha256-ecp256) with the charon log at level 4,
# and keeps the initiator's log as strongswan-handshake.log: it holds the
# packets, nonces, SPIs, the DH secret and the derived SK_* keys, which
# ikev2's tests recompute. Needs root, strongswan-charon, -swanctl, -pki.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
ni=ikev2i$$ nr=ikev2r$$
dir=$(mktemp -d)
cleanup() {
	for n in "$ni" "$nr"; do ip netns pids "$n" 2>/dev/null | xargs -r kill 2>/dev/null || true; done
	sleep 0.5
	for n in "$ni" "$nr"; do ip netns del "$n" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$ni"; ip netns add "$nr"
ip link add ikv$$a netns "$ni" type veth peer name ikv$$b netns "$nr"
ip -n "$ni" addr add 10.31.1.1/24 dev ikv$$a; ip -n "$ni" link set ikv$$a up; ip -n "$ni" link set lo up
ip -n "$nr" addr add 10.31.1.2/24 dev ikv$$b; ip -n "$nr" link set ikv$$b up; ip -n "$nr" link set lo up

pki --gen --type ecdsa --size 256 --outform pem > "$dir/ca.key"
pki --self --ca --lifetime 2 --in "$dir/ca.key" --dn "CN=ferry test CA" --outform pem > "$dir/ca.pem"
for side in i r; do
	mkdir -p "$dir/$side/x509" "$dir/$side/x509ca" "$dir/$side/ecdsa"
	cp "$dir/ca.pem" "$dir/$side/x509ca/"
	pki --gen --type ecdsa --size 256 --outform pem > "$dir/$side/ecdsa/key.pem"
	pki --issue --lifetime 2 --cacert "$dir/ca.pem" --cakey "$dir/ca.key" --in "$dir/$side/ecdsa/key.pem" \
		--type priv --dn "CN=$side.ferry.test" --san "$side.ferry.test" --outform pem > "$dir/$side/x509/cert.pem"
	cat > "$dir/$side/strongswan.conf" <<CONF
charon {
  load_modular = no
  load = random nonce kdf hmac sha2 aes gcm openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints kernel-netlink socket-default vici
  plugins { vici { socket = unix://$dir/$side/charon.vici } }
  install_routes = no
  filelog { log { path = $dir/$side/charon.log
    flush_line = yes
    default = 1
    ike = 4
    net = 4 } }
}
CONF
done
conf() { # side local remote
	cat <<CONF
connections {
  t {
    version = 2
    local_addrs = $2
    remote_addrs = $3
    proposals = aes256gcm16-prfsha256-ecp256
    local { auth = pubkey
      certs = cert.pem
      id = $1.ferry.test }
    remote { auth = pubkey
      id = $4.ferry.test }
    children { c { esp_proposals = aes256gcm16
      mode = transport } }
  }
}
CONF
}
conf i 10.31.1.1 10.31.1.2 r > "$dir/i/swanctl.conf"
conf r 10.31.1.2 10.31.1.1 i > "$dir/r/swanctl.conf"
for side in i r; do
	ns=$ni; [ $side = r ] && ns=$nr
	ip netns exec "$ns" unshare -m sh -c "mount -t tmpfs none /run && cd $dir/$side && STRONGSWAN_CONF=$dir/$side/strongswan.conf exec /usr/lib/ipsec/charon" 2>/dev/null &
done
sleep 2
for side in i r; do
	ns=$ni; [ $side = r ] && ns=$nr
	(cd "$dir/$side" && ip netns exec "$ns" swanctl --load-all --file "$dir/$side/swanctl.conf" --uri "unix://$dir/$side/charon.vici" >/dev/null)
done
ip netns exec "$ni" swanctl --initiate --ike t --child c --timeout 10 --uri "unix://$dir/i/charon.vici" >/dev/null 2>&1 || true
sleep 3
# The kernel here has no ESP, so the CHILD_SA fails; the IKE SA, whose
# keys and AUTH payloads the test checks, is established regardless.
grep -E '^[0-9]+\[(NET|IKE)\]' "$dir/i/charon.log" > "$here/strongswan-handshake.log"
grep -q "IKE_SA t\[1\] established" "$here/strongswan-handshake.log" && echo "IKE SA established" || { echo "handshake failed"; grep -i "fail\|error" "$dir/i/charon.log" "$dir/r/charon.log" | head; exit 1; }
