package borrower

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ferry/api"
	"ferry/catalog"
	"ferry/rootprep"
	"ferry/store"
)

// oneImage is the catalogue of one image B.
type oneImage struct{}

func (oneImage) Get(_ context.Context, name string) (catalog.Image, error) {
	if name != "b1" {
		return catalog.Image{}, errors.New("no such image")
	}
	return catalog.Image{Name: "b1", Kernel: catalog.Artifact{SHA256: "aa"}, Initrd: catalog.Artifact{SHA256: "bb"}}, nil
}

// heldRoots is the real rootprep, with a hook in its progress: a copy can be
// held in the middle (after its first chunk, its partial copy on disk)
// until release or its context ends.
type heldRoots struct {
	preparer
	mu      sync.Mutex
	hold    bool
	started chan string // a held copy is in the middle
	release chan struct{}
}

func (h *heldRoots) Prepare(ctx context.Context, template, name string, progress func(done, total int64)) (string, error) {
	once := false
	return h.preparer.Prepare(ctx, template, name, func(done, total int64) {
		progress(done, total)
		h.mu.Lock()
		hold := h.hold
		h.mu.Unlock()
		if hold && !once && done > 0 && done < total {
			once = true
			h.started <- name
			select {
			case <-h.release:
			case <-ctx.Done():
			}
		}
	})
}

// fakeLender answers the lease request as told, and sees the roots
// directory at that moment.
type fakeLender struct {
	t         *testing.T
	rootsDir  string
	refuse    bool
	mu        sync.Mutex
	rootsSeen []string // entries of the roots directory when the lender was asked
	asked     int
}

func (f *fakeLender) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == "POST" && r.URL.Path == api.PathLeases:
		var req api.LeaseRequest
		json.NewDecoder(r.Body).Decode(&req)
		ents, _ := os.ReadDir(f.rootsDir)
		f.mu.Lock()
		f.asked++
		for _, e := range ents {
			f.rootsSeen = append(f.rootsSeen, e.Name())
		}
		f.mu.Unlock()
		if f.refuse {
			api.WriteError(w, &api.FieldError{Field: "count", Reason: "no free server in the pool"})
			return
		}
		l := api.Lease{ID: "L1", State: api.LeaseActive, Created: time.Now(), Expires: time.Now().Add(time.Hour)}
		for i, root := range req.Roots {
			if root.Path == "" {
				f.t.Errorf("root %d of the lease request has no NFS path", i)
			}
			l.Servers = append(l.Servers, api.LeaseServer{ID: "s" + string(rune('1'+i)), MAC: "52:54:00:00:00:0" + string(rune('1'+i)),
				Phase: "booting", SPKIPin: "pin" + string(rune('1'+i))})
		}
		api.WriteJSON(w, http.StatusOK, l)
	case r.Method == "POST" && r.URL.Path == api.PathLeases+"/L1"+api.PathReturn:
		api.WriteJSON(w, http.StatusOK, api.Lease{ID: "L1", State: api.LeaseReturned})
	default:
		http.Error(w, "not here", http.StatusNotFound)
	}
}

type rig struct {
	m      *Manager
	roots  *heldRoots
	lender *fakeLender
	st     store.Store
	cfg    Config
	tmpl   string
	big    []byte
}

// newRig is a Manager on a real store and a real rootprep in a temporary
// directory, asking a lender on loopback; the template holds a file of
// 2.5 copy chunks of bytes that are not all alike.
func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "template")
	os.MkdirAll(filepath.Join(tmpl, "etc"), 0o755)
	os.WriteFile(filepath.Join(tmpl, "etc", "hostname"), []byte("lent\n"), 0o644)
	big := make([]byte, 160<<20)
	for i := 0; i < len(big); i += 4096 {
		big[i] = byte(i >> 12)
	}
	if err := os.WriteFile(filepath.Join(tmpl, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), 0o644)
	cfg := Config{Dir: filepath.Join(dir, "borrower"), BorrowerCA: ca, TunnelPool: "10.9.8.0/24", NFSServer: "10.9.0.1",
		NFSExport: "/srv/roots", ImageURL: "https://10.9.0.1:9444", Gateway: "192.0.2.1:500", DefaultTemplate: tmpl, RootCopies: 2}
	r := &rig{cfg: cfg, tmpl: tmpl, big: big}
	r.open(t)
	return r
}

// open (again) the manager over the rig's store and roots, as a restart.
func (r *rig) open(t *testing.T) {
	t.Helper()
	rp, err := rootprep.New(RootsDir(r.cfg.Dir), ArchiveDir(r.cfg.Dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.lender == nil {
		r.lender = &fakeLender{t: t, rootsDir: rp.Roots}
		srv := httptest.NewServer(r.lender)
		t.Cleanup(srv.Close)
		r.lender.rootsDir = rp.Roots
		r.st, err = store.Open(filepath.Join(r.cfg.Dir, "store.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.st.Close() })
		r.cfg.LenderURL = srv.URL
	}
	r.roots = &heldRoots{preparer: preparer{p: rp}, started: make(chan string, 4), release: make(chan struct{})}
	m, err := New(r.cfg, r.st, oneImage{}, r.roots, nil, nil, &api.Client{Base: r.cfg.LenderURL, HTTP: http.DefaultClient},
		slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	r.m = m
}

func (r *rig) hold(on bool) {
	r.roots.mu.Lock()
	r.roots.hold = on
	r.roots.mu.Unlock()
}

// midCopy requests a lease of one server and returns once its root's
// copy is held in the middle.
func (r *rig) midCopy(t *testing.T) Lease {
	t.Helper()
	r.hold(true)
	l, err := r.m.RequestLease(context.Background(), Request{Count: 1, Image: "b1"})
	if err != nil {
		t.Fatal(err)
	}
	<-r.roots.started
	return l
}

// entries is what the roots directory holds, hidden temporary copies too.
func (r *rig) entries(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(RootsDir(r.cfg.Dir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func (r *rig) waitRoot(t *testing.T, name, state string) RootState {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := r.m.rootState(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == state {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("root %s is %q after 60 s, want %q", name, st.State, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exported is the roots wantExports would export now.
func (r *rig) exported(t *testing.T) []string {
	t.Helper()
	want, err := r.m.wantExports(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range want {
		out = append(out, e.Name)
	}
	return out
}

// The lender is asked before any root is copied, with each root's NFS
// path; the copies run after its answer, each root is exported only once
// whole, and the copy is the template's bytes.
func TestLenderIsAskedBeforeAnyRootIsCopied(t *testing.T) {
	r := newRig(t)
	r.hold(true)
	l, err := r.m.RequestLease(context.Background(), Request{Count: 2, Image: "b1"})
	if err != nil || l.State != StateActive {
		t.Fatalf("RequestLease = %s, %v; want active", l.State, err)
	}
	if r.lender.asked != 1 || len(r.lender.rootsSeen) != 0 {
		t.Fatalf("when the lender was asked (%d times) the roots directory held %v: want nothing copied yet", r.lender.asked, r.lender.rootsSeen)
	}
	if len(l.Roots) != 2 || l.Roots[0] != l.ID+"-0" || l.Roots[1] != l.ID+"-1" {
		t.Fatalf("roots %v, want %s-0 and %s-1", l.Roots, l.ID, l.ID)
	}
	// Both servers enrolled (pins known): only whole roots are exported.
	<-r.roots.started
	<-r.roots.started
	if got := r.entries(t); len(got) != 2 || got[0][0] != '.' || got[1][0] != '.' {
		t.Fatalf("mid-copy the roots directory holds %v, want two hidden partial copies", got)
	}
	l, _ = r.m.Lease(context.Background(), l.ID)
	l.Pins = []string{"pin1", "pin2"}
	r.m.put(context.Background(), l)
	if got := r.exported(t); len(got) != 0 {
		t.Fatalf("roots being copied are exported: %v", got)
	}
	v, err := r.m.rootStates(context.Background(), l)
	if err != nil || v[0].State != RootCopying || v[0].Total != int64(len(r.big))+5 || v[0].Bytes == 0 {
		t.Fatalf("lease show's root states mid-copy: %+v, %v; want copying with bytes of %d", v, err, len(r.big)+5)
	}
	close(r.roots.release)
	for _, name := range l.Roots {
		st := r.waitRoot(t, name, RootReady)
		if st.Copied != int64(len(r.big))+5 || st.Ready.Before(st.Started) {
			t.Fatalf("root %s ready: %+v", name, st)
		}
		got, err := os.ReadFile(filepath.Join(RootsDir(r.cfg.Dir), name, "big.bin"))
		if err != nil || !bytes.Equal(got, r.big) {
			t.Fatalf("root %s: big.bin differs from the template's (%v)", name, err)
		}
	}
	if got := r.exported(t); len(got) != 2 {
		t.Fatalf("ready roots of enrolled servers exported: %v, want both", got)
	}
}

// A request the lender refuses copies nothing, and nothing is copied
// later either.
func TestRefusedRequestCopiesNothing(t *testing.T) {
	r := newRig(t)
	r.lender.refuse = true
	l, err := r.m.RequestLease(context.Background(), Request{Count: 2, Image: "b1"})
	var fe *api.FieldError
	if !errors.As(err, &fe) || l.State != StateFailed {
		t.Fatalf("RequestLease refused by the lender = %s, %v; want failed and the refusal", l.State, err)
	}
	r.m.Resume(context.Background())
	time.Sleep(200 * time.Millisecond)
	if got := r.entries(t); len(got) != 0 {
		t.Fatalf("a refused lease left %v in the roots directory", got)
	}
}

// A template that is not there refuses the request before the lender is
// asked.
func TestMissingTemplateIsRefusedBeforeTheLender(t *testing.T) {
	r := newRig(t)
	_, err := r.m.RequestLease(context.Background(), Request{Count: 1, Image: "b1", Template: r.tmpl + "-gone"})
	var fe *api.FieldError
	if !errors.As(err, &fe) || fe.Field != "root" || r.lender.asked != 0 {
		t.Fatalf("RequestLease with a missing template = %v (lender asked %d times); want a refusal naming root, the lender not asked", err, r.lender.asked)
	}
}

// A return while a root is being copied stops the copy and removes the
// partial copy; no copy of the lease starts again.
func TestReturnCancelsACopyAndRemovesThePartialRoot(t *testing.T) {
	r := newRig(t)
	l := r.midCopy(t)
	if got := r.entries(t); len(got) != 1 || got[0][0] != '.' {
		t.Fatalf("mid-copy the roots directory holds %v, want one hidden partial copy", got)
	}
	done := make(chan error)
	go func() { _, err := r.m.ReturnLease(context.Background(), l.ID); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("return: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("return did not end while a copy was held: not cancelled")
	}
	if got := r.entries(t); len(got) != 0 {
		t.Fatalf("after the return the roots directory holds %v, want nothing", got)
	}
	l, _ = r.m.Lease(context.Background(), l.ID)
	if rs, err := r.m.rootStates(context.Background(), l); err != nil || len(rs) != 1 || rs[0].Text() != RootCancelled {
		t.Fatalf("after the return lease show's roots are %+v (%v), want one cancelled", rs, err)
	}
	r.m.startRoots(Lease{ID: l.ID, State: StateActive, Roots: l.Roots, Template: r.tmpl}) // a stale record
	if j := r.m.copies.running(l.Roots[0]); j != nil {
		t.Fatal("a stale start of a returned lease started its copy again")
	}
	if got := r.entries(t); l.State != StateReturned || len(got) != 0 {
		t.Fatalf("lease %s, roots directory %v after a stale start: want returned, nothing copied", l.State, got)
	}
}

// A borrower stopped or killed in the middle of a copy starts it again
// from nothing at Resume: the partial copy a kill left is removed, the
// root is never exported before it is whole, and ends up the template's.
func TestRestartMidCopyStartsTheCopyAgain(t *testing.T) {
	r := newRig(t)
	l := r.midCopy(t)
	name := l.Roots[0]
	r.m.Close() // the manager stops mid-copy
	if st, _ := r.m.rootState(context.Background(), name); st.State != RootCopying {
		t.Fatalf("after a stop mid-copy the root's record says %q, want copying", st.State)
	}
	// What a SIGKILL would have left instead: a partial copy.
	partial := filepath.Join(RootsDir(r.cfg.Dir), "."+name+".tmp-4242")
	os.MkdirAll(filepath.Join(partial, "etc"), 0o755)
	os.WriteFile(filepath.Join(partial, "big.bin"), r.big[:1<<20], 0o644)
	l.Pins = []string{"pin1"}
	r.m.put(context.Background(), l)

	r.open(t)
	if got := r.exported(t); len(got) != 0 {
		t.Fatalf("a partial root is exported after the restart: %v", got)
	}
	r.m.Resume(context.Background())
	r.waitRoot(t, name, RootReady)
	got, err := os.ReadFile(filepath.Join(RootsDir(r.cfg.Dir), name, "big.bin"))
	if err != nil || !bytes.Equal(got, r.big) {
		t.Fatalf("root after the restarted copy: big.bin differs from the template's (%v)", err)
	}
	if ents := r.entries(t); len(ents) != 1 || ents[0] != name {
		t.Fatalf("roots directory after the restarted copy: %v, want only %s", ents, name)
	}
	if got := r.exported(t); len(got) != 1 {
		t.Fatalf("the whole root is not exported: %v", got)
	}
}

// The gate: a server asking while its root is copied is held and told
// the state; the first ask is recorded, and a ready root opens at once.
func TestRootGateRecordsTheAskAndOpensWhenReady(t *testing.T) {
	r := newRig(t)
	l := r.midCopy(t)
	name := l.Roots[0]
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	st, err := r.m.rootGate(ctx, name)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || st.State == RootReady {
		t.Fatalf("gate while copying = %+v, %v; want held until the request's end", st, err)
	}
	asked, _ := r.m.rootState(context.Background(), name)
	if asked.Asked.IsZero() {
		t.Fatal("the server's first ask is not recorded")
	}
	go func() { time.Sleep(300 * time.Millisecond); close(r.roots.release) }()
	st, err = r.m.rootGate(context.Background(), name)
	if err != nil || st.State != RootReady || !st.Asked.Equal(asked.Asked) || st.Waited() < 300*time.Millisecond {
		t.Fatalf("gate after the copy = %+v, %v; want ready, the first ask kept, a wait of at least 300ms", st, err)
	}
}

// What image A's wait-root gets: 503, Retry-After and the root's state
// while it is copied (after a hold shorter than image_stall_seconds),
// then 200; a root whose copy failed gets 500 naming why.
func TestImageGateAnswers503WhileCopyingAnd500WhenTheCopyFailed(t *testing.T) {
	r := newRig(t)
	r.m.cfg.ImageStallSeconds = 1 // the hold is half of it
	l := r.midCopy(t)
	// head is the gate's answer; Code 0 when it let the request through
	// to image B (it wrote nothing).
	head := func(name string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		if r.m.rootOpen(w, httptest.NewRequest("HEAD", "/b1/vmlinuz", nil), name) {
			if w.Body.Len() != 0 || len(w.Header()) != 0 {
				t.Fatalf("the gate let the request through and still answered %d %q", w.Code, w.Body.String())
			}
			w.Code = 0
		}
		return w
	}
	start := time.Now()
	w := head(l.Roots[0])
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" ||
		!strings.HasPrefix(w.Header().Get(api.HeaderRootState), "copying ") {
		t.Fatalf("while copying: %d, Retry-After %q, %s %q; want 503, 1, copying N%%", w.Code, w.Header().Get("Retry-After"),
			api.HeaderRootState, w.Header().Get(api.HeaderRootState))
	}
	if held := time.Since(start); held < 400*time.Millisecond || held > 5*time.Second {
		t.Fatalf("held %s, want about half of image_stall_seconds (1 s)", held)
	}
	close(r.roots.release)
	r.waitRoot(t, l.Roots[0], RootReady)
	if w := head(l.Roots[0]); w.Code != 0 {
		t.Fatalf("a ready root: status %d, want the request let through", w.Code)
	}

	// A template the copy refuses (a socket in it): the root fails, and
	// its server is told so instead of waiting for ever.
	sock := filepath.Join(r.tmpl, "run.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r.hold(false)
	l2, err := r.m.RequestLease(context.Background(), Request{Count: 1, Image: "b1"})
	if err != nil {
		t.Fatal(err)
	}
	st := r.waitRoot(t, l2.Roots[0], RootFailed)
	// Why is the borrower's to read (lease show: the record), not the
	// caller's: image A is the lender's code, and the reason names the
	// borrower's template and its files.
	if w := head(l2.Roots[0]); w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "failed") ||
		strings.Contains(w.Body.String(), r.tmpl) || !strings.Contains(st.Error, "socket") {
		t.Fatalf("a failed root: %d %q, want 500 saying it failed without the template's path (record: %s, naming the socket)", w.Code, w.Body.String(), st.Error)
	}
	if got := r.entries(t); len(got) != 1 || got[0] != l.Roots[0] {
		t.Fatalf("the failed copy left %v in the roots directory", got)
	}
}

// An authorised caller cannot pin the borrower with held requests: past
// maxRootHolds held at once for one root, the gate answers at once (503
// with the state) instead of holding each for up to 10 s.
func TestRootGateHoldsOnlyAFewRequestsOfARoot(t *testing.T) {
	r := newRig(t)
	r.m.cfg.ImageStallSeconds = 60 // a hold of rootHold (10 s)
	l := r.midCopy(t)
	name := l.Roots[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{}, maxRootHolds)
	for range maxRootHolds {
		go func() { r.m.rootGate(ctx, name); done <- struct{}{} }()
	}
	for deadline := time.Now().Add(10 * time.Second); r.m.copies.holding(name) < maxRootHolds; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests held, want %d", r.m.copies.holding(name), maxRootHolds)
		}
	}
	// A hold of 10 s against a request that gives up after 5 s: held, it
	// ends in the request's deadline; answered at once, it does not.
	extra, cancelExtra := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelExtra()
	st, err := r.m.rootGate(extra, name)
	if err != nil || st.State != RootCopying {
		t.Fatalf("request past %d held ones: %+v, %v; want the copying state at once", maxRootHolds, st, err)
	}
	cancel()
	for range maxRootHolds {
		<-done
	}
	if n := r.m.copies.holding(name); n != 0 {
		t.Fatalf("%d holds left after their requests ended", n)
	}
}
