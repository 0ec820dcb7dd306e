package borrower

import (
	"fmt"
	"net/http"
	"sort"
)

// handleMetrics writes leases by state and servers by phase, with phase
// durations and bytes, in Prometheus text format, from the last view of
// each lease.
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
	fmt.Fprintln(w, "# TYPE ferry_borrower_leases gauge")
	for _, k := range keys(states) {
		fmt.Fprintf(w, "ferry_borrower_leases{state=%q} %d\n", k, states[k])
	}
	fmt.Fprintln(w, "# TYPE ferry_borrower_servers gauge")
	for _, k := range keys(phases) {
		fmt.Fprintf(w, "ferry_borrower_servers{phase=%q} %d\n", k, phases[k])
	}
	fmt.Fprintln(w, "# TYPE ferry_borrower_phase_seconds_sum gauge\n# TYPE ferry_borrower_phase_bytes gauge")
	for _, k := range keys(secs) {
		fmt.Fprintf(w, "ferry_borrower_phase_seconds_sum{phase=%q} %g\n", k, secs[k])
		fmt.Fprintf(w, "ferry_borrower_phase_bytes{phase=%q} %d\n", k, bytes[k])
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
