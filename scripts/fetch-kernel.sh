#!/usr/bin/env bash
# scripts/fetch-kernel.sh — fetch Debian's current amd64 kernel without
# installing it: resolve the versioned package that linux-image-amd64 depends
# on (apt-cache depends), `apt-get download` both .debs into the cache and
# `dpkg -x` the versioned one. Idempotent: skips what is already there.
# Writes $CACHE/kernel.env (KVER, VMLINUZ, MODDIR, KERNEL_ROOT) for the other
# scripts and prints the paths.
#   FERRY_CACHE    cache dir (default build/cache)
#   FERRY_DEB_DIR  optional dir already holding the .debs (used before apt)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need apt-cache apt-get dpkg-deb

META=linux-image-amd64
PKG=$(apt-cache depends "$META" 2>/dev/null |
	awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$PKG" ] || die "cannot resolve the kernel package from 'apt-cache depends $META'"

# The meta package's candidate version, to tell a stale cached .deb from ours.
METAVER=$(apt-cache show --no-all-versions "$META" 2>/dev/null | awk '/^Version:/ { print $2; exit }')
METAVER=${METAVER//:/%3a}

DEBS=$CACHE/debs
mkdir -p "$DEBS"
for p in "$META" "$PKG"; do
	pat="${p}_*.deb"
	[ "$p" = "$META" ] && [ -n "$METAVER" ] && pat="${p}_${METAVER}_*.deb"
	if compgen -G "$DEBS/$pat" >/dev/null; then continue; fi
	if [ -n "${FERRY_DEB_DIR:-}" ] && compgen -G "$FERRY_DEB_DIR/$pat" >/dev/null; then
		cp "$FERRY_DEB_DIR"/$pat "$DEBS/"
		continue
	fi
	log "downloading $p"
	(cd "$DEBS" && apt-get download "$p") || die "apt-get download $p failed"
done
DEB=$(ls "$DEBS/${PKG}"_*.deb | sort -V | tail -n 1)

KERNEL_ROOT=$CACHE/kernel/$PKG
if [ ! -f "$KERNEL_ROOT/.extracted" ]; then
	log "extracting $(basename "$DEB")"
	rm -rf "$KERNEL_ROOT"
	mkdir -p "$KERNEL_ROOT"
	dpkg -x "$DEB" "$KERNEL_ROOT"
	touch "$KERNEL_ROOT/.extracted"
fi

VMLINUZ=$(ls "$KERNEL_ROOT"/boot/vmlinuz-* | head -n 1)
KVER=${VMLINUZ##*/vmlinuz-}
MODDIR=
for d in "$KERNEL_ROOT/lib/modules/$KVER" "$KERNEL_ROOT/usr/lib/modules/$KVER"; do
	[ -d "$d" ] && MODDIR=$d && break
done
[ -n "$MODDIR" ] || die "no modules dir for $KVER under $KERNEL_ROOT"

cat > "$KERNEL_ENV.tmp" <<ENV
# written by scripts/fetch-kernel.sh from $(basename "$DEB")
KVER=$KVER
VMLINUZ=$VMLINUZ
MODDIR=$MODDIR
KERNEL_ROOT=$KERNEL_ROOT
ENV
mv "$KERNEL_ENV.tmp" "$KERNEL_ENV"

echo "KVER=$KVER"
echo "VMLINUZ=$VMLINUZ"
echo "MODDIR=$MODDIR"
echo "KERNEL_ENV=$KERNEL_ENV"
