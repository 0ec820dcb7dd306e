#!/usr/bin/env bash
# scripts/no-survivors.sh CMD [ARGS...] — runs CMD (a lab script) with a
# fresh FERRY_LAB_RUN tag in its environment, which every process it starts
# inherits (through ip netns exec, unshare, setsid and daemons that fork:
# nfs-ganesha, charon, qemu), and fails when any process carrying the tag is
# still alive once CMD has exited: the lab scripts must end everything they
# start (SIGTERM, then SIGKILL after a grace period, as lib.sh's end_pids).
# Survivors are listed, then killed (SIGKILL) so the next run starts clean.
# Exit status: CMD's when it failed, 1 when it passed but left survivors.
set -uo pipefail
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
GRACE=${FERRY_SURVIVOR_GRACE:-2} # seconds for the last SIGKILLed to be reaped
tag="$(date +%s%N)-$$"

FERRY_LAB_RUN=$tag "$@"
rc=$?

# tagged prints the pids whose environment holds FERRY_LAB_RUN=$tag (one
# grep over every /proc/PID/environ; gone and unreadable ones are skipped).
tagged() {
	grep -lzxF "FERRY_LAB_RUN=$tag" /proc/[0-9]*/environ 2>/dev/null | sed 's|^/proc/\([0-9]*\)/environ$|\1|'
	return 0
}

left=()
for ((i = 0; i < GRACE * 10; i++)); do
	mapfile -t left < <(tagged)
	[ ${#left[@]} -eq 0 ] && break
	sleep 0.1
done
if [ ${#left[@]} -gt 0 ]; then
	echo "no-survivors: $1 left ${#left[@]} process(es) running:" >&2
	ps -o pid=,ppid=,args= -p "$(IFS=,; echo "${left[*]}")" >&2 || true
	kill -9 "${left[@]}" 2>/dev/null || true
	[ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
