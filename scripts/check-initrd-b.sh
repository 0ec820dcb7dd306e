#!/usr/bin/env bash
# scripts/check-initrd-b.sh [INITRD] — check image B's initrd, as built by
# build-images.sh (default $LAB/www/initrd-b.img): split it into its
# uncompressed early cpio and its zstd cpio, list both, and verify that the
# main segment's /init and /etc/initrd-b-release are there and that /init's
# sha256 equals the one recorded at build time ($LAB/initrd-b-init.sha256).
# Prints the listing; exits non-zero on any mismatch.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need cpio zstd grep sha256sum
IMG=${1:-$WWW/initrd-b.img}
[ -r "$IMG" ] || die "no $IMG"

# The main segment starts at the first zstd frame magic (28 b5 2f fd).
OFF=$(LC_ALL=C grep -obUaP '\x28\xb5\x2f\xfd' "$IMG" | head -n 1 | cut -d: -f1)
[ -n "$OFF" ] || die "no zstd segment in $IMG"
[ $((OFF % 4)) -eq 0 ] || die "zstd segment at offset $OFF, not 4-aligned"

echo "# early segment (uncompressed, bytes 0..$OFF)"
head -c "$OFF" "$IMG" | cpio -t --quiet
grep -q . <(head -c "$OFF" "$IMG" | cpio -t --quiet | grep -x 'kernel/x86/microcode/GenuineIntel.bin') ||
	die "early segment lacks kernel/x86/microcode/GenuineIntel.bin"

echo "# main segment (zstd, from byte $OFF)"
LIST=$(tail -c +$((OFF + 1)) "$IMG" | zstd -dc | cpio -t --quiet)
echo "$LIST" | grep -c . | sed 's/^/entries: /'
echo "$LIST" | grep -qx init || die "main segment lacks /init"
echo "$LIST" | grep -qx etc/initrd-b-release || die "main segment lacks /etc/initrd-b-release"

GOT=$(tail -c +$((OFF + 1)) "$IMG" | zstd -dc | cpio -i --quiet --to-stdout init | sha256sum | cut -d' ' -f1)
echo "init sha256: $GOT"
if [ -r "$LAB/initrd-b-init.sha256" ]; then
	WANT=$(cat "$LAB/initrd-b-init.sha256")
	[ "$GOT" = "$WANT" ] || die "/init sha256 $GOT != recorded $WANT"
	echo "init sha256 matches the recorded one"
fi
