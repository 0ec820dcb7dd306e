#!/usr/bin/env bash
# bench.sh FERRY — the README's figures in one run, each beside its baseline:
# patching a ~100 MB zstd initrd(B) vs cp vs unpack-edit-repack, IKE
# handshakes/s on the responder, user-space ESP vs plain TCP on the same
# veth pair, enrollments/s and a 100-server lease request, the binary's
# size, and initrd(A)'s size.
set -euo pipefail
cd "$(dirname "$0")/.."
FERRY=$(realpath "${1:-./ferry}")

echo "== initrd patch vs copy vs unpack-repack (go test -bench)"
go test -run '^$' -bench 'Patch100MB|Copy100MB|UnpackRepack100MB' -benchtime 3x ./initrd/ | grep -E '^Benchmark|ok|FAIL'

echo "== IKEv2 responder handshakes/s (IKE_SA_INIT + IKE_AUTH, both ends on this machine)"
go test -run '^$' -bench 'ResponderHandshakes' -benchtime 2s ./ipsec/ike/ | grep -E '^Benchmark|FAIL'

echo "== user-space ESP vs plain TCP over the same veth pair"
go test -run '^$' -bench 'BulkTCPUserspaceESPvsPlain' -benchtime 2x ./ipsec/esp/ | grep -E '^Benchmark|FAIL'

echo "== lender: enrollments/s and a 100-server lease request"
go test -run '^$' -bench 'Enroll|LeaseRequest100' ./lender/ | grep -E '^Benchmark|FAIL'

echo "== sizes"
printf 'ferry binary (static, stripped): %s bytes\n' "$(stat -c %s "$FERRY")"
scripts/fetch-kernel.sh >/dev/null
# shellcheck disable=SC1091
. "${FERRY_CACHE:-build/cache}/kernel.env"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$FERRY" initrd build -o "$tmp/initrd-a.img" --kernel-modules "$MODDIR" \
	--module virtio_net --module virtio_blk --module virtio_pci --module nfsv4 --module nfsv3 >/dev/null
printf 'initrd(A), uncompressed, with NIC+NFS modules: %s bytes\n' "$(stat -c %s "$tmp/initrd-a.img")"
gzip -9 <"$tmp/initrd-a.img" | wc -c | xargs printf 'initrd(A) gzip -9 would be: %s bytes\n'
