package borrower

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/api"
	"ferry/catalog"
	"ferry/gatewayctl"
	"ferry/rootprep"
	"ferry/store"
)

// scriptLender is a lender whose leases a test changes: each lease
// request makes lease L<n> of enrolled servers with pins; GET answers
// the lease as it stands, extend and return change it.
type scriptLender struct {
	mu      sync.Mutex
	leases  map[string]*api.Lease
	end     time.Time   // the end of the next lease
	answers map[int]int // GET's answers by status
	// booting: new leases' servers have not enrolled (no pin yet).
	booting bool
	// waits counts GETs that asked to be held (Prefer), never held here:
	// this lender is one from before held polls.
	waits int
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func pinOf(lease string, i int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s-%d", lease, i)))
	return hex.EncodeToString(h[:])
}

func (f *scriptLender) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, api.PathLeases+"/"), "/")
	l := f.leases[id]
	switch {
	case r.Method == "POST" && r.URL.Path == api.PathLeases:
		var req api.LeaseRequest
		json.NewDecoder(r.Body).Decode(&req)
		id := fmt.Sprintf("L%d", len(f.leases)+1)
		l := &api.Lease{ID: id, State: api.LeaseActive, Created: time.Now(), Expires: f.end}
		for i := range req.Roots {
			sv := api.LeaseServer{ID: fmt.Sprintf("s%d", i), Phase: "enrolled", SPKIPin: pinOf(id, i)}
			if f.booting {
				sv.Phase, sv.SPKIPin = "booting", ""
			}
			l.Servers = append(l.Servers, sv)
		}
		f.leases[id] = l
		api.WriteJSON(w, http.StatusOK, l)
	case l == nil:
		http.Error(w, "no lease", http.StatusNotFound)
	case r.Method == "GET" && rest == "":
		if _, ok := api.PreferWait(r.Header); ok {
			f.waits++
		}
		rec := &statusRecorder{ResponseWriter: w}
		api.WriteTagged(rec, r, l) // as the lender does
		f.answers[rec.status]++
	case r.Method == "POST" && "/"+rest == api.PathExtend:
		var req api.ExtendRequest
		json.NewDecoder(r.Body).Decode(&req)
		l.Expires = req.Until
		api.WriteJSON(w, http.StatusOK, l)
	case r.Method == "POST" && "/"+rest == api.PathReturn:
		l.State, l.Returned = api.LeaseReturned, time.Now()
		api.WriteJSON(w, http.StatusOK, l)
	default:
		http.Error(w, "not here", http.StatusNotFound)
	}
}

func (f *scriptLender) change(id string, fn func(*api.Lease)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.leases[id])
}

// peersOf is the gateway's status: every server of the borrower's
// leases not cut off connected at the tunnel address the borrower gave
// it (a server in conflict too: the machine that won its boot).
type peersOf struct{ m **Manager }

func (p peersOf) Peers(ctx context.Context) ([]Peer, error) {
	ls, err := (*p.m).Leases(ctx)
	var out []Peer
	for _, l := range ls {
		if l.Cut {
			continue
		}
		for i := range l.Lender.Servers {
			if i < len(l.Addrs) {
				out = append(out, Peer{VIP: l.Addrs[i], Pin: pinOf(l.Lender.ID, i)})
			}
		}
	}
	return out, err
}

// imageFiles is a catalogue of image b1, whose files are on disk.
type imageFiles struct{ dir string }

func (c imageFiles) Get(_ context.Context, name string) (catalog.Image, error) {
	if name != "b1" {
		return catalog.Image{}, fmt.Errorf("no image %q", name)
	}
	return catalog.Image{Name: "b1", Added: time.Now(),
		Kernel: catalog.Artifact{File: "vmlinuz", Path: filepath.Join(c.dir, "vmlinuz"), SHA256: "aa"},
		Initrd: catalog.Artifact{File: "initrd.img", Path: filepath.Join(c.dir, "initrd.img"), SHA256: "bb"}}, nil
}

type gateRig struct {
	m      *Manager
	lender *scriptLender
	open   func() // a restart: a new Manager over the same store
}

func newGateRig(t *testing.T) *gateRig {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "template")
	os.MkdirAll(filepath.Join(tmpl, "etc"), 0o755)
	os.WriteFile(filepath.Join(tmpl, "etc", "hostname"), []byte("lent\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("kernel"), 0o644)
	os.WriteFile(filepath.Join(dir, "initrd.img"), []byte("initrd"), 0o644)
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), 0o644)
	fl := &scriptLender{leases: map[string]*api.Lease{}, end: time.Now().Add(time.Hour), answers: map[int]int{}}
	srv := httptest.NewServer(fl)
	t.Cleanup(srv.Close)
	cfg := Config{Dir: filepath.Join(dir, "borrower"), BorrowerCA: ca, TunnelPool: "10.9.8.0/24", NFSServer: "10.9.0.1",
		NFSExport: "/srv/roots", ImageURL: "https://10.9.0.1:9444", Gateway: "192.0.2.1:500", DefaultTemplate: tmpl,
		RootCopies: 2, LenderURL: srv.URL}
	st, err := store.Open(filepath.Join(dir, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rp, err := rootprep.New(RootsDir(cfg.Dir), ArchiveDir(cfg.Dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateRig{lender: fl}
	g.open = func() {
		gw := allowGateway{f: gatewayctl.NewAllowFile(filepath.Join(dir, "allow.jsonl"), nil)}
		m, err := New(cfg, st, imageFiles{dir}, preparer{p: rp}, gw, peersOf{&g.m}, &api.Client{Base: srv.URL, HTTP: http.DefaultClient},
			slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
		if err != nil {
			t.Fatal(err)
		}
		if g.m != nil {
			g.m.Close()
		}
		g.m = m
		t.Cleanup(m.Close)
	}
	g.open()
	return g
}

// lease requests a lease of n servers, refreshes it (its keys allowed)
// and waits for its roots.
func (g *gateRig) lease(t *testing.T, n int) Lease {
	ctx := context.Background()
	l, err := g.m.RequestLease(ctx, Request{Count: n, Image: "b1"})
	if err != nil || l.State != StateActive {
		t.Fatalf("RequestLease = %s, %v; want active", l.State, err)
	}
	if l, err = g.m.Refresh(ctx, l); err != nil || len(l.Pins) != n {
		t.Fatalf("Refresh = %d pins, %v; want %d", len(l.Pins), err, n)
	}
	for _, root := range l.Roots {
		for deadline := time.Now().Add(30 * time.Second); ; {
			if st, _ := g.m.rootState(ctx, root); st.State == RootReady {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("root %s not ready", root)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return l
}

// get is image B's kernel as server i of l asks for it through its tunnel.
func (g *gateRig) get(l Lease, i int) (int, string) {
	// The gateway asked afresh for each request: the gate is under
	// test, not the cache of the gateway's answer.
	g.m.vips.mu.Lock()
	g.m.vips.at = time.Time{}
	g.m.vips.mu.Unlock()
	r := httptest.NewRequest("GET", "/b1/vmlinuz", nil)
	r.RemoteAddr = netip.AddrPortFrom(l.Addrs[i], 40000).String()
	w := httptest.NewRecorder()
	g.m.ImageHandler().ServeHTTP(w, r)
	return w.Code, strings.TrimSpace(w.Body.String())
}

func (g *gateRig) want(t *testing.T, when string, l Lease, i, code int) {
	t.Helper()
	if got, body := g.get(l, i); got != code {
		t.Errorf("%s: server %d of lease %s fetches image B: %d %q, want %d", when, i, l.ID, got, body, code)
	}
}

// TestImageGateFollowsEveryLeaseChangeAtOnce: each change of a lease
// that ends a server's access refuses its next request for image B
// (403), with no poll in between; the changes that keep it keep it.
func TestImageGateFollowsEveryLeaseChangeAtOnce(t *testing.T) {
	ctx := context.Background()
	g := newGateRig(t)
	a := g.lease(t, 2)
	g.want(t, "active", a, 0, 200)
	g.want(t, "active", a, 1, 200)

	// The lender puts server 1 in conflict: the refresh drops its key.
	g.lender.change(a.Lender.ID, func(l *api.Lease) { l.Servers[1].Phase, l.Servers[1].SPKIPin = phaseConflict, "" })
	if _, err := g.m.Refresh(ctx, a); err != nil {
		t.Fatal(err)
	}
	g.want(t, "after the conflict", a, 1, 403)
	g.want(t, "after the other server's conflict", a, 0, 200)

	if _, err := g.m.ExtendLease(ctx, a.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	g.want(t, "extended", a, 0, 200)

	// A restart builds the gate from the store.
	g.open()
	g.want(t, "after a restart", a, 0, 200)
	g.want(t, "after a restart, the server in conflict", a, 1, 403)

	if _, err := g.m.ReturnLease(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	g.want(t, "returned", a, 0, 403)

	// The lender returns a lease on its side: the next refresh ends it.
	b := g.lease(t, 1)
	g.want(t, "active", b, 0, 200)
	g.lender.change(b.Lender.ID, func(l *api.Lease) { l.State = api.LeaseReturned })
	if _, err := g.m.Refresh(ctx, b); err != nil {
		t.Fatal(err)
	}
	g.want(t, "returned at the lender", b, 0, 403)

	// A lease's end refuses its servers from then on, before any poll
	// returns it.
	g.lender.mu.Lock()
	g.lender.end = time.Now().Add(2 * time.Second)
	g.lender.mu.Unlock()
	c := g.lease(t, 1)
	g.want(t, "before its end", c, 0, 200)
	time.Sleep(time.Until(c.Lender.Expires) + 10*time.Millisecond)
	g.want(t, "past its end, not yet returned", c, 0, 403)
	if cl, _ := g.m.Lease(ctx, c.ID); cl.State != StateActive {
		t.Fatalf("lease %s is %s: the test wanted it refused while still active in the store", c.ID, cl.State)
	}
}

// TestRefreshWritesOnlyWhatChanged: a poll that finds the lease as the
// lender last said writes nothing (before, each poll rewrote every
// lease, 1.5 MB of JSON at 1,000 servers); a change at the lender is
// written.
func TestRefreshWritesOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	g := newGateRig(t)
	a := g.lease(t, 2)
	commits := func() uint64 { return g.m.fetch.commits.Load() }
	before := commits()
	for range 3 {
		if _, err := g.m.Refresh(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if n := commits() - before; n != 0 {
		t.Errorf("3 polls of an unchanged lease wrote %d times, want 0", n)
	}
	g.lender.change(a.Lender.ID, func(l *api.Lease) { l.Servers[0].Phase = "booted" })
	before = commits()
	if _, err := g.m.Refresh(ctx, a); err != nil {
		t.Fatal(err)
	}
	if n := commits() - before; n != 1 {
		t.Errorf("a poll after the lender changed a server's phase wrote %d times, want 1", n)
	}
	if got, _ := g.m.Lease(ctx, a.ID); got.Lender.Servers[0].Phase != "booted" {
		t.Errorf("stored phase %q after the poll, want booted", got.Lender.Servers[0].Phase)
	}
}

// TestSyncAsksTheLenderWithTheStoredLeasesETag: Sync's polls of a lease
// the lender has not changed are answered 304 and write nothing; a change
// at the lender is stored at the next poll, and a return there ends the
// servers' access to image B.
func TestSyncAsksTheLenderWithTheStoredLeasesETag(t *testing.T) {
	g := newGateRig(t)
	a := g.lease(t, 2)
	g.m.cfg.PollSeconds = 1
	answers := func(code int) int {
		g.lender.mu.Lock()
		defer g.lender.mu.Unlock()
		return g.lender.answers[code]
	}
	waitUntil := func(what string, f func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !f(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s after 15 s (lender answered %v)", what, g.lender.answers)
			}
		}
	}
	commits, full := g.m.fetch.commits.Load(), answers(http.StatusOK) // the requests' own refresh
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.m.Sync(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitUntil("two polls answered 304", func() bool { return answers(http.StatusNotModified) >= 2 })
	if n := g.m.fetch.commits.Load() - commits; n != 0 {
		t.Errorf("polls answered 304 wrote %d times, want 0", n)
	}
	if n := answers(http.StatusOK) - full; n != 0 {
		t.Errorf("the lender answered %d polls of an unchanged lease in full, want 0", n)
	}
	g.lender.change(a.Lender.ID, func(l *api.Lease) { l.Servers[0].Phase = "booted" })
	waitUntil("the new phase stored", func() bool {
		l, _ := g.m.Lease(context.Background(), a.ID)
		return l.Lender.Servers[0].Phase == "booted"
	})
	g.want(t, "a phase later", a, 0, 200)
	g.lender.change(a.Lender.ID, func(l *api.Lease) { l.State = api.LeaseReturned })
	waitUntil("the lease returned after the lender's return", func() bool {
		l, _ := g.m.Lease(context.Background(), a.ID)
		return l.State == StateReturned
	})
	g.want(t, "returned at the lender", a, 0, 403)
}
