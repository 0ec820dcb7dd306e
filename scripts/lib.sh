# scripts/lib.sh — shared settings and helpers for ferry's lab scripts.
# Sourced (not run) by the other scripts. Every path derives from two
# directories: the lab work dir (FERRY_LAB_DIR, default build/lab) and the
# download cache (FERRY_CACHE, default build/cache), both under the repo.

FERRY_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB=${FERRY_LAB_DIR:-$FERRY_REPO/build/lab}
CACHE=${FERRY_CACHE:-$FERRY_REPO/build/cache}
mkdir -p "$LAB" "$CACHE"
LAB=$(cd "$LAB" && pwd)
CACHE=$(cd "$CACHE" && pwd)

# Lab topology (one netns, one tap, the host side is the "borrower" server).
NETNS=${FERRY_NETNS:-ferry-lab}
HOST_IP=10.9.0.1
GUEST_IP=10.9.0.2
GUEST_MAC=${FERRY_GUEST_MAC:-52:54:00:fe:77:02}
TAP=tap0
HTTP_PORT=8080

# Layout of the lab dir.
WWW=$LAB/www             # served at http://10.9.0.1:8080/ (image B + settings)
EXPORT=$LAB/export       # the NFS root served by ganesha at pseudo "/"
PIDS=$LAB/pids           # pid files of everything lab.sh/run-vm.sh start
LOGS=$LAB/logs           # ganesha, httpd, console logs
KERNEL_ENV=$CACHE/kernel.env
# The root's expectations, written into the export by write_variant.
ROOT_CONF=$EXPORT/etc/ferry-lab.conf

log()  { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die()  { log "error: $*"; exit 1; }
need() { local c; for c in "$@"; do command -v "$c" >/dev/null 2>&1 || die "missing command: $c (run scripts/ci-deps.sh)"; done; }

# Load KVER, VMLINUZ, MODDIR written by fetch-kernel.sh.
load_kernel_env() {
	[ -r "$KERNEL_ENV" ] || die "no $KERNEL_ENV: run scripts/fetch-kernel.sh first"
	# shellcheck disable=SC1090
	. "$KERNEL_ENV"
	[ -r "$VMLINUZ" ] && [ -d "$MODDIR" ] || die "kernel cache incomplete ($KERNEL_ENV)"
}

# kernel_trouble FILE: print the console lines that report a kernel warning,
# oops, bug or panic (as internal/vmlab's Console.KernelTrouble); status 0
# when there are any. Every lab run fails on them.
kernel_trouble() {
	tr -d '\r\033' <"$1" | grep -aE 'WARNING: |Oops|BUG: |Call Trace:|Kernel panic'
}

in_ns() { ip netns exec "$NETNS" "$@"; }

# Wait (at most $1 seconds) until TCP port $2 listens inside the netns.
wait_port() {
	local limit=$1 port=$2 i
	for ((i = 0; i < limit * 5; i++)); do
		if in_ns ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then return 0; fi
		sleep 0.2
	done
	return 1
}

# end_pids PID...: SIGTERM each, wait up to 5 s for all, then SIGKILL the
# ones left (nfs-ganesha ignores SIGTERM while it is busy), so no run
# leaves a daemon holding ports and locks for the next one.
end_pids() {
	local p i alive
	[ $# -gt 0 ] || return 0
	kill "$@" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		alive=0
		for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && return 0
		sleep 0.1
	done
	kill -9 "$@" 2>/dev/null || true
}

# Ends the process whose pid is in file $1 (if alive) as end_pids does, removes the file.
kill_pidfile() {
	local f=$1 pid
	[ -f "$f" ] || return 0
	pid=$(cat "$f" 2>/dev/null || true)
	[ -z "$pid" ] || end_pids "$pid"
	rm -f "$f"
}

# The NFS version variant of the lab: $1 is transfer.json's root.nfs_version
# (3, 4, 4.0, 4.1, 4.2). Prints the file system type the root must show
# (nfs for v3, nfs4 otherwise); fails on anything else.
nfs_fstype() {
	case "$1" in
	3) echo nfs ;;
	4 | 4.0 | 4.1 | 4.2) echo nfs4 ;;
	*) return 1 ;;
	esac
}

# The NFS version the lab serves when FERRY_NFS_VERSION is not set: the one
# the last write_variant recorded in the export, else 4.1.
lab_nfs_version() {
	local v=
	[ -r "$ROOT_CONF" ] && v=$(sed -n 's/^nfs_version=//p' "$ROOT_CONF")
	echo "${FERRY_NFS_VERSION:-${v:-4.1}}"
}

# write_variant VERSION [OPTIONS] — (re)write what differs between the NFS
# variants of one image build: $WWW/transfer.json (root.nfs_version, and
# root.options) and $ROOT_CONF, which the root's /sbin/init
# (scripts/root-init.sh) reads to know the file system type and version it
# must find under "/". Needs build-images.sh's outputs (vmlinuz-b,
# initrd-b.img, the export). Cheap: TestKernelPath runs it before every boot.
write_variant() {
	local v=$1 opts=${2:-} fstype uniq
	fstype=$(nfs_fstype "$v") || die "nfs version '$v': want 3, 4, 4.0, 4.1 or 4.2"
	[ -r "$WWW/vmlinuz-b" ] && [ -r "$LAB/initrd-b.sha256" ] && [ -d "$EXPORT/etc" ] ||
		die "no images in $LAB: run scripts/build-images.sh first"
	[[ $opts =~ ^[a-z0-9_=,.:/+-]*$ ]] || die "nfs options '$opts': unexpected characters"
	# A fresh NFSv4 client owner per boot (docs/LAB.md: same owner = hang).
	uniq="ferry-lab-$RANDOM$RANDOM"
	cat > "$WWW/transfer.json.tmp" <<JSON
{
  "kernel":  {"url": "vmlinuz-b", "sha256": "$(sha256sum < "$WWW/vmlinuz-b" | cut -d' ' -f1)"},
  "initrd":  {"url": "initrd-b.img", "sha256": "$(cat "$LAB/initrd-b.sha256")"},
  "cmdline": "console=ttyS0 quiet nfs.nfs4_unique_id=$uniq",
  "root": {
    "server": "$HOST_IP", "path": "/", "nfs_version": "$v",
    "options": "$opts", "init": "/sbin/init", "state": "tmpfs"
  }
}
JSON
	mv "$WWW/transfer.json.tmp" "$WWW/transfer.json"
	cat > "$ROOT_CONF.tmp" <<CONF
# written by scripts/lib.sh write_variant: what /sbin/init (root-init.sh) checks
nfs_version=$v
root_fstype=$fstype
CONF
	mv "$ROOT_CONF.tmp" "$ROOT_CONF"
}
