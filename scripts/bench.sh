#!/usr/bin/env bash
# bench.sh FERRY — the README's figures in one run, each beside its baseline:
# patching a ~100 MB zstd initrd(B) vs cp vs unpack-edit-repack, IKE
# handshakes/s on the responder, user-space ESP vs plain TCP on the same
# veth pair, enrollments/s and a 100-server lease request, 1,000 lent
# servers through the real managers to ferry's gateway and to strongSwan's
# charon (handshakes/s, memory per SA, CPU), the binary's size and
# initrd(A)'s per compression; with FERRY_BENCH_CHAIN=1 the transfer under
# QEMU before (the baseline commit, built and run by its own harness) and
# after: lease request -> root ready, its timeline, image A's bytes and the
# agent's own time (scripts/bench-chain.sh); with FERRY_BENCH_ROOTS=1 the
# transfer with a 200 MB and a 2 GB root.
set -euo pipefail
cd "$(dirname "$0")/.."
FERRY=$(realpath "${1:-./ferry}")

# Each figure is one function, run in the order of the README's table.
patch_vs_copy() {
	echo "== initrd patch vs copy vs unpack-repack (go test -bench)"
	go test -run '^$' -bench 'Patch100MB|Copy100MB|UnpackRepack100MB' -benchtime 3x ./initrd/ | grep -E '^Benchmark|ok|FAIL'
}

ike_handshakes() {
	echo "== IKEv2 responder handshakes/s (IKE_SA_INIT + IKE_AUTH, both ends on this machine)"
	go test -run '^$' -bench 'ResponderHandshakes' -benchtime 2s ./ipsec/ike/ | grep -E '^Benchmark|FAIL'
}

esp_vs_tcp() {
	echo "== user-space ESP vs plain TCP over the same veth pair (the daemon's own socket loop, ike.OpenUserspace)"
	go test -run '^$' -bench 'BulkTCPUserspaceESPvsPlain' -benchtime 2x ./ipsec/ike/ | grep -E '^Benchmark|FAIL'
}

lender_rates() {
	echo "== lender: enrollments/s and a 100-server lease request"
	go test -run '^$' -bench 'Enroll|LeaseRequest100' ./lender/ | grep -E '^Benchmark|FAIL'
}

# Many lent servers at once (internal/fleet, needs root): the borrower
# manager leases them from the real lender (DHCP handler, netboot HTTP,
# enrollment); tunnels with one-time certificates to ferry's gateway, image
# B (3 MB) fetched from the borrower through each tunnel, then held with
# DPD; and the same handshake load to strongSwan's charon (no data).
# FERRY_BENCH_SERVERS (1000), FERRY_BENCH_HOLD (10m).
fleet() {
	FERRY_FLEET_N=${FERRY_BENCH_SERVERS:-1000} FERRY_FLEET_HOLD=$2 \
		go test -count=1 -timeout 60m -run "^$1\$" -v ./internal/fleet/ | grep -Ev '^(=== |--- |PASS|ok )'
}
fleet_vs_charon() {
	echo "== ${FERRY_BENCH_SERVERS:-1000} lent servers leased by the borrower from the real lender, image B through each tunnel to ferry's gateway, held ${FERRY_BENCH_HOLD:-10m} with DPD"
	fleet TestFleet "${FERRY_BENCH_HOLD:-10m}"
	echo "== the same load against strongSwan charon as the responder (held 1m)"
	fleet TestFleetCharon 1m
}

# sizes: the binary, and image A as the lab builds it (vmlab.BuildImages:
# NIC, disk, NFS for B, tun and kernel ESP's modules) per compression.
# Image A before and after is measured by the chain part: the file each
# harness's lender served.
sizes() {
	echo "== sizes"
	printf 'ferry binary (static, stripped): %s bytes\n' "$(stat -c %s "$FERRY")"
	scripts/fetch-kernel.sh >/dev/null
	# shellcheck disable=SC1091
	. "${FERRY_CACHE:-build/cache}/kernel.env"
	local c
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	local -a mods=(--module virtio_net --module virtio_blk --module virtio_pci --module nfsv4 --module tun --module tcp_diag --esp)
	for c in none gzip lz4 zstd; do
		"$FERRY" initrd build -o "$tmp/a-$c.img" --kernel-modules "$MODDIR" "${mods[@]}" --compress "$c" >/dev/null
		printf 'initrd(A) --compress %-4s: %9s bytes\n' "$c" "$(stat -c %s "$tmp/a-$c.img")"
	done
	echo "(initrd(A) before and after, as the lenders served them: FERRY_BENCH_CHAIN=1)"
}

# Root size must not matter (issue 10): the chain with a 200 MB root
# template and with a 2 GB one (a file of pseudo-random bytes, not
# sparse), interleaved, FERRY_ROOT_RUNS (2) runs of each: lease request ->
# root ready per run, the medians and their ratio, and how long the
# borrower's copy of the root sat on the critical path (about 0).
root_sizes() {
	echo "== root size: lease request -> root ready with a 200 MB and a 2 GB root (internal/vmlab TestRootSizes, TCG)"
	local out
	out=$(flock /tmp/ferry-qemu.lock env FERRY_LAB=1 FERRY_BIN="$FERRY" FERRY_ROOT_SIZES="200 2048" \
		go test -count=1 -v -timeout 60m -run '^TestRootSizes$' ./internal/vmlab/ 2>&1) || { tail -20 <<<"$out"; return 1; }
	grep -E '^root ' <<<"$out"
}

patch_vs_copy
ike_handshakes
esp_vs_tcp
lender_rates
fleet_vs_charon
sizes
# The transfer under QEMU (minutes; every run holds the machine's QEMU
# lock): lease request -> root ready, its timeline, image A's bytes and
# the agent's own time, before (the baseline commit's own harness) and
# after, side by side (scripts/bench-chain.sh).
if [ "${FERRY_BENCH_CHAIN:-}" = 1 ]; then scripts/bench-chain.sh "$FERRY"; fi
# FERRY_BENCH_ROOTS=1: the two root sizes (minutes, holds the QEMU lock).
if [ "${FERRY_BENCH_ROOTS:-}" = 1 ]; then root_sizes; fi
