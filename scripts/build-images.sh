#!/usr/bin/env bash
# scripts/build-images.sh [FERRY_BINARY] — build every image the lab boots:
#   $LAB/initrd-a.img       image A's initrd, made by `ferry initrd build`
#                           (skipped, with a warning, when no binary is given)
#   $LAB/www/vmlinuz-b      image B's kernel: the same Debian vmlinuz
#   $LAB/www/initrd-b.img   image B's initrd, NOT made by ferry: uncompressed
#                           early cpio (dummy microcode) + zstd newc cpio of a
#                           busybox tree whose /init must never run
#   $LAB/www/transfer.json  the transfer settings (docs/CONTRACT.md), for
#                           NFS version FERRY_NFS_VERSION (default 4.1)
#   $LAB/export/            the NFS root (busybox + a checking /sbin/init,
#                           whose expectations are in /etc/ferry-lab.conf)
#   $LAB/disk.raw           a 64 MiB local disk that must stay byte-identical
# and records digests in $LAB/*.sha256. Needs scripts/fetch-kernel.sh first
# (it is run here if the cache is empty).
# FERRY_B_KERNEL=cloud gives B a kernel of another release than A's: Debian's
# cloud flavour (apt-get download, cached), with initrd(B) holding that
# kernel's NIC, disk and NFS modules xz-compressed under
# /usr/lib/modules/RELEASE plus modules.builtin(.modinfo), as
# initramfs-tools lays them out: A carries none of its own, and B must
# coldplug its own (needs the ferry binary to resolve dependencies).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need busybox cpio zstd sha256sum
FERRY=${1:-}

[ -r "$KERNEL_ENV" ] || "$FERRY_REPO/scripts/fetch-kernel.sh" >/dev/null
load_kernel_env
BUSYBOX=$(command -v busybox)
file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' ||
	log "warning: $BUSYBOX may not be static (install busybox-static)"

mkdir -p "$WWW" "$LOGS" "$PIDS"
WORK=$LAB/work
rm -rf "$WORK"
mkdir -p "$WORK"

# Install busybox and one symlink per applet (like `busybox --install -s`,
# but done on the host) into the tree $1.
install_busybox() {
	local root=$1 p
	mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin"
	cp "$BUSYBOX" "$root/bin/busybox"
	while read -r p; do
		[ "$p" = bin/busybox ] && continue
		mkdir -p "$root/$(dirname "$p")"
		ln -sf /bin/busybox "$root/$p"
	done < <("$BUSYBOX" --list-full)
}

# ---------------------------------------------------------------- a) initrd A
if [ -n "$FERRY" ]; then
	[ -x "$FERRY" ] || die "ferry binary $FERRY is not executable"
	log "initrd A: $FERRY initrd build"
	"$FERRY" initrd build -o "$LAB/initrd-a.img" --kernel-modules "$MODDIR" \
		--module virtio_net --module virtio_blk --module virtio_pci \
		--module nfsv4 --module nfsv3 --compress zstd
	[ -s "$LAB/initrd-a.img" ] || die "ferry initrd build produced no $LAB/initrd-a.img"
else
	log "warning: no ferry binary given: initrd A not built"
fi

# ---------------------------------------------------------------- b) image B
cp "$VMLINUZ" "$WWW/vmlinuz-b"
B_MODULES=
if [ "${FERRY_B_KERNEL:-}" = cloud ]; then
	[ -n "$FERRY" ] || die "FERRY_B_KERNEL=cloud needs the ferry binary"
	need dpkg-deb xz
	CLOUD_PKG=linux-image-${KVER%-amd64}-cloud-amd64
	CLOUD_ROOT=$CACHE/kernel/$CLOUD_PKG
	if [ ! -d "$CLOUD_ROOT/boot" ]; then
		mkdir -p "$CACHE/debs" "$CLOUD_ROOT"
		compgen -G "$CACHE/debs/${CLOUD_PKG}_*.deb" >/dev/null ||
			(cd "$CACHE/debs" && apt-get download "$CLOUD_PKG") || die "apt-get download $CLOUD_PKG failed"
		dpkg-deb -x "$(compgen -G "$CACHE/debs/${CLOUD_PKG}_*.deb" | head -1)" "$CLOUD_ROOT"
	fi
	B_KVER=${KVER%-amd64}-cloud-amd64
	cp "$CLOUD_ROOT/boot/vmlinuz-$B_KVER" "$WWW/vmlinuz-b"
	B_MODULES=$WORK/initrd-b-modules
	"$FERRY" initrd build -o "$WORK/b-modules.img" --kernel-modules "$CLOUD_ROOT/lib/modules/$B_KVER" \
		--module virtio_pci --module virtio_net --module virtio_blk --module nfsv4 --module nfsv3 >/dev/null
	mkdir -p "$B_MODULES"
	"$FERRY" initrd extract "$WORK/b-modules.img" "$B_MODULES" >/dev/null
	find "$B_MODULES/lib/modules/$B_KVER" -name '*.ko' -exec xz -q {} +
	cp "$CLOUD_ROOT/lib/modules/$B_KVER"/modules.builtin* "$CLOUD_ROOT/lib/modules/$B_KVER/modules.order" \
		"$B_MODULES/lib/modules/$B_KVER/"
	log "image B: kernel $B_KVER (A runs $KVER), $(find "$B_MODULES" -name '*.ko.xz' | wc -l) modules in initrd(B)"
fi

# Early segment, uncompressed, as Debian ships it (dummy microcode bytes).
EARLY=$WORK/initrd-b-early
mkdir -p "$EARLY/kernel/x86/microcode"
printf 'ferry-lab dummy microcode, not a real update\n' > "$EARLY/kernel/x86/microcode/GenuineIntel.bin"
(cd "$EARLY" && find kernel | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$WORK/early.cpio"

# Main segment: busybox tree with an /init that should never run under ferry.
BROOT=$WORK/initrd-b-root
install_busybox "$BROOT"
mkdir -p "$BROOT"/{dev,proc,sys,run,tmp,etc,root}
mknod -m 600 "$BROOT/dev/console" c 5 1
if [ -n "$B_MODULES" ]; then
	mkdir -p "$BROOT/usr/lib/modules"
	cp -a "$B_MODULES/lib/modules/$B_KVER" "$BROOT/usr/lib/modules/"
fi
echo "initrd-b release 1 (ferry lab image B, built $(date -u +%Y-%m-%dT%H:%M:%SZ))" > "$BROOT/etc/initrd-b-release"
cat > "$BROOT/init" <<'INIT'
#!/bin/sh
# initrd(B)'s own /init. Under ferry, rdinit= selects ferry instead, so this
# must NOT run; the lab e2e fails if the line below ever shows on the console.
mount -t proc proc /proc 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "initrd-b: original /init ran"
cat /etc/initrd-b-release
exec /bin/sh
INIT
chmod 755 "$BROOT/init"
(cd "$BROOT" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	zstd -q -19 -T0 > "$WORK/main.cpio.zst"
cat "$WORK/early.cpio" "$WORK/main.cpio.zst" > "$WWW/initrd-b.img"
sha256sum < "$BROOT/init" | cut -d' ' -f1 > "$LAB/initrd-b-init.sha256"
sha256sum < "$WWW/initrd-b.img" | cut -d' ' -f1 > "$LAB/initrd-b.sha256"
# Self-check: the archive can be split back and its /init is the one above.
"$FERRY_REPO/scripts/check-initrd-b.sh" "$WWW/initrd-b.img" >/dev/null ||
	die "initrd-b.img self-check failed"

# ---------------------------------------------------------------- c) NFS root
# Rebuilt from scratch, except that stale mounts would be fatal to rm -rf.
if [ -d "$EXPORT" ] && grep -q " $EXPORT[/ ]" /proc/mounts; then
	die "$EXPORT has something mounted on it; run scripts/lab.sh down"
fi
rm -rf "$EXPORT"
install_busybox "$EXPORT"
mkdir -p "$EXPORT"/{proc,sys,dev,run,tmp,ferry,etc,srv,root,var/log,mnt}
chmod 1777 "$EXPORT/tmp"
MARKER="ferry-lab-root-marker-$(date +%s)-$RANDOM"
echo "$MARKER" > "$LAB/export-marker"
cat > "$EXPORT/srv/index.html" <<HTML
<html><body><h1>served from the borrower's NFS root</h1>
<p id="marker">$MARKER</p></body></html>
HTML
cat > "$EXPORT/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$EXPORT/etc/group" <<'G'
root:x:0:
nogroup:x:65534:
G
echo "ferry-root" > "$EXPORT/etc/hostname"
printf '127.0.0.1 localhost\n%s ferry-root\n' "$GUEST_IP" > "$EXPORT/etc/hosts"
printf 'passwd: files\ngroup: files\nhosts: files\n' > "$EXPORT/etc/nsswitch.conf"
rm -f "$EXPORT/sbin/init"
cp "$FERRY_REPO/scripts/root-init.sh" "$EXPORT/sbin/init"
chmod 755 "$EXPORT/sbin/init"

# ---------------------------------------------------------------- d) settings
# transfer.json and the root's /etc/ferry-lab.conf for one NFS version
# (FERRY_NFS_VERSION, default 4.1; root.options from FERRY_NFS_OPTIONS);
# vmlab's TestKernelPath rewrites both per variant without rebuilding.
write_variant "${FERRY_NFS_VERSION:-4.1}" "${FERRY_NFS_OPTIONS:-}"

# ---------------------------------------------------------------- e) disk
# A non-zero pattern everywhere, then an ext4 file system over it (mkfs
# leaves most of the pattern in place); the e2e compares sha256 before/after.
DISK=$LAB/disk.raw
{ yes 'ferry-lab local disk: must never be written. ' || true; } | head -c $((64 << 20)) > "$DISK"
if command -v mkfs.ext4 >/dev/null; then
	mkfs.ext4 -F -q -L ferry-lab-disk -E nodiscard,lazy_itable_init=1 "$DISK"
	echo 'ferry-lab: this file lives on the lent server local disk' > "$WORK/README"
	debugfs -w -R "write $WORK/README README" "$DISK" >/dev/null 2>&1 || true
fi
sha256sum < "$DISK" | cut -d' ' -f1 > "$LAB/disk.sha256"

rm -rf "$WORK/initrd-b-root" "$WORK/initrd-b-early"
log "built in $LAB:"
ls -l "$LAB"/initrd-a.img "$WWW" "$DISK" 2>/dev/null | sed 's/^/  /' >&2 || true
echo "LAB=$LAB"
