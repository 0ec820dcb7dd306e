#!/usr/bin/env bash
# bench-chain.sh FERRY — issue 10's transfer figures before and after, in
# one run on one machine: the baseline commit (FERRY_BENCH_BASE, default
# 2671f88, main just before issue 10's first commit) checked out into a
# temporary git worktree, its binary built there and its own chain harness
# (scripts/full-e2e.sh at that commit) run with it; then this tree's
# TestFullChain with FERRY. The two alternate, FERRY_BENCH_CHAIN_RUNS (2)
# runs each, every run under the machine's QEMU lock and inside
# scripts/no-survivors.sh. Printed side by side (docs/LAB.md, "make bench"):
# lease request -> root ready, the timeline from the lease request, image
# A's bytes as the lender served them and the agent's own time in A and B.
# Without git history or without the baseline commit it says so and runs
# today's side alone. Called by bench.sh with FERRY_BENCH_CHAIN=1; needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
FERRY=$(realpath "${1:-./ferry}")
BASE=${FERRY_BENCH_BASE:-2671f88}
RUNS=${FERRY_BENCH_CHAIN_RUNS:-2}
LOCK=/tmp/ferry-qemu.lock
# Both sides read the Debian kernel from one cache (the baseline would
# otherwise fetch its own into its worktree).
CACHE=$(realpath -m "${FERRY_CACHE:-$REPO/build/cache}")
TMP=$(mktemp -d /tmp/ferry-bench-chain.XXXXXX)
WT= # the baseline's worktree, once added

# cleanup removes the baseline's worktree (its lab work dirs are in TMP)
# on every exit: a pass, a failure, Ctrl-C.
cleanup() {
	if [ -n "$WT" ]; then
		git -C "$REPO" worktree remove --force "$WT" >/dev/null 2>&1 || true
		git -C "$REPO" worktree prune
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stamp prefixes each line with the host's clock as it arrives.
stamp() {
	local l
	while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done
}

# baseline_build checks the baseline out and builds its binary as its
# Makefile did (static); fails, saying why, when there is no history.
baseline_build() {
	if ! git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
		echo "baseline: skipped: $REPO is no git checkout (a tarball?), so there is no $BASE to run"
		return 1
	fi
	if ! git -C "$REPO" cat-file -e "$BASE^{commit}" 2>/dev/null; then
		echo "baseline: skipped: commit $BASE is not in this repository's history"
		return 1
	fi
	WT=$TMP/base-src
	git -C "$REPO" worktree add --detach -q "$WT" "$BASE"
	(cd "$WT" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$TMP/ferry-base" .)
}

# run_side before|after N: one chain run, its output stamped into
# TMP/SIDE-N.log. The baseline's harness gets only environment: the
# shared kernel cache, a work dir in TMP, its console on stdout
# (FERRY_STREAM=1, the stamps' source) and its run dir kept for the
# lender's log and image A (FERRY_FULL_KEEP=1).
run_side() {
	local out=$TMP/$1-$2.log
	local -a cmd
	if [ "$1" = before ]; then
		cmd=(env FERRY_CACHE="$CACHE" FERRY_LAB_DIR="$TMP/base-lab" FERRY_FULL_KEEP=1 FERRY_STREAM=1
			bash "$WT/scripts/full-e2e.sh" "$TMP/ferry-base")
	else
		cmd=(env FERRY_LAB=1 FERRY_CACHE="$CACHE" FERRY_BIN="$FERRY" FERRY_FULL_KEEP=1 FERRY_STREAM=1
			go test -count=1 -v -timeout 30m -run '^TestFullChain$' ./internal/vmlab/)
	fi
	if ! flock "$LOCK" scripts/no-survivors.sh "${cmd[@]}" </dev/null 2>&1 | stamp >"$out"; then
		echo "chain run $2 ($1) failed:"
		cut -d' ' -f2- "$out" | tail -25
		return 1
	fi
	extract "$out" >"$TMP/$1-$2.kv"
	awk -F'\t' '$1 == "fig" && $2 == "total" {printf "  run %s %-6s lease request -> root ready %s s\n", n, s, $3}' n="$2" s="$1" "$TMP/$1-$2.kv"
}

# lender_at LOG PATTERN: the host time (epoch seconds) of the lender's
# first log line matching PATTERN.
lender_at() {
	local iso
	iso=$(grep -a -m1 -- "$2" "$1" | sed -n 's/^time=\([^ ]*\) .*/\1/p')
	[ -n "$iso" ] || { echo "no '$2' in $1" >&2; return 1; }
	date -d "$iso" +%s.%N
}

# extract LOG prints a run's rows ("row KEY AT TOOK LABEL": seconds from
# the lease request) and figures ("fig KEY VALUE"), tab-separated, from
# the stamped output (the harness's request line, the console's phase
# lines with the agent's own durations, the root's ready line) and the
# lender's log (power-on, iPXE's DHCP, script and files).
extract() {
	local log=$1 dir lender img pon dhcp script files
	dir=$(sed -n 's/.*drives everything; console in \(.*\)\/console\.log).*/\1/p' "$log" | head -1)
	lender=$dir/lender.log
	img=$(sed -n 's/.*"initrd_a": *"\([^"]*\)".*/\1/p' "$dir/lender.json")
	pon=$(lender_at "$lender" 'op=on command=cont')
	dhcp=$(lender_at "$lender" 'dhcp answered.*reply=ACK.*file=http')
	script=$(lender_at "$lender" 'script served')
	files=$(lender_at "$lender" 'file served.*file=initrd')
	printf 'fig\timage-a\t%s\n' "$(stat -c %s "$img")"
	sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\r//g' "$log" |
		awk -v pon="$pon" -v dhcp="$dhcp" -v script="$script" -v files="$files" -f scripts/bench-chain.awk
	# Today's test keeps its run dir only because we asked: remove it.
	case $dir in "$REPO"/build/full-lab/run-*) rm -rf "$dir" ;; esac
}

# table prints the runs' rows and figures side by side (bench-chain.awk's
# aggregation part), the mean of each side's runs.
table() {
	awk -F'\t' -v mode=table -f scripts/bench-chain.awk "$@"
}

echo "== lease request -> root ready, before ($BASE: its own scripts/full-e2e.sh and binary) and after (this tree: TestFullChain), TCG, $RUNS alternating runs each"
base=1
baseline_build || base=
for ((i = 1; i <= RUNS; i++)); do
	[ -z "$base" ] || run_side before "$i"
	run_side after "$i"
done
files=()
# Today's runs first: the timeline's rows take their order from the first
# run read, and a phase the baseline lacks then sits in its place.
for f in "$TMP"/after-*.kv "$TMP"/before-*.kv; do [ -e "$f" ] && files+=("$f"); done
[ ${#files[@]} -eq 0 ] || table "${files[@]}"
