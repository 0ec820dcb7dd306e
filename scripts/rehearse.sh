#!/usr/bin/env bash
# scripts/rehearse.sh — rehearse the lab without the real ferry binary.
# Builds a shell stand-in for ferry's image B (lab/fakeferry + a busybox
# script) appended as an uncompressed cpio segment to initrd(B), and runs
# scripts/e2e.sh with it as "image A" (rdinit=/fake/init). The stand-in
# prints A's phases (read from docs/CONTRACT.md) as fakes (it cannot kexec),
# then does B's work for real, in the contract's order of today: loads
# virtio/NFS modules, marks disks read-only, configures eth0, mounts
# ganesha's export over NFSv4.1, puts settings.json on a tmpfs at /ferry,
# starts a keeper named "@ferry keeper" chrooted into the root, and
# switch_roots to the export's /sbin/init. So a PASS here validates the lab
# (ganesha, root init, e2e checks), not ferry. Needs Go for lab/fakeferry.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need go cpio
S=$FERRY_REPO/scripts
"$S/fetch-kernel.sh" >/dev/null
"$S/lab.sh" down >/dev/null 2>&1 || true
"$S/build-images.sh" >/dev/null 2>&1
load_kernel_env

R=$LAB/work/rehearsal
rm -rf "$R"
mkdir -p "$R/fake/modules"
(cd "$FERRY_REPO/lab/fakeferry" && GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 \
	go build -trimpath -ldflags=-s -o "$R/fake/fakeferry" .)

# Modules with their .modinfo dependencies, leaves first.
declare -A SEEN=()
ORDER=()
add_module() {
	local m=$1 f d
	[ -n "${SEEN[$m]:-}" ] && return 0
	SEEN[$m]=1
	f=$(find "$MODDIR/kernel" -name "$m.ko" -o -name "${m//_/-}.ko" | head -n 1)
	if [ -z "$f" ]; then
		grep -q "/$m.ko" "$MODDIR/modules.builtin" || log "warning: module $m not found"
		return 0
	fi
	for d in $(grep -a -o 'depends=[^[:cntrl:]]*' "$f" | head -n 1 | cut -d= -f2 | tr ',' ' '); do
		add_module "$d"
	done
	cp "$f" "$R/fake/modules/$m.ko"
	ORDER+=("$m")
}
for m in virtio_pci virtio_blk virtio_net nfsv4; do add_module "$m"; done
printf '%s\n' "${ORDER[@]}" > "$R/fake/modules.order"
cp "$FERRY_REPO/docs/CONTRACT.md" "$R/fake/CONTRACT.md"

TRACE="rehearsal-$RANDOM$RANDOM"
sed "s/^\(\s*\)\"cmdline\": \"\(.*\)\",/\1\"cmdline\": \"\2 rdinit=\/ferry\/bin\/init ferry.trace=$TRACE\",/" \
	"$WWW/transfer.json" > "$R/fake/settings.json"

cat > "$R/fake/init" <<INIT
#!/bin/sh
# rehearsal stand-in for ferry's PID 1 (see scripts/rehearse.sh): NOT ferry.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
TRACE=$TRACE
INIT
cat >> "$R/fake/init" <<'INIT'
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
t() { cut -d' ' -f1 /proc/uptime; }
ok() { echo "ferry: phase $1 ok in $(awk -v a="$2" -v b="$(t)" 'BEGIN { printf "%.3fs", b - a }')"; }
die() { echo "ferry: phase $1 failed: $2"; exec sh; }
echo "ferry: REHEARSAL stand-in (scripts/rehearse.sh), not the ferry binary"
for p in $(sed -n 's/^Phases in A: `\(.*\)`.*/\1/p' /fake/CONTRACT.md); do
	echo "ferry: phase $p ok in 0s (fake)"
done
echo "ferry: kexec armed trace=$TRACE"
echo "ferry: phase boot-b ok in $(t)s"
echo "ferry: phase state ok in 0s (fake)"
s=$(t); for m in $(cat /fake/modules.order); do insmod "/fake/modules/$m.ko" || die modules "insmod $m"; done; ok modules $s
s=$(t); for d in /sys/block/vd* /sys/block/sd*; do [ -e "$d" ] && blockdev --setro "/dev/${d##*/}"; done; ok disks-ro $s
s=$(t); i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
ip link set lo up; ip addr add 10.9.0.2/24 dev eth0 && ip link set eth0 up || die network "eth0"; ok network $s
s=$(t); mkdir -p /newroot
/fake/fakeferry mount-nfs 10.9.0.1:/ /newroot vers=4.1,addr=10.9.0.1,clientaddr=10.9.0.2 || die mount-root "nfs4"
ok mount-root $s
s=$(t); mount -t tmpfs -o mode=0700 ferry-state /newroot/ferry && mkdir -p /newroot/ferry/state &&
	cp /fake/settings.json /newroot/ferry/state/settings.json || die place-state "tmpfs"
mount -t proc proc /newroot/proc; mount -t devtmpfs devtmpfs /newroot/dev; ok place-state $s
s=$(t); /fake/fakeferry keeper /newroot "$TRACE" 10.9.0.1:/ >/dev/null || die keeper "start"; ok keeper $s
echo "ferry: phase switch-root ok in 0s (exec follows)"
exec switch_root -c /dev/console /newroot /sbin/init
INIT
chmod 755 "$R/fake/init"

# initrd(B) untouched + padding to 4 bytes + one uncompressed newc segment.
IMG=$LAB/initrd-rehearsal.img
cp "$WWW/initrd-b.img" "$IMG"
pad=$(( (4 - $(stat -c %s "$IMG") % 4) % 4 ))
head -c "$pad" /dev/zero >> "$IMG"
(cd "$R" && find fake | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >> "$IMG"
log "rehearsal initrd: $IMG ($(stat -c %s "$IMG") bytes, ${#ORDER[@]} modules, trace $TRACE)"

FERRY_SKIP_BUILD=1 FERRY_INITRD=$IMG FERRY_APPEND_EXTRA=rdinit=/fake/init exec "$S/e2e.sh"
