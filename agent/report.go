package agent

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"ferry/api"
)

// maxPending bounds the reports kept while the lender is unreachable.
const maxPending = 64

// reporter sends phase reports to the lender manager with the one-time
// certificate. Phases that end before the certificate exists (boot-a ...
// network) wait in pending and go out with the first report after it.
// Reports go out in order from a goroutine of their own, so the next
// phase does not wait for the lender's answer (a round trip each, and in
// B a TLS handshake: 0.1-0.3 s of "between phases" under TCG); drain
// sends what is left before the hand-over (kexec, the root's init), after
// which nothing can be sent. A report that cannot be delivered never fails
// the transfer: the console line is the record of last resort.
type reporter struct {
	log    *slog.Logger
	client *api.Client
	lease  *Lease
	ctx    context.Context // the run's, for the sender

	mu      sync.Mutex // guards pending
	pending []api.PhaseReport
	sendMu  sync.Mutex    // one sender at a time: the order is kept
	kick    chan struct{} // wakes the sender goroutine; nil before connect
}

// connect makes the reporter able to send, from enrollment on, and
// starts its sender with what is pending.
func (r *reporter) connect(ctx context.Context, l *Lease, cert tls.Certificate) {
	r.lease = l
	r.client = &api.Client{Base: l.LenderURL, HTTP: &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: lenderTLS(l.CAPin, l.LenderURL, &cert)},
	}}
	r.start(ctx)
}

// start runs the sender goroutine; it ends with ctx.
func (r *reporter) start(ctx context.Context) {
	r.ctx = ctx
	r.kick = make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.kick:
				r.flush()
			}
		}
	}()
	r.wake()
}

func (r *reporter) wake() {
	if r.kick == nil {
		return
	}
	select {
	case r.kick <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// add queues one finished phase for the sender.
func (r *reporter) add(_ context.Context, name string, start, end time.Time, bytes int64, err error) {
	p := api.PhaseReport{Phase: name, Start: start.UTC(), End: end.UTC(), Bytes: bytes}
	if err != nil {
		p.Error = oneLine(err.Error())
		if len(p.Error) > 900 {
			p.Error = p.Error[:900]
		}
	}
	r.mu.Lock()
	if len(r.pending) < maxPending {
		r.pending = append(r.pending, p)
	}
	r.mu.Unlock()
	r.wake()
}

// drain sends what is still queued, waiting for a send under way first;
// it stops at the first failure, as flush does.
func (r *reporter) drain() {
	if r.client == nil {
		return
	}
	r.flush()
}

// flush sends the queued reports in order, stopping at the first failure
// (the next report retries).
func (r *reporter) flush() {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	for {
		r.mu.Lock()
		if len(r.pending) == 0 {
			r.mu.Unlock()
			return
		}
		p := r.pending[0]
		r.mu.Unlock()
		p.LeaseID, p.ServerID = r.lease.LeaseID, r.lease.ServerID
		if err := r.client.Call(r.ctx, http.MethodPost, api.PathPhase, p, nil); err != nil {
			r.log.Warn("phase report not delivered; will retry with the next", "phase", p.Phase, "err", err)
			return
		}
		r.mu.Lock()
		r.pending = r.pending[1:]
		r.mu.Unlock()
	}
}
