# bench-chain.awk — bench-chain.sh's arithmetic (plain POSIX awk).
#
# Default mode: one chain run's stamped output ("EPOCH LINE", escapes and
# CRs removed) in; its timeline rows and figures out, tab-separated:
#   row  SEQ  KEY  AT  TOOK  LABEL   (seconds; AT from the lease request)
#   fig  KEY  VALUE
# The lender's landmarks come as -v pon, dhcp, script, files (epoch
# seconds). Both harnesses print the same console: "ferry: phase NAME ok
# in DURATION" (the agent's own clock), "ferry-root: ready", and
# "lease request -> borrower root ready: N s" (the harness's own figure).
#
# -v mode=table: the .kv files of several runs (named before-N.kv and
# after-N.kv) in; the mean of each side, side by side, out.

# secs converts a Go duration ("2.26s", "805.7ms", "1m3.2s", "12µs").
function secs(d, m) {
	m = 0
	if (d ~ /^[0-9.]+h/) { m += 3600 * (d + 0); sub(/^[0-9.]+h/, "", d) }
	if (d ~ /^[0-9.]+m[0-9]/ || d ~ /^[0-9.]+m$/) { m += 60 * (d + 0); sub(/^[0-9.]+m/, "", d) }
	if (d ~ /ms$/) return m + d / 1000
	if (d ~ /(µs|us)$/) return m + d / 1e6
	if (d ~ /ns$/) return m + d / 1e9
	return m + d
}
function row(key, at, took, label) {
	printf "row\t%d\t%s\t%.3f\t%.3f\t%s\n", ++seq, key, at, took, label
}

mode != "table" && t0 == "" && /drives everything; console in / { t0 = $1 }
mode != "table" && t0 != "" && match($0, /ferry: phase [a-z0-9-]+ ok in [^ ]+/) {
	split(substr($0, RSTART, RLENGTH), f, " ")
	name = f[3]; d = secs(f[6])
	if (name == "boot-b") img = "B"
	if (img == "") img = "A"
	if (seen[img "." name]++) next
	n[img]++; ph[img, n[img]] = name; dur[img, n[img]] = d; end[img, n[img]] = $1
	if (name == "boot-a") { agentA = $1; kA = $1 - d }
	if (name == "kexec") kexec = $1
	if (name == "boot-b") { agentB = $1; kB = $1 - d }
	if (name == "switch-root") sw = $1
}
mode != "table" && ready == "" && /ferry-root: ready/ { ready = $1 }
mode != "table" && /lease request -> borrower root ready: [0-9.]+ s/ {
	match($0, /root ready: [0-9.]+/); total = substr($0, RSTART + 12, RLENGTH - 12)
}

# A's and B's agent phases (after boot-X), the gaps between them, and the
# agent's own time: its span minus the phases that wait on the wire or a
# peer (A: DHCP, enrollment, IKE, the wait for the borrower's root, B's
# download; B: IKE, the NFS mount).
function agent(img, from, to,   i, sum, wait, nm) {
	for (i = 2; i <= n[img]; i++) {
		nm = ph[img, i]
		row(img "." nm, end[img, i] - dur[img, i] - t0, dur[img, i], img " " nm)
		sum += dur[img, i]
		if (nm ~ /^(network|enroll|tunnel-a|wait-root|fetch-b)$/ && img == "A") wait += dur[img, i]
		if (nm ~ /^(tunnel-b|mount-root)$/ && img == "B") wait += dur[img, i]
	}
	row(img ".between", from - t0, to - from - sum, img " between phases (logging, reports)")
	printf "fig\town-%s\t%.3f\n", img, to - from - wait
}

END {
	if (mode == "table") { table(); exit }
	if (t0 == "" || ready == "" || kexec == "" || sw == "" || pon == "" || files == "") {
		print "bench-chain.awk: the run's output lacks a landmark (lease request, phases, ready, lender log)" > "/dev/stderr"
		exit 1
	}
	row("power-on", 0, pon - t0, "request -> power-on (the lender's QMP cont)")
	row("ipxe-dhcp", pon - t0, dhcp - pon, "power-on -> iPXE's DHCP answered")
	row("ipxe-script", dhcp - t0, script - dhcp, "DHCP -> iPXE fetched its script")
	row("ipxe-files", script - t0, files - script, "script -> kernel and initrd(A) fetched")
	row("kernel-a", files - t0, kA - files, "fetched -> kernel A's clock starts (iPXE, decompression)")
	row("A.boot-a", kA - t0, dur["A", 1], "A boot-a: kernel A up to ferry")
	agent("A", agentA, kexec)
	row("kexec-b", kexec - t0, kB - kexec, "kexec -> kernel B's clock starts (A's teardown, purgatory)")
	row("B.boot-b", kB - t0, dur["B", 1], "B boot-b: kernel B up to ferry")
	agent("B", agentB, sw)
	row("root", sw - t0, ready - sw, "switch-root -> the root's init says ready")
	printf "fig\ttotal\t%s\n", total
}

# ---- table mode
mode == "table" {
	side = FILENAME; sub(/.*\//, "", side); sub(/-[0-9]+\.kv$/, "", side)
	if (!((side, FILENAME) in runseen)) { runseen[side, FILENAME] = 1; runs[side]++ }
}
mode == "table" && $1 == "row" {
	k = $3
	if (!(k in order)) { order[k] = $2; label[k] = $6; keys[++nk] = k }
	at[side, k] += $4; took[side, k] += $5; cnt[side, k]++
}
mode == "table" && $1 == "fig" {
	fsum[side, $2] += $3; fv[side, $2, ++fcnt[side, $2]] = $3
}
function mean(s, k) { return cnt[s, k] ? sprintf("%+6.1f s %6.2f s", at[s, k] / cnt[s, k], took[s, k] / cnt[s, k]) : sprintf("%17s", "-") }
function fmean(s, k) { return fcnt[s, k] ? fsum[s, k] / fcnt[s, k] : "" }
# fcell: a side's mean, then each run's value when they differ.
function fcell(s, k, unit, fmt,   i, l, same) {
	if (!fcnt[s, k]) return "-"
	same = 1
	for (i = 1; i <= fcnt[s, k]; i++) {
		l = l (i > 1 ? " " : "") sprintf(fmt, fv[s, k, i])
		if (fv[s, k, i] != fv[s, k, 1]) same = 0
	}
	return sprintf(fmt, fmean(s, k)) unit (same ? "" : " (" l ")")
}
function fig(label, k, unit, fmt,   b, a) {
	b = fmean("before", k); a = fmean("after", k)
	printf "  %-32s %-26s %-26s %s\n", label, fcell("before", k, unit, fmt), fcell("after", k, unit, fmt),
		(b != "" && a != "" && b > 0) ? sprintf("%.2f", a / b) : "-"
}
function table(   i, j, t) {
	# keys in the timeline's order (insertion sort on their sequence)
	for (i = 2; i <= nk; i++)
		for (j = i; j > 1 && order[keys[j - 1]] + 0 > order[keys[j]] + 0; j--) { t = keys[j]; keys[j] = keys[j - 1]; keys[j - 1] = t }
	printf "timeline from the lease request (host clock; mean of %d run(s) before, %d after):\n", runs["before"], runs["after"]
	printf "  %-58s %-17s   %-17s\n", "", "before: at   took", "after: at   took"
	for (i = 1; i <= nk; i++)
		printf "  %-58s %s | %s\n", label[keys[i]], mean("before", keys[i]), mean("after", keys[i])
	printf "  %-32s %-26s %-26s %s\n", "", "before", "after", "after/before"
	fig("lease request -> root ready", "total", " s", "%.1f")
	fig("image A as the lender served it", "image-a", " bytes", "%d")
	fig("agent's own time in A", "own-A", " s", "%.2f")
	fig("agent's own time in B", "own-B", " s", "%.2f")
}
