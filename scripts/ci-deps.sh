#!/usr/bin/env bash
# scripts/ci-deps.sh — install, non-interactively, every Debian package the
# lab and the tests use (QEMU, nfs-ganesha, busybox-static, compressors for
# the initramfs formats, network tools, strongSwan for the IPsec interop
# tests). Does nothing when all are already installed (so `make demo` works
# offline once set up). Debian 12; needs root and Debian's apt sources.
set -euo pipefail

PKGS=(
	# lab: VM, NFS root server, images
	qemu-system-x86 ipxe-qemu nfs-ganesha nfs-ganesha-vfs rpcbind
	busybox-static cpio e2fsprogs kmod
	# initramfs compressions ferry reads and writes
	gzip xz-utils zstd lz4 bzip2
	# network and HTTP from the host side
	iproute2 curl ca-certificates procps coreutils openssl
	tcpdump # vmlab TestFullChain and the soak: captures on the WAN and the lender LAN, the clear-text check
	# IPsec peer for the tunnel tests (userspace ESP: the host kernel has none)
	strongswan-charon strongswan-swanctl libcharon-extra-plugins strongswan-pki
	libstrongswan-standard-plugins # openssl (ECDSA, ecp256) and gcm plugins: without them charon and pki cannot do aes256gcm16-ecp256
	# building
	make git
	gcc libc6-dev # make check runs go test -race: the race detector needs cgo (ferry itself is built with CGO_ENABLED=0)
	mawk # lab scripts: awk (Priority required, not Essential)
	apt # fetch-kernel.sh: apt-cache, apt-get download (Priority required, not Essential)
	debootstrap # internal/vmlab: the systemd root template (Debian bookworm minbase + systemd, udev), made once into the cache
	xfsprogs # rootprep: the reflink test on a loop-mounted XFS
	nftables conntrack # ipsec/ike NAT tests: a masquerading router namespace, mapping flushes
	systemd # systemd-analyze: the units verified and their exposure checked (internal/debtest)
	prometheus # promtool check metrics on the lender's exposition (lender tests); its server is disabled below
	chromium chromium-driver # the lender's status page checked in a headless browser (borrower tests, chromedp)
	ovmf ipxe # UEFI lab run: OVMF firmware; iPXE's EFI build (ipxe.efi, snponly.efi) the lender serves over TFTP
	openipmi ipmitool # IPMI power test: ipmi_sim as the guest's BMC, ipmitool as ferry's driver runs it
	redfishtool # the Redfish lab service cross-checked with DMTF's own client
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "ci-deps: all ${#PKGS[@]} packages already installed"
	exit 0
fi
[ "$(id -u)" = 0 ] || { echo "ci-deps: need root to install: ${missing[*]}" >&2; exit 1; }
echo "ci-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The packaged nfs-ganesha, rpcbind and strongSwan services are not used by the lab
# (it runs its own in a network namespace); keep them from holding ports.
for s in nfs-ganesha rpcbind rpcbind.socket strongswan-starter prometheus; do
	systemctl disable --now "$s" >/dev/null 2>&1 || true
done
