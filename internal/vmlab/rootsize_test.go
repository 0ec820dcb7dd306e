package vmlab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRootSizes is the whole chain with root templates of each size
// (FERRY_ROOT_SIZES, MB, e.g. "200 2048"), interleaved (200, 2048, 200,
// 2048, ...; FERRY_ROOT_RUNS runs of each, default 2) so that the
// machine's drift under TCG falls on both sizes alike. The template is
// padded with a file of pseudo-random bytes (not sparse: rootprep copies
// every byte on a file system without reflinks, as a borrower's would),
// kept in FERRY_CACHE and hard-linked in. Per run it measures lease
// request -> root ready (the root's console line) and, from lease show,
// when the borrower's copy of the root was ready and how long the server
// waited for it in image A (wait-root): the time the copy sat on the
// critical path. Per size it prints the medians and their ratio, every
// line starting with "root " (make bench, FERRY_BENCH_ROOTS=1, greps
// them). Run with FERRY_LAB=1; not part of make e2e.
func TestRootSizes(t *testing.T) {
	sizes := os.Getenv("FERRY_ROOT_SIZES")
	if sizes == "" {
		t.Skip("set FERRY_ROOT_SIZES (e.g. \"200 2048\", MB) to run")
	}
	requireLab(t, "ganesha.nfsd", "tcpdump", "curl", "unshare", "nft")
	var mbs []int
	for _, f := range strings.Fields(sizes) {
		mb, err := strconv.Atoi(f)
		if err != nil || mb < 1 {
			t.Fatalf("FERRY_ROOT_SIZES=%q: want sizes in MB", sizes)
		}
		mbs = append(mbs, mb)
	}
	runs := 2
	if s := os.Getenv("FERRY_ROOT_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("FERRY_ROOT_RUNS=%q: want a number of runs per size", s)
		}
		runs = n
	}
	repo := Repo(t)
	ferry := labFerry(t, repo)
	im := BuildImages(t, repo, ferry, filepath.Join(repo, "build", "full-lab"))
	pads := map[int]string{}
	for _, mb := range mbs {
		pads[mb] = padFile(t, repo, mb)
	}
	type result struct{ ready, copyReady, copyTook, waited time.Duration }
	got := map[int][]result{}
	for run := 1; run <= runs; run++ {
		for _, mb := range mbs {
			t.Run(fmt.Sprintf("%dMB-run%d", mb, run), func(t *testing.T) {
				pad := filepath.Join(im.Export, "pad.bin")
				os.Remove(pad)
				if err := linkOrCopy(pads[mb], pad); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Remove(pad) })
				dir := filepath.Join(im.Lab, fmt.Sprintf("rootsize-%d-%d-%d", mb, run, os.Getpid()))
				os.RemoveAll(dir)
				keepOnFailure(t, dir, "FERRY_FULL_KEEP")
				c := NewChain(t, ChainConfig{Ferry: ferry, Images: im, Dir: dir})
				t0 := time.Now()
				d := c.Request()
				rs, err := c.rootStates()
				if err != nil || len(rs) == 0 || rs[0].Ready.IsZero() {
					c.Fail("lease show: root states %+v, %v: want the root ready", rs, err)
				}
				r := result{ready: d, copyReady: rs[0].Ready.Sub(t0), copyTook: rs[0].Ready.Sub(rs[0].Started)}
				if !rs[0].Asked.IsZero() && rs[0].Ready.After(rs[0].Asked) {
					r.waited = rs[0].Ready.Sub(rs[0].Asked)
				}
				if _, err := c.Return(context.Background()); err != nil {
					c.Fail("lease return: %v", err)
				}
				got[mb] = append(got[mb], r)
				fmt.Printf("root %5d MB run %d: lease request -> root ready %.1f s; the borrower's copy took %.1f s, ready at +%.1f s, server asked at +%.1f s: on the critical path %.1f s\n",
					mb, run, d.Seconds(), r.copyTook.Seconds(), r.copyReady.Seconds(), rs[0].Asked.Sub(t0).Seconds(), r.waited.Seconds())
			})
		}
	}
	med := func(mb int, f func(result) time.Duration) time.Duration {
		var v []time.Duration
		for _, r := range got[mb] {
			v = append(v, f(r))
		}
		return median(v)
	}
	for _, mb := range mbs {
		if len(got[mb]) == 0 {
			continue
		}
		fmt.Printf("root %5d MB median of %d: lease request -> root ready %.1f s; copy %.1f s; copy on the critical path %.2f s\n",
			mb, len(got[mb]), med(mb, func(r result) time.Duration { return r.ready }).Seconds(),
			med(mb, func(r result) time.Duration { return r.copyTook }).Seconds(),
			med(mb, func(r result) time.Duration { return r.waited }).Seconds())
	}
	first, last := mbs[0], mbs[len(mbs)-1]
	if len(mbs) >= 2 && len(got[first]) > 0 && len(got[last]) > 0 {
		a := med(first, func(r result) time.Duration { return r.ready })
		b := med(last, func(r result) time.Duration { return r.ready })
		ratio := b.Seconds() / a.Seconds()
		within := "yes"
		if ratio > 1.05 || ratio < 0.95 {
			within = "no"
		}
		fmt.Printf("root size ratio of medians (%d MB / %d MB): %.3f; within 5%%: %s\n", last, first, ratio, within)
	}
}

func median(v []time.Duration) time.Duration {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// labRootState is what TestRootSizes reads of lease show's root_states.
type labRootState struct {
	State   string    `json:"state"`
	Started time.Time `json:"started"`
	Ready   time.Time `json:"ready"`
	Asked   time.Time `json:"asked"`
}

// rootStates is lease show's record of each root's preparation.
func (c *Chain) rootStates() ([]labRootState, error) {
	out, err := Run(c.Cfg.Ferry, "borrower", "lease", "show", "--dir", c.bdir, "-o", "json", c.Lease)
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	var v struct {
		RootStates []labRootState `json:"root_states"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		return nil, err
	}
	return v.RootStates, nil
}

// padFile is a file of mb MB of pseudo-random bytes, written once into the
// cache (FERRY_CACHE, default build/cache): 2 GB take a while to generate.
func padFile(t *testing.T, repo string, mb int) string {
	t.Helper()
	cache := os.Getenv("FERRY_CACHE")
	if cache == "" {
		cache = filepath.Join(repo, "build", "cache")
	}
	dir := filepath.Join(cache, "rootsize")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("pad-%dMB.bin", mb))
	if st, err := os.Stat(path); err == nil && st.Size() == int64(mb)<<20 {
		return path
	}
	start := time.Now()
	tmp := path + ".tmp"
	if _, err := writeBigFile(tmp, mb<<20); err != nil {
		os.Remove(tmp)
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	t.Logf("root template padding of %d MB written to the cache in %s", mb, time.Since(start).Round(time.Millisecond))
	return path
}

// linkOrCopy hard-links src at dst, or copies it across file systems.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
