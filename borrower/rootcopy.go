package borrower

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"ferry/store"
)

// The preparation of one lent server's root (RootState.State).
const (
	RootPending = "pending" // the lender made the lease; waiting for a copy slot
	RootCopying = "copying"
	RootReady   = "ready"  // whole, renamed into place and exported (once its server enrolled)
	RootFailed  = "failed" // the copy failed; the server is refused image B
	// RootCancelled: the lease ended before the copy finished; nothing of
	// the partial copy is left.
	RootCancelled = "cancelled"
)

// DefaultRootCopies is how many roots the borrower copies at once when
// root_copies is not set.
const DefaultRootCopies = 2

// RootState is the borrower's record of one root's preparation (store
// table roots, by root name). The copy starts once the lender has made
// the lease and runs while the servers power on and PXE boot: the root's
// size is off the lease's critical path unless its copy outlasts image A.
type RootState struct {
	Root    string    `json:"root"`
	State   string    `json:"state"`
	Started time.Time `json:"started,omitzero"`
	Ready   time.Time `json:"ready,omitzero"`
	// Asked is when the server first asked whether its root was ready
	// (image A's wait-root): from Asked to Ready it waited for the copy.
	Asked time.Time `json:"asked,omitzero"`
	Error string    `json:"error,omitempty"`
	// Copied is the bytes of file data the copy wrote (once ready).
	Copied int64 `json:"copied_bytes,omitempty"`
	// Bytes of Total copied so far: filled in from the running copy for
	// lease show, never stored.
	Bytes int64 `json:"bytes,omitempty"`
	Total int64 `json:"total,omitempty"`
}

// Text is the state as lease show prints it: "copying 37%", "ready".
func (r RootState) Text() string {
	switch {
	case r.State == RootCopying && r.Total > 0:
		return fmt.Sprintf("copying %d%%", min(99, r.Bytes*100/r.Total))
	case r.State == RootFailed:
		return "failed: " + r.Error
	case r.State == RootReady && r.Waited() > 0:
		return fmt.Sprintf("ready (its server waited %s)", r.Waited().Round(100*time.Millisecond))
	case r.State == "":
		return RootPending
	}
	return r.State
}

// Waited is how long the server waited in image A for this root: the
// time its copy sat on the lease's critical path.
func (r RootState) Waited() time.Duration {
	if r.Asked.IsZero() || r.Ready.IsZero() || !r.Ready.After(r.Asked) {
		return 0
	}
	return r.Ready.Sub(r.Asked)
}

// rootCopies runs the root copies: at most cap(slots) at once, each
// cancellable by the return of its lease.
type rootCopies struct {
	slots chan struct{}
	ctx   context.Context // ends when the manager stops
	stop  context.CancelFunc
	wg    sync.WaitGroup
	mu    sync.Mutex
	jobs  map[string]*rootJob // by root name
	// ended holds the leases whose copies a return cancelled: a copy of
	// theirs never starts again, whatever stale record asks for it.
	ended map[string]bool
	// holds counts the image requests held in rootGate per root: a
	// server's requests cost the borrower a goroutine each while held,
	// so only maxRootHolds of them wait.
	holds map[string]int
}

type rootJob struct {
	cancel       context.CancelFunc
	done         chan struct{}
	bytes, total atomic.Int64
}

// newRootCopies bounds the copies to n at once. Copies are bound by the
// disks' bandwidth, not the CPU: N copies at once of roots on the same
// disks take as long in total as one after the other, but each finishes
// N times later, and on rotating disks the seeks between them make the
// total longer still. A few at once keep the disks busy while one file
// system walk waits on metadata; each root still becomes ready in turn.
func newRootCopies(n int) *rootCopies {
	if n < 1 {
		n = DefaultRootCopies
	}
	ctx, stop := context.WithCancel(context.Background())
	return &rootCopies{slots: make(chan struct{}, n), ctx: ctx, stop: stop,
		jobs: map[string]*rootJob{}, ended: map[string]bool{}, holds: map[string]int{}}
}

// maxRootHolds is how many image requests of one root rootGate holds at
// once. Image A's wait-root asks one at a time; a second covers its retry
// arriving while the borrower still holds a request whose connection
// broke. Any more are answered at once: a caller (image A is the
// lender's code) cannot pin the borrower with thousands of HEADs that
// cost it nothing.
const maxRootHolds = 2

// hold takes one of root name's hold slots; ok is false when all are
// taken. release gives it back.
func (c *rootCopies) hold(name string) (release func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holds[name] >= maxRootHolds {
		return nil, false
	}
	c.holds[name]++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.holds[name]--; c.holds[name] <= 0 {
			delete(c.holds, name)
		}
	}, true
}

// holding is how many requests of root name rootGate holds now.
func (c *rootCopies) holding(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.holds[name]
}

// running is the copy of root name in progress, or nil.
func (c *rootCopies) running(name string) *rootJob {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jobs[name]
}

// Close cancels every copy and waits for them: each removes its partial
// copy, and the next start resumes them (Resume).
func (c *rootCopies) Close() {
	c.mu.Lock() // no start between the end of ctx and Wait (startRoots checks it)
	c.stop()
	c.mu.Unlock()
	c.wg.Wait()
}

// rootState reads root name's record; a root never recorded (a lease
// made before roots were copied after the lender's answer) is ready if
// its directory is there, rootprep renaming only whole roots into place.
func (m *Manager) rootState(ctx context.Context, name string) (RootState, error) {
	var r RootState
	err := m.st.View(ctx, func(tx store.Tx) error { return tx.Get(store.Roots, name, &r) })
	if errors.Is(err, store.ErrNotFound) {
		r = RootState{Root: name, State: RootPending}
		if m.roots.Ready(name) {
			r.State = RootReady
		}
		return r, nil
	}
	return r, err
}

// updateRoot changes root name's record inside one transaction.
func (m *Manager) updateRoot(ctx context.Context, name string, fn func(*RootState)) (RootState, error) {
	var r RootState
	err := m.st.Update(ctx, func(tx store.Tx) error {
		if err := tx.Get(store.Roots, name, &r); errors.Is(err, store.ErrNotFound) {
			r = RootState{Root: name, State: RootPending}
			if m.roots.Ready(name) {
				r.State = RootReady
			}
		} else if err != nil {
			return err
		}
		fn(&r)
		r.Bytes, r.Total = 0, 0
		return tx.Put(store.Roots, name, r)
	})
	return r, err
}

// startRoots starts the copy of each root of the active lease l that is
// neither ready nor failed nor being copied. It returns at once.
func (m *Manager) startRoots(l Lease) {
	if l.State != StateActive {
		return
	}
	c := m.copies
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended[l.ID] || c.ctx.Err() != nil {
		return
	}
	for _, name := range l.Roots {
		if c.jobs[name] != nil {
			continue
		}
		ctx, cancel := context.WithCancel(c.ctx)
		job := &rootJob{cancel: cancel, done: make(chan struct{})}
		c.jobs[name] = job
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer close(job.done)
			defer func() {
				c.mu.Lock()
				delete(c.jobs, name)
				c.mu.Unlock()
				cancel()
			}()
			m.copyRoot(ctx, l.ID, l.Template, name, job)
		}()
	}
}

// cancelRoots stops every copy of lease l and waits until each has
// removed its partial copy; none of l's starts again. A root that was not
// whole by then is recorded cancelled, so lease show does not go on
// saying "copying" or "pending" of a returned lease.
func (m *Manager) cancelRoots(ctx context.Context, l Lease) {
	c := m.copies
	c.mu.Lock()
	c.ended[l.ID] = true
	var wait []*rootJob
	for _, name := range l.Roots {
		if j := c.jobs[name]; j != nil {
			j.cancel()
			wait = append(wait, j)
		}
	}
	c.mu.Unlock()
	for _, j := range wait {
		<-j.done
	}
	for _, name := range l.Roots {
		if _, err := m.updateRoot(ctx, name, func(r *RootState) {
			if r.State != RootReady && r.State != RootFailed {
				r.State = RootCancelled
			}
		}); err != nil {
			m.log.Warn("root copy: cancellation not stored", "lease", l.ID, "root", name, "err", err)
		}
	}
}

// copyRoot waits for a copy slot, copies the template into root name and
// records it ready once its export (if its server enrolled) is in place:
// the server is let past wait-root only then.
func (m *Manager) copyRoot(ctx context.Context, lease, template, name string, job *rootJob) {
	r, err := m.rootState(ctx, name)
	if err != nil {
		m.log.Error("root copy: record unreadable", "lease", lease, "root", name, "err", err)
		return
	}
	if r.State == RootReady || r.State == RootFailed {
		return
	}
	select {
	case m.copies.slots <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-m.copies.slots }()
	// The lease's state from the fetch index: decoding the whole lease
	// (1.5 MB at 1,000 servers) per root was a third of the borrower's
	// CPU while a fleet booted.
	x, err := m.fetch.index(ctx)
	if err != nil || x.heads[lease].State != StateActive {
		return // returned (or unreadable) while it waited for a slot
	}
	start := time.Now()
	if _, err := m.updateRoot(ctx, name, func(r *RootState) {
		r.State, r.Started, r.Error = RootCopying, start.UTC(), ""
	}); err != nil {
		m.log.Error("root copy: record not stored", "lease", lease, "root", name, "err", err)
		return
	}
	m.log.Info("root copy started", "lease", lease, "root", name, "template", template)
	_, err = m.roots.Prepare(ctx, template, name, func(done, total int64) {
		job.bytes.Store(done)
		job.total.Store(total)
	})
	if err != nil {
		if ctx.Err() != nil {
			// A return, or the manager stopping: rootprep removed the
			// partial copy; Resume starts it again if the lease is active.
			m.log.Info("root copy cancelled, partial copy removed", "lease", lease, "root", name, "after", time.Since(start).Round(time.Millisecond))
			return
		}
		m.log.Error("root copy failed", "lease", lease, "root", name, "err", err)
		if _, serr := m.updateRoot(context.WithoutCancel(ctx), name, func(r *RootState) {
			r.State, r.Error = RootFailed, err.Error()
		}); serr != nil {
			m.log.Error("root copy: failure not stored", "root", name, "err", serr)
		}
		return
	}
	// The export first (if the server enrolled already), then the record
	// that opens image A's gate: the server never mounts a root that is
	// not exported yet.
	if err := m.syncExports(ctx); err != nil {
		m.log.Error("root ready but not exported; the next sync retries", "lease", lease, "root", name, "err", err)
	}
	r, err = m.updateRoot(context.WithoutCancel(ctx), name, func(r *RootState) {
		r.State, r.Ready, r.Copied = RootReady, time.Now().UTC(), job.bytes.Load()
	})
	if err != nil {
		m.log.Error("root ready: record not stored", "root", name, "err", err)
		return
	}
	m.log.Info("root ready", "lease", lease, "root", name, "copy_took", r.Ready.Sub(start).Round(time.Millisecond),
		"bytes", job.bytes.Load(), "server_waited", r.Waited().Round(time.Millisecond))
}

// rootStates is each root of l as lease show reports it, with the
// progress of the copies running now.
func (m *Manager) rootStates(ctx context.Context, l Lease) ([]RootState, error) {
	var out []RootState
	for _, name := range l.Roots {
		r, err := m.rootState(ctx, name)
		if err != nil {
			return nil, err
		}
		if j := m.copies.running(name); j != nil && r.State == RootCopying {
			r.Bytes, r.Total = j.bytes.Load(), j.total.Load()
		}
		out = append(out, r)
	}
	return out, nil
}

// rootHold is how long an image request of a server whose root is not
// ready waits for it before the answer says "retry": a root that becomes
// ready meanwhile lets the server on at once rather than at its next
// try, and the answer still comes well within image A's 30 s wait for
// response headers.
const rootHold = 10 * time.Second

// rootGate decides whether the server of root name may fetch image B:
// only once its root is ready (copied and exported). The first time a
// server asks is recorded: from then on the copy is on its critical path.
// A root not ready within rootHold gets its state back, not an error.
func (m *Manager) rootGate(ctx context.Context, name string) (RootState, error) {
	r, err := m.rootState(ctx, name)
	if err != nil {
		return r, err
	}
	if r.Asked.IsZero() {
		now := time.Now().UTC()
		if r, err = m.updateRoot(ctx, name, func(r *RootState) {
			if r.Asked.IsZero() {
				r.Asked = now
			}
		}); err != nil {
			return r, err
		}
	}
	if r.State == RootReady || r.State == RootFailed {
		return r, nil
	}
	release, ok := m.copies.hold(name)
	if !ok {
		return m.rootStateNow(ctx, name)
	}
	defer release()
	// Within image_stall_seconds too: the answer's first write must come
	// before it (httpstall).
	hold := time.NewTimer(min(rootHold, m.cfg.imageStall()/2))
	defer hold.Stop()
	// The end of the root's copy wakes the wait (its record is written
	// before done closes); with no copy running (not started yet, as after
	// a restart before Resume) the record is read again each second.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for r.State != RootReady && r.State != RootFailed {
		var done <-chan struct{}
		if j := m.copies.running(name); j != nil {
			done = j.done
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-m.copies.ctx.Done():
			return r, nil
		case <-hold.C:
			return m.rootStateNow(ctx, name)
		case <-done:
		case <-tick.C:
		}
		if r, err = m.rootState(ctx, name); err != nil {
			return r, err
		}
	}
	return r, nil
}

// rootStateNow is root name's record with its running copy's progress.
func (m *Manager) rootStateNow(ctx context.Context, name string) (RootState, error) {
	rs, err := m.rootStates(ctx, Lease{Roots: []string{name}})
	if err != nil {
		return RootState{Root: name}, err
	}
	return rs[0], nil
}
