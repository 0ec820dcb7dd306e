#!/usr/bin/env bash
# scripts/e2e.sh FERRY_BINARY — the whole transfer under QEMU, with checks.
# Builds the kernel cache and images, brings the lab up (and down on exit),
# boots the lent server (image A made by ferry), follows its console and
# prints each `ferry: ...` / `ferry-root: ...` line with the host time since
# the VM started; once the NFS root says `ferry-root: ready` it checks from
# the host side (in the netns) the root's web page and the keeper's /status,
# asks the root to power off (creates $LAB/export/poweroff-request), waits for
# the VM to end, then asserts:
#   every phase of docs/CONTRACT.md shows as `ferry: phase X ok` (A's before
#   `ferry: kexec armed`, B's after), no phase failed, every
#   `ferry-root: check` is ok, initrd(B)'s own /init never ran, and the local
#   disk's sha256 is unchanged;
# prints a timeline and PASS/FAIL with reasons; exit status 0 only on PASS.
# FERRY_DEMO=1 (scripts/demo.sh) also streams the whole console live.
# FERRY_NFS_VERSION (default 4.1) picks the variant: transfer.json's
# root.nfs_version, what the lab serves (3: NFSv3 too, with rpcbind), and the
# root file system type every check expects (nfs for 3, nfs4 otherwise);
# FERRY_NFS_OPTIONS goes to root.options (e.g. port=2049,mountport=20048).
# Other knobs: FERRY_SKIP_BUILD=1 (reuse images; the variant is rewritten
# anyway), FERRY_READY_TIMEOUT (600 s), FERRY_POWEROFF_TIMEOUT (180 s), and
# run-vm.sh's (FERRY_ACCEL, ...). scripts/e2e-all.sh runs every variant.
# Logs stay in $LAB/logs and are copied to $LAB/logs-nfsVERSION at the end;
# the verdict in $LAB/e2e-result.txt and $LAB/e2e-result-nfsVERSION.txt.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need curl sha256sum tail awk
S=$FERRY_REPO/scripts
FERRY=${1:-}
DEMO=${FERRY_DEMO:-0}
READY_TIMEOUT=${FERRY_READY_TIMEOUT:-600}
POWEROFF_TIMEOUT=${FERRY_POWEROFF_TIMEOUT:-180}
CONSOLE=$LOGS/console.log
EVENTS=$LOGS/events.tsv     # host-seconds <TAB> console line, ferry lines only
RESULT=$LAB/e2e-result.txt
NFS_VERSION=${FERRY_NFS_VERSION:-4.1}
NFS_OPTIONS=${FERRY_NFS_OPTIONS:-}
FSTYPE=$(nfs_fstype "$NFS_VERSION") || die "FERRY_NFS_VERSION '$NFS_VERSION': want 3, 4, 4.0, 4.1 or 4.2"
export FERRY_NFS_VERSION=$NFS_VERSION   # lab.sh serves what transfer.json asks for
VARIANT=nfs$NFS_VERSION
# Checks the NFS root's /sbin/init (scripts/root-init.sh) must report as ok.
ROOT_CHECKS="root-fstype run-tmpfs state-tmpfs local-disks-ro keeper keeper-status keeper-alive-at-end"

# ------------------------------------------------------------------ build
if [ "${FERRY_SKIP_BUILD:-0}" != 1 ]; then
	[ -n "$FERRY" ] || die "usage: $0 FERRY_BINARY"
	FERRY=$(readlink -f "$FERRY")
	"$S/fetch-kernel.sh" >/dev/null
	"$S/lab.sh" down >/dev/null 2>&1 || true
	"$S/build-images.sh" "$FERRY" >/dev/null
fi
[ -r "${FERRY_INITRD:-$LAB/initrd-a.img}" ] || die "no initrd A: give the ferry binary"
load_kernel_env
mkdir -p "$LOGS"
rm -f "$EXPORT/poweroff-request" "$RESULT" "$LAB/e2e-result-$VARIANT.txt" "$LAB/e2e-timeline-$VARIANT.tsv"
write_variant "$NFS_VERSION" "$NFS_OPTIONS"
# The root's checking init, current even with FERRY_SKIP_BUILD=1 (rm first:
# in a fresh export sbin/init is busybox's symlink, cp would follow it).
rm -f "$EXPORT/sbin/init"
cp "$S/root-init.sh" "$EXPORT/sbin/init"
chmod 755 "$EXPORT/sbin/init"
log "variant: nfs $NFS_VERSION (root fstype $FSTYPE${NFS_OPTIONS:+, options $NFS_OPTIONS})"
: > "$EVENTS"
: > "$CONSOLE"

# ------------------------------------------------------------------ patch check
# What A does to initrd(B) in RAM, redone on the host with the same binary:
# the original bytes must be an untouched prefix of the patched image, and
# its /init must still be there with the recorded sha256.
PATCH_CHECKS=()
patch_check() {
	local d=$LAB/work/patch-check orig=$WWW/initrd-b.img n got want
	rm -rf "$d"; mkdir -p "$d/x"
	echo "e2e probe" > "$d/probe"
	if ! "$FERRY" initrd patch "$orig" -o "$d/patched.img" --add "$d/probe:/ferry/state/probe" > "$d/patch.log" 2>&1; then
		PATCH_CHECKS+=("FAIL host: ferry initrd patch initrd-b.img: $(tail -n 1 "$d/patch.log")"); return
	fi
	n=$(stat -c %s "$orig")
	if cmp -s -n "$n" "$orig" "$d/patched.img"; then PATCH_CHECKS+=("ok   host: patched initrd(B) keeps the original $n bytes as its prefix")
	else PATCH_CHECKS+=("FAIL host: patched initrd(B) changed the original bytes"); fi
	"$FERRY" initrd ls "$d/patched.img" > "$d/ls.txt" 2>&1 || true
	if grep -Eq '^1 +zstd .* init$' "$d/ls.txt" && grep -q 'ferry/state/probe' "$d/ls.txt"; then
		PATCH_CHECKS+=("ok   host: ferry initrd ls: /init in the zstd segment, probe in the appended one")
	else PATCH_CHECKS+=("FAIL host: ferry initrd ls of the patched image (see $d/ls.txt)"); fi
	want=$(cat "$LAB/initrd-b-init.sha256")
	got=$("$FERRY" initrd extract "$d/patched.img" "$d/x" >/dev/null 2>&1 && sha256sum < "$d/x/init" | cut -d' ' -f1 || true)
	if [ "$got" = "$want" ]; then PATCH_CHECKS+=("ok   host: /init of the patched image has the original sha256")
	else PATCH_CHECKS+=("FAIL host: /init of the patched image: sha256 '$got', want $want"); fi
}
if [ -n "$FERRY" ] && [ -x "$FERRY" ]; then patch_check; fi

# ------------------------------------------------------------------ lab up
cleanup() {
	[ -n "${VM:-}" ] && kill "$VM" 2>/dev/null || true
	"$S/lab.sh" down >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$S/lab.sh" down >/dev/null 2>&1 || true
"$S/lab.sh" up
DISK_BEFORE=$(sha256sum < "$LAB/disk.raw" | cut -d' ' -f1)
MARKER=$(cat "$LAB/export-marker")

# ------------------------------------------------------------------ VM + follower
T0=$EPOCHREALTIME
now() { awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
FERRY_STREAM=0 FERRY_CONSOLE_LOG=$CONSOLE "$S/run-vm.sh" > "$LOGS/run-vm.log" 2>&1 &
VM=$!

# Print ferry's lines as they appear (all lines in demo mode), with host time.
follow() {
	local line t
	tail -n +1 -F --pid="$VM" "$CONSOLE" 2>/dev/null | while IFS= read -r line; do
		line=${line//$'\r'/}
		line=$(printf '%s' "$line" | sed -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g')
		if [[ $line =~ (ferry(-root)?|initrd-b):\ .*|Kernel\ panic.* ]]; then
			t=$(now)
			printf '%s\t%s\n' "$t" "${BASH_REMATCH[0]}" >> "$EVENTS"
			printf '[host %6ss] %s\n' "$t" "${BASH_REMATCH[0]}"
		elif [ "$DEMO" = 1 ]; then
			printf '             %s\n' "$line"
		fi
	done
}
follow &
FOLLOW=$!

has() { grep -aq -E "$1" "$EVENTS"; }
vm_alive() { kill -0 "$VM" 2>/dev/null; }

REASONS=()
fail() { REASONS+=("$*"); }
CHECKS=()
ok() { CHECKS+=("ok   $*"); }
bad() { CHECKS+=("FAIL $*"); fail "$*"; }
for c in "${PATCH_CHECKS[@]}"; do
	case "$c" in ok*) CHECKS+=("$c") ;; *) CHECKS+=("$c"); fail "${c#FAIL }" ;; esac
done

# ------------------------------------------------------------------ wait for ready
deadline=$((SECONDS + READY_TIMEOUT))
while :; do
	if has $'\tferry-root: ready'; then break; fi
	if has 'ferry: .*failed|Kernel panic'; then sleep 3; fail "a failure showed before the root was ready"; break; fi
	if ! vm_alive; then fail "VM ended before 'ferry-root: ready'"; break; fi
	if [ $SECONDS -ge $deadline ]; then fail "no 'ferry-root: ready' within ${READY_TIMEOUT}s"; break; fi
	sleep 0.5
done

TRACE=$(grep -a -o 'ferry: kexec armed trace=[^ ]*' "$EVENTS" | head -n 1 | sed 's/.*trace=//' || true)

# ------------------------------------------------------------------ host-side checks
if has $'\tferry-root: ready' && vm_alive; then
	page=$(in_ns curl -fsS --max-time 10 --retry 3 --retry-all-errors "http://$GUEST_IP/index.html" 2>&1) || true
	if [[ $page == *"$MARKER"* ]]; then ok "host: http://$GUEST_IP/index.html has the export's marker"
	else bad "host: http://$GUEST_IP/index.html lacks marker $MARKER: ${page:0:200}"; fi

	status=$(in_ns curl -fsS --max-time 10 --retry 3 --retry-all-errors "http://$GUEST_IP:7070/status" 2>&1) || true
	echo "$status" > "$LOGS/keeper-status.json"
	if [[ $status =~ \"root_fstype\":\ *\"$FSTYPE\" ]]; then ok "host: keeper /status root_fstype $FSTYPE"
	else bad "host: keeper /status: ${status:0:300}"; fi
	if [ -n "$TRACE" ] && [[ $status =~ \"trace\":\ *\"?$TRACE\"? ]]; then ok "host: keeper /status trace $TRACE (same as A's kexec armed)"
	else bad "host: keeper /status trace is not A's '$TRACE': ${status:0:300}"; fi

	printf 'e2e %s\n' "$(date -u +%FT%TZ)" > "$EXPORT/poweroff-request"
	printf '[host %6ss] host: created %s\n' "$(now)" "$EXPORT/poweroff-request"
fi

# ------------------------------------------------------------------ wait for the end
deadline=$((SECONDS + POWEROFF_TIMEOUT))
while vm_alive && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
if vm_alive; then
	fail "VM still running ${POWEROFF_TIMEOUT}s after the poweroff request: killed"
	kill_pidfile "$PIDS/qemu.pid"
	kill "$VM" 2>/dev/null || true
fi
VM_RC=0
wait "$VM" || VM_RC=$?
VM=
wait "$FOLLOW" 2>/dev/null || true
[ "$VM_RC" = 0 ] || fail "run-vm.sh exited with $VM_RC (124 = timeout; see $LOGS/run-vm.log)"

# ------------------------------------------------------------------ assertions
# Phase lists come from docs/CONTRACT.md so the two cannot drift apart.
contract_phases() {
	sed -n "s/^Phases in $1: \`\(.*\)\`.*/\1/p" "$FERRY_REPO/docs/CONTRACT.md" 2>/dev/null
}
PH_A=$(contract_phases A); PH_A=${PH_A:-boot-a disks-ro modules network settings fetch-b patch-b kexec}
PH_B=$(contract_phases B); PH_B=${PH_B:-boot-b disks-ro modules network mount-root place-state keeper switch-root}

ARMED=$(grep -a -n 'ferry: kexec armed' "$EVENTS" | head -n 1 | cut -d: -f1 || true)
if [ -n "$ARMED" ]; then ok "ferry: kexec armed (line $ARMED, trace=$TRACE)"; else bad "no 'ferry: kexec armed'"; ARMED=999999; fi
phase_line() { # PHASE A|B -> first events line number of `ferry: phase PHASE ok` on that side
	awk -F'\t' -v p="ferry: phase $1 ok" -v side="$2" -v armed="$ARMED" \
		'index($2, p) == 1 && ((side == "A" && NR < armed) || (side == "B" && NR > armed)) { print NR; exit }' "$EVENTS"
}
for p in $PH_A; do
	n=$(phase_line "$p" A)
	if [ -n "$n" ]; then ok "A phase $p (before kexec armed)"; else bad "A phase $p: no 'ferry: phase $p ok' before kexec armed"; fi
done
for p in $PH_B; do
	n=$(phase_line "$p" B)
	if [ -n "$n" ]; then ok "B phase $p (after kexec armed)"; else bad "B phase $p: no 'ferry: phase $p ok' after kexec armed"; fi
done
in_order() { # SIDE PHASES... : the phases that showed came in the contract's order
	local side=$1 p n last=0 bad=
	shift
	for p in "$@"; do
		n=$(phase_line "$p" "$side")
		[ -n "$n" ] || continue
		[ "$n" -gt "$last" ] || bad="$bad $p"
		last=$n
	done
	if [ -z "$bad" ]; then ok "$side phases in the order of docs/CONTRACT.md"
	else bad "$side phases out of the contract's order at:$bad"; fi
}
# shellcheck disable=SC2086
in_order A $PH_A
# shellcheck disable=SC2086
in_order B $PH_B
FIRST_B=$(grep -a -n 'ferry: phase boot-b' "$EVENTS" | head -n 1 | cut -d: -f1 || true)
if [ -n "$FIRST_B" ] && [ "$FIRST_B" -lt "$ARMED" ]; then bad "a B phase shows before kexec armed"; fi
if grep -a -q -E 'ferry: .*failed' "$EVENTS"; then
	bad "failures: $(grep -a -E 'ferry: .*failed' "$EVENTS" | cut -f2 | head -n 3 | tr '\n' ';')"
else ok "no 'ferry: ... failed' line"; fi
if grep -a -q 'Kernel panic' "$CONSOLE"; then bad "kernel panic: $(grep -a -m1 'Kernel panic' "$CONSOLE")"; fi

for c in $ROOT_CHECKS; do
	l=$(grep -a -E "ferry-root: check $c (ok|FAIL)" "$EVENTS" | head -n 1 | cut -f2 || true)
	case "$l" in
	"ferry-root: check $c ok"*) ok "root: ${l#ferry-root: check }" ;;
	"") bad "root: no 'ferry-root: check $c' line" ;;
	*) bad "root: ${l#ferry-root: check }" ;;
	esac
done
# Any other check the root printed as FAIL counts too.
for l in $(grep -a -o 'ferry-root: check [^ ]* FAIL' "$EVENTS" | awk '{ print $3 }' | sort -u); do
	case " $ROOT_CHECKS " in
	*" $l "*) ;;
	*) bad "root: check $l FAIL" ;;
	esac
done

if grep -a -q 'initrd-b: original /init ran' "$CONSOLE"; then bad "initrd(B)'s own /init ran (rdinit= not honoured)"
else ok "initrd(B)'s own /init never ran"; fi
if "$S/check-initrd-b.sh" "$WWW/initrd-b.img" > "$LOGS/check-initrd-b.txt" 2>&1; then
	ok "initrd-b.img as served: /init sha256 $(cat "$LAB/initrd-b-init.sha256" | cut -c1-16)... unchanged"
else bad "initrd-b.img check failed (see $LOGS/check-initrd-b.txt)"; fi

DISK_AFTER=$(sha256sum < "$LAB/disk.raw" | cut -d' ' -f1)
if [ "$DISK_BEFORE" = "$DISK_AFTER" ]; then ok "local disk sha256 unchanged ($DISK_AFTER)"
else bad "local disk changed: $DISK_BEFORE -> $DISK_AFTER"; fi

# ------------------------------------------------------------------ report
# The timeline as TSV (image, phase, guest duration, host seconds), kept per
# variant so that e2e-all.sh can set the variants side by side.
TIMELINE=$LAB/e2e-timeline-$VARIANT.tsv
awk -F'\t' -v armed="$ARMED" '
	{ side = (NR < armed) ? "A" : "B" }
	$2 ~ /^ferry: phase / {
		split($2, w, " "); d = $2; sub(/^.* in /, "", d); if ($2 !~ / ok in /) d = "FAILED"
		printf "%s\t%s\t%s\t%s\n", side, w[3], d, $1 }
	$2 ~ /^ferry: kexec armed/ { printf "%s\t%s\t%s\t%s\n", "A", "(kexec armed)", "", $1 }
	$2 ~ /^ferry-root: init started/ { printf "%s\t%s\t%s\t%s\n", "root", "(init)", "", $1 }
	$2 ~ /^ferry-root: ready/ { printf "%s\t%s\t%s\t%s\n", "root", "(ready)", "", $1 }
	$2 ~ /^ferry-root: powering off/ { printf "%s\t%s\t%s\t%s\n", "root", "(poweroff)", "", $1 }
' "$EVENTS" > "$TIMELINE"
{
	echo
	echo "== timeline, nfs $NFS_VERSION (guest duration as ferry printed it; host seconds since VM start)"
	printf '%-5s %-14s %-14s %10s\n' image phase guest host_s
	awk -F'\t' '{ printf "%-5s %-14s %-14s %10s\n", $1, $2, $3, $4 }' "$TIMELINE"
	echo
	echo "== checks, nfs $NFS_VERSION"
	printf '  %s\n' "${CHECKS[@]}"
	echo
	if [ ${#REASONS[@]} -eq 0 ]; then
		echo "PASS nfs $NFS_VERSION (kernel $KVER, trace=$TRACE, logs in $LAB/logs-$VARIANT)"
	else
		echo "FAIL nfs $NFS_VERSION (kernel $KVER, logs in $LAB/logs-$VARIANT):"
		printf '  - %s\n' "${REASONS[@]}"
	fi
} | tee "$RESULT"
cp "$RESULT" "$LAB/e2e-result-$VARIANT.txt"
# Keep this variant's logs: the next run (another variant) reuses $LOGS.
rm -rf "$LAB/logs-$VARIANT"
cp -a "$LOGS" "$LAB/logs-$VARIANT"
[ ${#REASONS[@]} -eq 0 ]
