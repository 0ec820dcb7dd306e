package borrower

import (
	"context"
	"net/http"
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ferry/internal/promreg"
)

// DefaultStatusListen is where the borrower serves /metrics and its
// status page when
// status_listen is not set: loopback only, never the image listener that
// lent servers reach through their tunnels.
const DefaultStatusListen = "127.0.0.1:9732"

// events counts what happened since this process started; the gauges
// are derived from the store at every scrape and survive restarts.
type events struct {
	imageServed, imageRefused, expired atomic.Int64
	// Sync's polls of the lender: answered 304 (the lease as stored) or
	// in full.
	pollsUnchanged, pollsChanged atomic.Int64
}

// phaseBuckets: a lent server's phases, from under a second to minutes.
var phaseBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}

// StatusHandler serves the status listener: GET /metrics in the
// Prometheus exposition format and GET / the read-only status page.
func (m *Manager) StatusHandler() http.Handler {
	reg := promreg.New("borrower")
	reg.MustRegister(newCollector(m))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promreg.Handler(reg))
	mux.HandleFunc("GET /{$}", m.handleStatusPage)
	return mux
}

// collector writes leases by state and servers by phase, with phase
// duration histograms and bytes, from the store's last view of each
// lease (so a restart does not zero them), then this process's counters.
type collector struct {
	m                                      *Manager
	leases, servers, phaseSecs, phaseBytes *prometheus.Desc
	imageServed, imageRefused, expired     *prometheus.Desc
	polls                                  *prometheus.Desc
}

func newCollector(m *Manager) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &collector{m: m,
		leases:       d("ferry_borrower_leases", "Leases by state, from the store.", "state"),
		servers:      d("ferry_borrower_servers", "Servers of active leases by their last reported phase, from the store.", "phase"),
		phaseSecs:    d("ferry_borrower_phase_duration_seconds", "Duration of each phase reported by servers of active leases, from the store.", "phase"),
		phaseBytes:   d("ferry_borrower_phase_bytes", "Bytes moved in each phase by servers of active leases, from the store.", "phase"),
		imageServed:  d("ferry_borrower_image_requests_served_total", "Image B requests served since this borrower process started (restarts at 0)."),
		imageRefused: d("ferry_borrower_image_requests_refused_total", "Image B requests refused (not the virtual IP of a server of an active lease of that image) since this borrower process started (restarts at 0)."),
		expired:      d("ferry_borrower_leases_expired_total", "Leases returned because their end passed, since this borrower process started (restarts at 0)."),
		polls:        d("ferry_borrower_lender_polls_total", "Polls of an active lease at the lender by answer: unchanged (304, the lease as stored) or changed, since this borrower process started (restarts at 0).", "answer"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.leases, c.servers, c.phaseSecs, c.phaseBytes, c.imageServed, c.imageRefused, c.expired, c.polls} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ev := &c.m.events
	ch <- prometheus.MustNewConstMetric(c.imageServed, prometheus.CounterValue, float64(ev.imageServed.Load()))
	ch <- prometheus.MustNewConstMetric(c.imageRefused, prometheus.CounterValue, float64(ev.imageRefused.Load()))
	ch <- prometheus.MustNewConstMetric(c.expired, prometheus.CounterValue, float64(ev.expired.Load()))
	ch <- prometheus.MustNewConstMetric(c.polls, prometheus.CounterValue, float64(ev.pollsUnchanged.Load()), "unchanged")
	ch <- prometheus.MustNewConstMetric(c.polls, prometheus.CounterValue, float64(ev.pollsChanged.Load()), "changed")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ls, err := c.m.Leases(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.leases, err)
		return
	}
	states, phases := map[string]int{}, map[string]int{}
	for _, st := range []string{StateRequesting, StateActive, StateReturning, StateReturned, StateFailed} {
		states[st] = 0 // every state shows, zero included
	}
	type hist struct {
		count   uint64
		sum     float64
		buckets map[float64]uint64
	}
	secs, bytes := map[string]*hist{}, map[string]float64{}
	for _, l := range ls {
		states[l.State]++
		if l.State != StateActive {
			continue
		}
		for _, s := range l.Lender.Servers {
			phases[s.Phase]++
			for _, p := range s.Phases {
				h := secs[p.Phase]
				if h == nil {
					h = &hist{buckets: map[float64]uint64{}}
					secs[p.Phase] = h
				}
				d := p.End.Sub(p.Start).Seconds()
				h.count++
				h.sum += d
				for _, b := range phaseBuckets {
					if d <= b {
						h.buckets[b]++
					}
				}
				bytes[p.Phase] += float64(p.Bytes)
			}
		}
	}
	for _, k := range keys(states) {
		ch <- prometheus.MustNewConstMetric(c.leases, prometheus.GaugeValue, float64(states[k]), k)
	}
	for _, k := range keys(phases) {
		ch <- prometheus.MustNewConstMetric(c.servers, prometheus.GaugeValue, float64(phases[k]), k)
	}
	for _, k := range keys(secs) {
		h := secs[k]
		ch <- prometheus.MustNewConstHistogram(c.phaseSecs, h.count, h.sum, h.buckets, k)
		ch <- prometheus.MustNewConstMetric(c.phaseBytes, prometheus.GaugeValue, bytes[k], k)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
