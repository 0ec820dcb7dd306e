#!/usr/bin/env bash
# scripts/run-vm.sh — boot the lent server: QEMU inside the lab netns with
# vmlinuz(A) + $LAB/initrd-a.img, ferry.source pointing at the lab's
# transfer.json, a virtio NIC on tap0 (fixed MAC) and $LAB/disk.raw as its
# local disk. Always under `timeout` (a hung QEMU must not hang the lab).
# Returns when the guest powers off (QEMU -no-reboot), with QEMU's status
# (124 = timed out). The serial console goes to $LAB/logs/console.log
# (FERRY_CONSOLE_LOG), and also to the terminal when FERRY_STREAM=1.
#   FERRY_ACCEL       QEMU accelerator (default tcg,thread=multi; see docs/LAB.md)
#   FERRY_VM_TIMEOUT  seconds before the VM is killed (default 900)
#   FERRY_VM_MEM      MiB of guest RAM (default 1024)
#   FERRY_KERNEL      kernel for A (default: the cached Debian vmlinuz)
#   FERRY_INITRD      initrd for A (default $LAB/initrd-a.img)
#   FERRY_APPEND      replaces the whole kernel command line of A
#   FERRY_APPEND_EXTRA  appended to the default command line
# Needs `scripts/lab.sh up` first.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 timeout ip
load_kernel_env

KERNEL=${FERRY_KERNEL:-$VMLINUZ}
INITRD=${FERRY_INITRD:-$LAB/initrd-a.img}
CONSOLE_LOG=${FERRY_CONSOLE_LOG:-$LOGS/console.log}
[ -r "$KERNEL" ] || die "no kernel $KERNEL"
[ -r "$INITRD" ] || die "no initrd $INITRD (scripts/build-images.sh FERRY_BINARY)"
[ -r "$LAB/disk.raw" ] || die "no $LAB/disk.raw (scripts/build-images.sh)"
ip netns list | grep -qw "^$NETNS" || die "no netns $NETNS: run scripts/lab.sh up"

APPEND=${FERRY_APPEND:-"console=ttyS0 quiet ferry.source=http://$HOST_IP:$HTTP_PORT/transfer.json ip=$GUEST_IP:::255.255.255.0:ferry-a:eth0:off"}
APPEND="$APPEND${FERRY_APPEND_EXTRA:+ $FERRY_APPEND_EXTRA}"

mkdir -p "$LOGS" "$PIDS" "$(dirname "$CONSOLE_LOG")"
: > "$CONSOLE_LOG"
if [ "${FERRY_STREAM:-0}" = 1 ]; then
	# stdio and the log file at once; signal=off: Ctrl-C goes to the guest.
	CHARDEV="stdio,id=con0,signal=off,logfile=$CONSOLE_LOG"
	STDIN=/dev/stdin
else
	CHARDEV="file,id=con0,path=$CONSOLE_LOG"
	STDIN=/dev/null
fi

log "kernel=$KERNEL initrd=$INITRD"
log "append=$APPEND"
log "console -> $CONSOLE_LOG"
set +e
ip netns exec "$NETNS" timeout --kill-after=10 "${FERRY_VM_TIMEOUT:-900}" \
	qemu-system-x86_64 \
	-name ferry-lent-server \
	-accel "${FERRY_ACCEL:-tcg,thread=multi}" -cpu max \
	-m "${FERRY_VM_MEM:-1024}" -smp 2 \
	-display none -vga none -monitor none -no-reboot \
	-chardev "$CHARDEV" -serial chardev:con0 \
	-kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND" \
	-netdev tap,id=n0,ifname="$TAP",script=no,downscript=no \
	-device virtio-net-pci,netdev=n0,mac="$GUEST_MAC" \
	-drive file="$LAB/disk.raw",format=raw,if=virtio \
	-pidfile "$PIDS/qemu.pid" \
	<"$STDIN" &
VM=$!
wait "$VM"
RC=$?
set -e
rm -f "$PIDS/qemu.pid"
case $RC in
0) log "guest powered off" ;;
124 | 137) log "error: VM timed out after ${FERRY_VM_TIMEOUT:-900}s" ;;
*) log "error: QEMU exited with status $RC" ;;
esac
exit "$RC"
