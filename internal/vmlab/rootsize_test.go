package vmlab

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRootSizes is the whole chain once per root size (FERRY_ROOT_SIZES,
// MB, default "200 2048"): the root template padded with a file of
// pseudo-random bytes (not sparse: rootprep copies every byte on a file
// system without reflinks, as a borrower's would), then lease request ->
// root ready, and when the borrower finished preparing the root (its
// log). Diskless, the root's size should not show in the transfer: make
// bench (FERRY_BENCH_ROOTS=1) prints both times and their ratio. Run with
// FERRY_LAB=1 and FERRY_ROOT_SIZES set; not part of make e2e.
func TestRootSizes(t *testing.T) {
	sizes := os.Getenv("FERRY_ROOT_SIZES")
	if sizes == "" {
		t.Skip("set FERRY_ROOT_SIZES (e.g. \"200 2048\", MB) to run")
	}
	requireLab(t, "ganesha.nfsd", "tcpdump", "curl", "unshare", "nft")
	repo := Repo(t)
	ferry := labFerry(t, repo)
	var mbs []int
	for _, f := range strings.Fields(sizes) {
		mb, err := strconv.Atoi(f)
		if err != nil || mb < 1 {
			t.Fatalf("FERRY_ROOT_SIZES=%q: want sizes in MB", sizes)
		}
		mbs = append(mbs, mb)
	}
	var ready []time.Duration
	for _, mb := range mbs {
		t.Run(fmt.Sprintf("%dMB", mb), func(t *testing.T) {
			im := BuildImages(t, repo, ferry, filepath.Join(repo, "build", "full-lab"))
			pad := filepath.Join(im.Export, "pad.bin")
			if _, err := writeBigFile(pad, mb<<20); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(pad) })
			dir := filepath.Join(im.Lab, fmt.Sprintf("rootsize-%d-%d", mb, os.Getpid()))
			os.RemoveAll(dir)
			keepOnFailure(t, dir, "FERRY_FULL_KEEP")
			c := NewChain(t, ChainConfig{Ferry: ferry, Images: im, Dir: dir})
			t0 := time.Now()
			d := c.Request()
			prep := loggedAfter(c.path("borrower.log"), "root prepared", t0)
			if _, err := c.Return(context.Background()); err != nil {
				c.Fail("lease return: %v", err)
			}
			ready = append(ready, d)
			fmt.Printf("root %5d MB: lease request -> root ready %.1f s (the borrower's copy of the root done at +%.1f s)\n",
				mb, d.Seconds(), prep.Seconds())
		})
	}
	if len(ready) >= 2 && ready[0] > 0 {
		r := ready[len(ready)-1].Seconds() / ready[0].Seconds()
		within := "yes"
		if r > 1.05 || r < 0.95 {
			within = "no"
		}
		fmt.Printf("root size ratio (%d MB / %d MB): %.3f; within 5%%: %s\n", mbs[len(mbs)-1], mbs[0], r, within)
	}
}

var reLogTime = regexp.MustCompile(`time=(\S+)`)

// loggedAfter is how long after t0 the last log line holding what was
// written (slog's text time=), or -1 s if none is there.
func loggedAfter(path, what string, t0 time.Time) time.Duration {
	f, err := os.Open(path)
	if err != nil {
		return -time.Second
	}
	defer f.Close()
	d := -time.Second
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), what) {
			continue
		}
		if m := reLogTime.FindStringSubmatch(sc.Text()); m != nil {
			if at, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
				d = at.Sub(t0)
			}
		}
	}
	return d
}
