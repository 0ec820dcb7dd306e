package agent

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"time"

	"ferry/api"
)

// maxPending bounds the reports kept while the lender is unreachable.
const maxPending = 64

// reporter sends phase reports to the lender manager with the one-time
// certificate. Phases that end before the certificate exists (boot-a ...
// network) wait in pending and go out with the first report after it.
// A report that cannot be delivered never fails the transfer: the console
// line is the record of last resort.
type reporter struct {
	log     *slog.Logger
	client  *api.Client
	lease   *Lease
	pending []api.PhaseReport
}

// connect makes the reporter able to send, from enrollment on.
func (r *reporter) connect(l *Lease, cert tls.Certificate) {
	r.lease = l
	r.client = &api.Client{Base: l.LenderURL, HTTP: &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: lenderTLS(l.CAPin, l.LenderURL, &cert)},
	}}
}

// add queues one finished phase and sends what is queued if it can.
func (r *reporter) add(ctx context.Context, name string, start, end time.Time, bytes int64, err error) {
	p := api.PhaseReport{Phase: name, Start: start.UTC(), End: end.UTC(), Bytes: bytes}
	if err != nil {
		p.Error = oneLine(err.Error())
		if len(p.Error) > 900 {
			p.Error = p.Error[:900]
		}
	}
	if len(r.pending) < maxPending {
		r.pending = append(r.pending, p)
	}
	r.flush(ctx)
}

// flush sends the queued reports in order, stopping at the first failure
// (the next phase retries).
func (r *reporter) flush(ctx context.Context) {
	if r.client == nil {
		return
	}
	for len(r.pending) > 0 {
		p := r.pending[0]
		p.LeaseID, p.ServerID = r.lease.LeaseID, r.lease.ServerID
		if err := r.client.Call(ctx, http.MethodPost, api.PathPhase, p, nil); err != nil {
			r.log.Warn("phase report not delivered; will retry with the next", "phase", p.Phase, "err", err)
			return
		}
		r.pending = r.pending[1:]
	}
}
