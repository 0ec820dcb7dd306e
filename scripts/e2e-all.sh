#!/usr/bin/env bash
# scripts/e2e-all.sh FERRY_BINARY — scripts/e2e.sh once per NFS version of
# the root (FERRY_NFS_VERSIONS, default "4.1 3"), one after the other, on one
# image build: the kernel cache and the images are built once here, each run
# only rewrites transfer.json and the root's /etc/ferry-lab.conf for its
# version (FERRY_SKIP_BUILD=1). Every variant runs even when an earlier one
# failed; a failed build runs none. Prints each run as e2e.sh does, then the
# timelines side by side and one verdict line per variant; exit status 0
# only when every variant passed. `make e2e` runs this.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
S=$FERRY_REPO/scripts
FERRY=${1:-}
VERSIONS=${FERRY_NFS_VERSIONS:-4.1 3}
[ -n "$FERRY" ] || die "usage: $0 FERRY_BINARY"
FERRY=$(readlink -f "$FERRY")
[ -x "$FERRY" ] || die "ferry binary $FERRY is not executable"
for v in $VERSIONS; do
	nfs_fstype "$v" >/dev/null || die "FERRY_NFS_VERSIONS: '$v' is not 3, 4, 4.0, 4.1 or 4.2"
done

T0=$SECONDS
log "build: kernel cache and images (once for: $VERSIONS)"
"$S/fetch-kernel.sh" >/dev/null
"$S/lab.sh" down >/dev/null 2>&1 || true
"$S/build-images.sh" "$FERRY" >/dev/null
log "build done in $((SECONDS - T0)) s"

declare -A RC TOOK
for v in $VERSIONS; do
	echo
	echo "################ e2e, root over NFS $v"
	t=$SECONDS
	rc=0
	FERRY_SKIP_BUILD=1 FERRY_NFS_VERSION=$v "$S/e2e.sh" "$FERRY" || rc=$?
	RC[$v]=$rc
	TOOK[$v]=$((SECONDS - t))
done

# Timelines side by side, rows in the first variant's order (then any row
# only a later variant has); "-" where a variant lacks the row.
echo
echo "== timelines (guest duration as ferry printed it / host seconds since VM start)"
awk -F'\t' -v versions="$VERSIONS" -v lab="$LAB" '
	BEGIN {
		nv = split(versions, v, " ")
		printf "%-5s %-14s", "image", "phase"
		for (i = 1; i <= nv; i++) printf " %22s", "nfs " v[i]
		printf "\n"
		for (i = 1; i <= nv; i++) {
			f = lab "/e2e-timeline-nfs" v[i] ".tsv"
			delete seen
			while ((getline line < f) > 0) {
				split(line, c, "\t")
				k = c[1] SUBSEP c[2] SUBSEP (++seen[c[1], c[2]])   # a repeated phase keeps its own row
				if (!(k in known)) { known[k] = 1; order[++rows] = k; side[k] = c[1]; ph[k] = c[2] }
				cell[i, k] = (c[3] == "" ? "" : c[3] " ") c[4] "s"
			}
			close(f)
		}
		for (r = 1; r <= rows; r++) {
			k = order[r]
			printf "%-5s %-14s", side[k], ph[k]
			for (i = 1; i <= nv; i++) printf " %22s", ((i, k) in cell ? cell[i, k] : "-")
			printf "\n"
		}
		if (rows == 0) print "  (no timeline)"
	}'

echo
echo "== verdicts"
fails=0
for v in $VERSIONS; do
	r=$LAB/e2e-result-nfs$v.txt
	if [ -r "$r" ]; then
		line=$(grep -E '^(PASS|FAIL) ' "$r" | tail -n 1)
	else
		line="FAIL nfs $v (e2e.sh stopped before its verdict, status ${RC[$v]})"
	fi
	[ "${RC[$v]}" = 0 ] || fails=$((fails + 1))
	printf '  %-8s %4s s  %s\n' "nfs $v" "${TOOK[$v]}" "$line"
done
echo
if [ $fails -eq 0 ]; then
	echo "PASS all ($VERSIONS) in $((SECONDS - T0)) s"
else
	echo "FAIL $fails of $(wc -w <<<"$VERSIONS") variants ($((SECONDS - T0)) s); details above and in $LAB/e2e-result-nfs*.txt"
fi
[ $fails -eq 0 ]
