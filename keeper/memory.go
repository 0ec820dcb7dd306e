package keeper

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The root's storage goes through the keeper: the tunnel's IKE (and, in
// user space, its ESP) runs here. Two things the borrower's OS does under
// memory pressure would end the lease, as they would a root-storage daemon
// (iscsid and multipathd guard against both alike):
//   - the OOM killer picks a process to kill, and the keeper is one like
//     any other: killed, nothing keeps the tunnel and the root hangs;
//   - reclaim pages the keeper's memory out to swap, which on this server
//     can only be a file on the NFS root or zram: bringing it back needs
//     the tunnel the keeper would be paged out of, and the keys would
//     cross to the borrower's storage (they stay in RAM).
// HoldInMemory therefore sets the keeper's oom_score_adj to -1000 (never
// chosen) and locks its pages, present and future, in RAM (mlockall) as
// they are faulted in: locking Go's reserved heap up front would make
// 40 MB resident for nothing.

// MemoryHold is what HoldInMemory achieved, as the status reports it.
type MemoryHold struct {
	// OOMScoreAdj is /proc/self/oom_score_adj: -1000, never killed.
	OOMScoreAdj int `json:"oom_score_adj"`
	// Locked: the process's mappings are locked (VmLck of
	// /proc/self/status is not 0; it counts mapped address space, not
	// RAM).
	Locked bool `json:"locked"`
	// ResidentKB is VmRSS: the RAM the keeper holds.
	ResidentKB int64 `json:"resident_kb"`
}

// oomNever is the oom_score_adj that exempts a process from the OOM
// killer.
const oomNever = -1000

// readMemoryHold reads a process's oom_score_adj and locked memory under
// proc/self.
func readMemoryHold(proc string) (MemoryHold, error) {
	return readMemoryHoldOf(filepath.Join(proc, "self"))
}

// readMemoryHoldOf reads them under a process's /proc directory.
func readMemoryHoldOf(dir string) (MemoryHold, error) {
	b, err := os.ReadFile(filepath.Join(dir, "oom_score_adj"))
	if err != nil {
		return MemoryHold{}, err
	}
	adj, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return MemoryHold{}, fmt.Errorf("oom_score_adj %q: %w", b, err)
	}
	f, err := os.Open(filepath.Join(dir, "status"))
	if err != nil {
		return MemoryHold{}, err
	}
	defer f.Close()
	kb, err := statusKB(f, "VmLck", "VmRSS")
	if err != nil {
		return MemoryHold{}, err
	}
	return MemoryHold{OOMScoreAdj: adj, Locked: kb[0] > 0, ResidentKB: kb[1]}, nil
}

// statusKB reads the named fields ("VmLck:   41236 kB") of a
// /proc/PID/status, in kB, in the order asked.
func statusKB(r io.Reader, fields ...string) ([]int64, error) {
	out := make([]int64, len(fields))
	found := 0
	sc := bufio.NewScanner(io.LimitReader(r, 64<<10))
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), ":")
		i := slices.Index(fields, name)
		if !ok || i < 0 {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(v), " ")
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || strings.TrimSpace(unit) != "kB" {
			return nil, fmt.Errorf("%s %q: want a number of kB", name, strings.TrimSpace(v))
		}
		out[i] = n
		found++
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if found != len(fields) {
		return nil, fmt.Errorf("want the fields %v, found %d of them", fields, found)
	}
	return out, nil
}
