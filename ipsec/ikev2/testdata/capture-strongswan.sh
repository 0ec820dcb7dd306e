#!/bin/sh
# Captures a real strongSwan IKE_SA_INIT request into
# strongswan-ike-sa-init.bin for ikev2's byte-exact decode test.
# Needs root and strongswan-charon strongswan-swanctl. A network namespace
# (ikev2cap<pid>, subnet 10.31.0.0/24) holds charon as initiator and a
# Python UDP listener on 10.31.0.2:5000 that takes the first datagram.
set -eu
out=$(cd "$(dirname "$0")" && pwd)/strongswan-ike-sa-init.bin
ns=ikev2cap$$
dir=$(mktemp -d)
cleanup() { ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true; ip netns del "$ns" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" addr add 10.31.0.1/32 dev lo
ip -n "$ns" addr add 10.31.0.2/32 dev lo
cat > "$dir/strongswan.conf" <<CONF
charon {
  load_modular = no
  load = random nonce kdf hmac sha2 aes gcm openssl pem pkcs1 x509 pubkey kernel-netlink socket-default vici
  plugins { vici { socket = unix://$dir/charon.vici } }
  install_routes = no
  filelog { log { path = $dir/charon.log
    default = 1
    ike = 2 } }
}
CONF
cat > "$dir/swanctl.conf" <<CONF
connections {
  cap {
    version = 2
    local_addrs = 10.31.0.1
    remote_addrs = 10.31.0.2
    remote_port = 5000
    proposals = aes256gcm16-prfsha256-ecp256
    local { auth = psk
      id = initiator.ferry.test }
    remote { auth = psk
      id = responder.ferry.test }
    children { c { esp_proposals = aes256gcm16 } }
  }
}
secrets { ike-1 { secret = capture-only } }
CONF
ip netns exec "$ns" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.31.0.2", 5000)); s.settimeout(20)
data, _ = s.recvfrom(65536)
open(sys.argv[1], "wb").write(data)
' "$out" &
listener=$!
ip netns exec "$ns" unshare -m sh -c "mount -t tmpfs none /run && STRONGSWAN_CONF=$dir/strongswan.conf exec /usr/lib/ipsec/charon" &
sleep 2
ip netns exec "$ns" swanctl --load-all --file "$dir/swanctl.conf" --uri "unix://$dir/charon.vici" >/dev/null
ip netns exec "$ns" swanctl --initiate --ike cap --child c --timeout 3 --uri "unix://$dir/charon.vici" >/dev/null 2>&1 || true
wait "$listener"
echo "captured $(wc -c < "$out") bytes into $out"
