package lender

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"ferry/api"
)

// metrics are counted in memory since the process started, written in
// Prometheus text format by hand (no client library for a dozen lines).
type metrics struct {
	leases   atomic.Int64
	enrolled atomic.Int64

	mu        sync.Mutex
	failures  map[string]int64
	conflicts map[string]int64
	phases    map[string]phaseStat
}

type phaseStat struct {
	count, failed int64
	seconds       float64
	bytes         int64
}

func newMetrics() *metrics {
	return &metrics{failures: map[string]int64{}, conflicts: map[string]int64{}, phases: map[string]phaseStat{}}
}

func (m *metrics) enrollFail(kind string) {
	m.mu.Lock()
	m.failures[kind]++
	m.mu.Unlock()
}

// conflict counts a boot put in conflict, by kind.
func (m *metrics) conflict(kind string) {
	m.mu.Lock()
	m.conflicts[kind]++
	m.mu.Unlock()
}

func (m *metrics) phase(p api.PhaseReport) {
	m.mu.Lock()
	s := m.phases[p.Phase]
	s.count++
	if p.Error != "" {
		s.failed++
	}
	s.seconds += p.End.Sub(p.Start).Seconds()
	s.bytes += p.Bytes
	m.phases[p.Phase] = s
	m.mu.Unlock()
}

func (m *metrics) write(w io.Writer, active int) {
	fmt.Fprintf(w, "# TYPE ferry_lender_leases_created_total counter\nferry_lender_leases_created_total %d\n", m.leases.Load())
	fmt.Fprintf(w, "# TYPE ferry_lender_leases_active gauge\nferry_lender_leases_active %d\n", active)
	fmt.Fprintf(w, "# TYPE ferry_lender_enrollments_total counter\nferry_lender_enrollments_total %d\n", m.enrolled.Load())
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintln(w, "# TYPE ferry_lender_enrollment_failures_total counter")
	for _, k := range sortedKeys(m.failures) {
		fmt.Fprintf(w, "ferry_lender_enrollment_failures_total{reason=%q} %d\n", k, m.failures[k])
	}
	fmt.Fprintln(w, "# TYPE ferry_lender_boot_conflicts_total counter")
	for _, k := range sortedKeys(m.conflicts) {
		fmt.Fprintf(w, "ferry_lender_boot_conflicts_total{reason=%q} %d\n", k, m.conflicts[k])
	}
	fmt.Fprintln(w, "# TYPE ferry_lender_phase_total counter\n# TYPE ferry_lender_phase_failed_total counter")
	fmt.Fprintln(w, "# TYPE ferry_lender_phase_seconds_sum counter\n# TYPE ferry_lender_phase_bytes_total counter")
	for _, k := range sortedKeys(m.phases) {
		s := m.phases[k]
		fmt.Fprintf(w, "ferry_lender_phase_total{phase=%q} %d\n", k, s.count)
		fmt.Fprintf(w, "ferry_lender_phase_failed_total{phase=%q} %d\n", k, s.failed)
		fmt.Fprintf(w, "ferry_lender_phase_seconds_sum{phase=%q} %g\n", k, s.seconds)
		fmt.Fprintf(w, "ferry_lender_phase_bytes_total{phase=%q} %d\n", k, s.bytes)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
