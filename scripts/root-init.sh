#!/bin/sh
# scripts/root-init.sh — installed by build-images.sh as /sbin/init of the lab's
# NFS root (busybox sh). ferry's B execs it after switch_root. It checks what
# ferry promised (docs/CONTRACT.md), printing one line per check:
#   ferry-root: check NAME ok|FAIL detail
# The file system type and NFS version it expects under "/" come from
# /etc/ferry-lab.conf, which the lab writes into the export per variant
# (scripts/lib.sh write_variant: nfs4 for 4.x, nfs for 3). It then
# serves /srv on :80 with busybox httpd, prints "ferry-root: ready", waits
# (bounded) for the host to create /poweroff-request in the export, re-checks
# that the keeper survived, and powers off.
#
# A clean shutdown asked by the borrower arrives as a signal from the keeper
# (SIGUSR2, busybox init's power-off signal, which the keeper's "auto" picks
# when PID 1's executable is busybox, as this script's sh is; 38 =
# SIGRTMIN+4, systemd's, is trapped as well).
# The root then goes down in the order of docs/ARCHITECTURE.md step 14: sync,
# unmount what can be unmounted, / read-only, and only then the keeper ends
# (it deletes its IKE SA, so the gateway and the borrower see the server
# leave at once) while a `poweroff -f` loaded beforehand powers off: nothing
# is read from the NFS root once the tunnel is gone.
PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH
WAIT=300   # seconds to wait for /poweroff-request

[ -c /dev/console ] || mount -t devtmpfs devtmpfs /dev 2>/dev/null
grep -q ' /proc proc ' /proc/mounts 2>/dev/null || mount -t proc proc /proc
grep -q ' /sys sysfs ' /proc/mounts || mount -t sysfs sysfs /sys
grep -q ' /dev devtmpfs ' /proc/mounts || mount -t devtmpfs devtmpfs /dev 2>/dev/null
[ -c /dev/console ] && exec </dev/console >/dev/console 2>&1

say() { echo "ferry-root: $*"; }
check() { # NAME ok|FAIL DETAIL...
	n=$1; r=$2; shift 2
	say "check $n $r $*"
}
up() { cut -d' ' -f1 /proc/uptime; }

say "init started as pid $$ (uptime $(up) s)"

# What this variant of the lab expects (root_fstype=nfs|nfs4, nfs_version=,
# and, in the managed chain, foreign_root= and roots_parent=: NFS sources
# this server must not be able to read, see check_foreign below).
root_fstype=; nfs_version=; foreign_root=; roots_parent=; sibling_roots=; peer_vips=
[ -r /etc/ferry-lab.conf ] && . /etc/ferry-lab.conf

# The file system type of the mount that is the root (last " / " entry wins),
# and the NFS version the kernel negotiated (vers= in its options).
rootfs=$(awk '$2 == "/" { t = $3; s = $1; o = $4 } END { print t " " s " " o }' /proc/mounts)
set -- $rootfs
rvers=$(echo ",$3," | sed -n 's/.*,vers=\([^,]*\),.*/\1/p')
vok=0
[ "$rvers" = "$nfs_version" ] && vok=1
# vers=4 lets the kernel pick the minor version.
[ "$nfs_version" = 4 ] && case "$rvers" in 4 | 4.*) vok=1 ;; esac
if [ -z "$root_fstype" ] || [ -z "$nfs_version" ]; then
	check root-fstype FAIL "no root_fstype/nfs_version in /etc/ferry-lab.conf; root is '$1 $2' vers=$rvers"
elif [ "$1" = "$root_fstype" ] && [ $vok = 1 ]; then
	check root-fstype ok "$1 $2 vers=$rvers ($3)"
else
	check root-fstype FAIL "root is '$1 $2' vers=$rvers, want $root_fstype vers=$nfs_version ($3)"
fi

# /run: ferry mounts a tmpfs there in the initramfs and switch_root moves it
# into the new root (systemd's initrd interface); the last mount on /run wins.
runfs=$(awk '$2 == "/run" { t = $3; o = $4 } END { print t " " o }' /proc/mounts)
case "$runfs" in
tmpfs\ *) check run-tmpfs ok "/run is tmpfs (${runfs#tmpfs })" ;;
' ') check run-tmpfs FAIL "nothing mounted on /run (it is the root's directory), want a tmpfs" ;;
*) check run-tmpfs FAIL "/run is '$runfs', want tmpfs" ;;
esac

# The state: settings.json under /ferry/state, on a tmpfs (the mount that
# holds /ferry/state, i.e. the longest mount point prefixing it).
st=$(awk '{ m = $2; if (("/ferry/state/" ~ "^" m "/") || m == "/ferry/state" || m == "/ferry") if (length(m) > length(b)) { b = m; t = $3 } }
	END { print t " " b }' /proc/mounts)
if [ -f /ferry/state/settings.json ]; then
	case "$st" in
	tmpfs\ /ferry*) check state-tmpfs ok "settings.json on $st" ;;
	*) check state-tmpfs FAIL "settings.json present but /ferry/state is on '$st'" ;;
	esac
else
	check state-tmpfs FAIL "no /ferry/state/settings.json (mount: '$st')"
fi

# The lent server's local disks: ferry marks them read-only (docs/ARCHITECTURE.md
# "Design decisions"); the lab always attaches one virtio disk.
n=0; bad=
for d in /sys/block/vd* /sys/block/sd* /sys/block/nvme* /sys/block/hd*; do
	[ -e "$d/ro" ] || continue
	n=$((n + 1))
	[ "$(cat "$d/ro")" = 1 ] || bad="$bad ${d##*/}"
done
if [ $n -eq 0 ]; then check local-disks-ro FAIL "no local disk in /sys/block"
elif [ -n "$bad" ]; then check local-disks-ro FAIL "writable:$bad"
else check local-disks-ro ok "$n disk(s) read-only"; fi

# The keeper: a process whose argv[0] starts with "@ferry", rooted at "/".
find_keeper() {
	for d in /proc/[0-9]*; do
		c=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)
		case "$c" in
		@ferry*) echo "${d#/proc/}"; return 0 ;;
		esac
	done
	return 1
}
check_keeper() { # NAME
	if kp=$(find_keeper); then
		kr=$(readlink "/proc/$kp/root")
		if [ "$kr" = / ]; then
			check "$1" ok "pid $kp '$(tr '\0' ' ' < /proc/$kp/cmdline)' root=$kr"
		else
			check "$1" FAIL "pid $kp root is '$kr', not /"
		fi
	else
		check "$1" FAIL "no process with cmdline @ferry*"
	fi
}
check_keeper keeper

# The keeper proper: the @ferry process whose parent is an @ferry too (the
# supervisor that restarts it, docs/ARCHITECTURE.md "The keeper outlives
# switch_root"); a keeper without a supervisor is the one @ferry process.
keeper_child() {
	for d in /proc/[0-9]*; do
		case "$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)" in @ferry*) ;; *) continue ;; esac
		pp=$(sed -n 's/^PPid:[[:space:]]*//p' "$d/status" 2>/dev/null)
		case "$(tr '\0' ' ' < "/proc/$pp/cmdline" 2>/dev/null)" in
		@ferry*) echo "${d#/proc/}"; return 0 ;;
		esac
	done
	find_keeper
}

# The keeper answers on :7070 (the contract's /status). busybox nc, since
# static busybox wget crashes in a root without glibc's NSS modules.
ks=
for i in 1 2 3 4 5; do
	ks=$(printf 'GET /status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' | nc -w 5 127.0.0.1 7070 2>/dev/null | tr -d '\r' | sed '1,/^$/d')
	[ -n "$ks" ] && break
	sleep 1
done
case "$ks" in
*'"root_fstype":"'"$root_fstype"'"'*) check keeper-status ok "$ks" ;;
'') check keeper-status FAIL "no answer from 127.0.0.1:7070/status" ;;
*) check keeper-status FAIL "unexpected: $ks" ;;
esac

# The borrower exports each root to its own server's tunnel address alone
# (docs/CONTRACT.md "NFS roots"). From here, as root, with the kernel's NFS
# client: mounting our own root again must work (the method works), another
# root must be refused, and the directory above the roots must show no
# root but ours.
# busybox mount passes nfs4 to the kernel with addr= added.
nfs_try() { # SOURCE DIR: mount, print the error on failure
	mkdir -p "$2" && timeout 60 mount -t nfs4 -o "vers=${nfs_version:-4.1},ro,soft,timeo=100,retrans=1" "$1" "$2" 2>&1
}
check_foreign() {
	self=$(awk '$2 == "/" && $3 ~ /^nfs/ { s = $1 } END { print s }' /proc/mounts)
	if ! out=$(nfs_try "$self" /tmp/ferry-self); then
		check foreign-root FAIL "cannot mount our own root $self again, so the refusal below proves nothing: $out"
		return
	fi
	umount /tmp/ferry-self
	if out=$(nfs_try "$foreign_root" /tmp/ferry-foreign); then
		check foreign-root FAIL "mounted $foreign_root, another server's root: $(ls /tmp/ferry-foreign | head -5 | tr '\n' ' ')"
		umount /tmp/ferry-foreign
	else
		check foreign-root ok "refused $foreign_root: ${out:-mount failed} (own root $self mounts)"
	fi
	if [ -n "$roots_parent" ]; then
		if out=$(nfs_try "$roots_parent" /tmp/ferry-parent); then
			# Our own root's name may show: we may reach it.
			seen=$(ls -A /tmp/ferry-parent | grep -vx "${self##*/}" | tr '\n' ' ')
			umount /tmp/ferry-parent
			if [ -n "$seen" ]; then check roots-parent FAIL "$roots_parent shows other roots: $seen"
			else check roots-parent ok "$roots_parent shows no other root"; fi
		else
			check roots-parent ok "refused $roots_parent: $out"
		fi
	fi
}
[ -n "$foreign_root" ] && check_foreign

# A lease of several servers (the lab's sibling_roots=N, peer_vips=): the
# roots of one lease are LEASE-0 .. LEASE-(N-1) under the same directory,
# and each server has its own tunnel address. Run when the host creates
# /cross-check in this root, i.e. once every server of the lease is up and
# exported: each sibling root must be refused, and nothing may answer at
# another server's tunnel address (root's httpd :80, keeper :7070).
check_cross() {
	self=$(awk '$2 == "/" && $3 ~ /^nfs/ { s = $1 } END { print s }' /proc/mounts)
	base=${self%-*} own=${self##*-} j=0
	while [ "$j" -lt "${sibling_roots:-0}" ]; do
		if [ "$j" != "$own" ]; then
			if out=$(nfs_try "$base-$j" /tmp/ferry-sibling); then
				check sibling-root FAIL "mounted $base-$j, another server's root: $(ls /tmp/ferry-sibling | head -5 | tr '\n' ' ')"
				umount /tmp/ferry-sibling
			else
				check sibling-root ok "refused $base-$j: ${out:-mount failed} (own root $self)"
			fi
		fi
		j=$((j + 1))
	done
	for v in $peer_vips; do
		ip -o -4 addr show | grep -q " $v/" && continue
		for port in 80 7070; do
			out=$(printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 nc -w 5 "$v" "$port" 2>&1)
			case "$out" in
			*HTTP*) check peer-address FAIL "$v:$port answered: $(echo "$out" | head -1)" ;;
			*) check peer-address ok "$v:$port unreachable: ${out:-no answer}" ;;
			esac
		done
	done
	say "cross-checks done"
}

if httpd -p 80 -h /srv; then
	say "httpd serving /srv on :80"
else
	check httpd FAIL "busybox httpd did not start"
fi
say "ready (uptime $(up) s)"

# The soak workload (the lab harness internal/vmlab sets soak=1 in
# /etc/ferry-lab.conf and puts /soak/big.in in the root): every 0.5 s a
# record "SEQ UPTIME" appended to /soak/records and fsynced (busybox
# `sync FILE`), which the host reads back for gaps and duplicates; and a
# 50 MB file copied again and again to /soak/big.out and read back from
# the server (caches dropped), its digest appended to /soak/copies, until
# the host creates /soak/copies-stop.
soak_records() {
	n=0
	while :; do
		n=$((n + 1))
		echo "$n $(up)" >>/soak/records
		sync /soak/records
		sleep 0.5
	done
}
soak_copies() {
	i=0
	while :; do
		# The host stops the copies (creates /soak/copies-stop) before
		# its faults, so that a stall it measures is the fault's.
		echo 2 >/proc/sys/vm/drop_caches
		[ -e /soak/copies-stop ] && break
		i=$((i + 1))
		cp /soak/big.in /soak/big.out.tmp && sync /soak/big.out.tmp && mv /soak/big.out.tmp /soak/big.out
		echo 3 >/proc/sys/vm/drop_caches
		echo "$i $(up) $(sha256sum /soak/big.out | cut -d' ' -f1)" >>/soak/copies
		sync /soak/copies
		sleep "${soak_copy_pause:-20}"
	done
	echo "stopped after $((i)) copies" >/soak/copies-stopped
	sync /soak/copies-stopped
}
soak_pids=
if [ "${soak:-0}" = 1 ] && [ -d /soak ]; then
	soak_records & soak_pids=$!
	[ -f /soak/big.in ] && { soak_copies & soak_pids="$soak_pids $!"; }
	say "soak workload started (pids $soak_pids)"
	WAIT=${poweroff_wait:-$WAIT}
fi

# clean_shutdown: the borrower asked the keeper to shut the server down.
clean_shutdown() {
	trap '' USR2 38
	say "clean shutdown requested (uptime $(up) s)"
	[ -n "$soak_pids" ] && kill $soak_pids 2>/dev/null
	check_keeper keeper-alive-at-end
	kp=$(find_keeper)
	sync
	# Children before parents; / stays (read-only below), /proc (the keeper's
	# pid, sysrq) and /dev (the console) too.
	for m in $(awk '$2 != "/" && $2 != "/proc" && $2 != "/dev" { print $2 }' /proc/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	mount -o remount,ro / 2>/dev/null || say "could not remount / read-only"
	sync
	say "root synced and read-only; keeper (pid ${kp:-none}) ends, then power off (uptime $(up) s)"
	# Nothing may be read from the NFS root once the keeper has ended: the
	# poweroff -f that runs then is a copy of busybox on /dev (devtmpfs),
	# chrooted there so that its /var/log/wtmp lookup stays local too, and
	# it is running before the keeper is told (it powers off 1 s later,
	# without syncing: done above). A fifo on /dev times the fallback in
	# this shell's builtins: the kernel's sysrq power off.
	cp /bin/busybox /dev/busybox-ferry && mkfifo /dev/.ferry-wait
	chroot /dev /busybox-ferry poweroff -d 1 -n -f &
	pp=$! n=0
	while [ $n -lt 20000 ] && read -r c </proc/$pp/comm && [ "$c" != busybox-ferry ]; do n=$((n + 1)); done
	[ -n "$kp" ] && kill -TERM "$kp"
	read -t 2 _ <>/dev/.ferry-wait
	echo "ferry-root: poweroff did not act within 2 s; sysrq power off"
	echo o >/proc/sysrq-trigger
}
trap clean_shutdown USR2 38

# Wait for the host. Negative dentries of an NFS root are cached up to
# acdirmax (60 s): drop them each round so a new file shows at once.
i=0 crossed=0
while [ ! -e /poweroff-request ] && [ $i -lt $WAIT ]; do
	if [ $crossed = 0 ] && [ -e /cross-check ]; then crossed=1; check_cross; fi
	# The soak's keeper fault (internal/vmlab/soak_test.go): the host asks,
	# the keeper proper dies of SIGABRT (a Go crash: it prints its
	# goroutines and exits 2), as a fatal error of its own would end it.
	if [ -e /soak/kill-keeper ]; then
		rm -f /soak/kill-keeper
		if kc=$(keeper_child) && kill -ABRT "$kc"; then
			say "keeper child pid $kc killed with SIGABRT (uptime $(up) s)"
		else
			say "keeper child not found or not killed"
		fi
	fi
	sleep 1
	i=$((i + 1))
	echo 2 > /proc/sys/vm/drop_caches 2>/dev/null
done
if [ -e /poweroff-request ]; then
	say "poweroff requested by the host after $i s"
else
	say "no poweroff request within $WAIT s"
fi

check_keeper keeper-alive-at-end
say "powering off (uptime $(up) s)"
sync
poweroff -f
sleep 5
echo o > /proc/sysrq-trigger 2>/dev/null
while :; do sleep 60; done
