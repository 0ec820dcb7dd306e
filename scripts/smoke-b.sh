#!/usr/bin/env bash
# scripts/smoke-b.sh — prove that image B boots on its own: the Debian kernel
# with initrd-b.img and rdinit=/init, no ferry, no network; passes when the
# console shows "initrd-b: original /init ran" (bounded by FERRY_SMOKE_TIMEOUT,
# default 180 s; QEMU is killed either way). Console in $LAB/logs/smoke-b.log.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need qemu-system-x86_64 timeout
load_kernel_env
[ -r "$WWW/initrd-b.img" ] || die "no $WWW/initrd-b.img: run scripts/build-images.sh"
mkdir -p "$LOGS"
LOGF=$LOGS/smoke-b.log
: > "$LOGF"
timeout --kill-after=5 "${FERRY_SMOKE_TIMEOUT:-180}" qemu-system-x86_64 \
	-accel "${FERRY_ACCEL:-tcg,thread=multi}" -cpu max -m 512 -smp 2 \
	-display none -vga none -monitor none -no-reboot -nic none \
	-chardev "file,id=con0,path=$LOGF" -serial chardev:con0 \
	-kernel "$VMLINUZ" -initrd "$WWW/initrd-b.img" \
	-append 'console=ttyS0 quiet rdinit=/init' </dev/null &
QEMU=$!
trap 'kill "$QEMU" 2>/dev/null || true' EXIT
start=$SECONDS
while kill -0 "$QEMU" 2>/dev/null; do
	if grep -aq 'initrd-b: original /init ran' "$LOGF"; then
		grep -a -A1 'initrd-b: original /init ran' "$LOGF" | tr -d '\r'
		if trouble=$(kernel_trouble "$LOGF"); then
			echo "smoke-b: FAIL: kernel warnings on the console: $trouble" >&2
			exit 1
		fi
		echo "smoke-b: PASS: image B's own /init ran after $((SECONDS - start)) s"
		exit 0
	fi
	sleep 0.5
done
echo "smoke-b: FAIL: no 'initrd-b: original /init ran' (see $LOGF)" >&2
tail -n 20 "$LOGF" >&2
exit 1
