package borrower

import (
	"fmt"
	"net/http"
	"sort"
	"sync/atomic"
)

// events counts what happened since this process started; the gauges
// are derived from the store at every scrape and survive restarts.
type events struct {
	imageServed, imageRefused, expired atomic.Int64
}

// handleMetrics writes leases by state and servers by phase, with phase
// durations and bytes, in Prometheus text format, from the store's last
// view of each lease (so a restart does not zero them), then the event
// counters of this process.
func (m *Manager) handleMetrics(w http.ResponseWriter, r *http.Request) {
	ls, err := m.Leases(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	states, phases := map[string]int{}, map[string]int{}
	secs, bytes := map[string]float64{}, map[string]int64{}
	for _, l := range ls {
		states[l.State]++
		if l.State != StateActive {
			continue
		}
		for _, s := range l.Lender.Servers {
			phases[s.Phase]++
			for _, p := range s.Phases {
				secs[p.Phase] += p.End.Sub(p.Start).Seconds()
				bytes[p.Phase] += p.Bytes
			}
		}
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintln(w, "# HELP ferry_borrower_leases Leases by state, from the store.\n# TYPE ferry_borrower_leases gauge")
	for _, st := range []string{StateRequesting, StateActive, StateReturning, StateReturned, StateFailed} {
		states[st] += 0 // every state shows, zero included
	}
	for _, k := range keys(states) {
		fmt.Fprintf(w, "ferry_borrower_leases{state=%q} %d\n", k, states[k])
	}
	fmt.Fprintln(w, "# HELP ferry_borrower_servers Servers of active leases by their last reported phase, from the store.\n# TYPE ferry_borrower_servers gauge")
	for _, k := range keys(phases) {
		fmt.Fprintf(w, "ferry_borrower_servers{phase=%q} %d\n", k, phases[k])
	}
	fmt.Fprintln(w, "# HELP ferry_borrower_phase_seconds_sum Seconds spent in each phase by servers of active leases, from the store.\n# TYPE ferry_borrower_phase_seconds_sum gauge")
	for _, k := range keys(secs) {
		fmt.Fprintf(w, "ferry_borrower_phase_seconds_sum{phase=%q} %g\n", k, secs[k])
	}
	fmt.Fprintln(w, "# HELP ferry_borrower_phase_bytes Bytes moved in each phase by servers of active leases, from the store.\n# TYPE ferry_borrower_phase_bytes gauge")
	for _, k := range keys(bytes) {
		fmt.Fprintf(w, "ferry_borrower_phase_bytes{phase=%q} %d\n", k, bytes[k])
	}
	m.writeEvents(w)
}

func (m *Manager) writeEvents(w http.ResponseWriter) {
	for _, c := range []struct {
		name, help string
		n          *atomic.Int64
	}{
		{"ferry_borrower_image_requests_served_total", "Image B requests served", &m.events.imageServed},
		{"ferry_borrower_image_requests_refused_total", "Image B requests refused (not the virtual IP of a server of an active lease of that image)", &m.events.imageRefused},
		{"ferry_borrower_leases_expired_total", "Leases returned because their end passed", &m.events.expired},
	} {
		fmt.Fprintf(w, "# HELP %s %s since this borrower process started (restarts at 0).\n# TYPE %s counter\n%s %d\n",
			c.name, c.help, c.name, c.name, c.n.Load())
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
