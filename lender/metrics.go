package lender

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ferry/api"
	"ferry/internal/promreg"
)

// metrics are the lender's Prometheus series: counters and histograms of
// what this process did since it started, and the inventory and leases
// by state read from the store at each scrape (so a restart does not
// zero them). They are served on the status listener only: their figures
// are every borrower's, not for the PXE side nor the m2m one.
type metrics struct {
	reg *prometheus.Registry

	leases         prometheus.Counter
	enrolled       prometheus.Counter
	enrollFailures *prometheus.CounterVec
	conflicts      *prometheus.CounterVec
	phaseSeconds   *prometheus.HistogramVec
	phaseFailures  *prometheus.CounterVec
	phaseBytes     *prometheus.CounterVec
	power          *prometheus.CounterVec
	powerErrors    *prometheus.CounterVec
	dhcp           *prometheus.CounterVec
	transfers      *prometheus.CounterVec
	transferBytes  *prometheus.CounterVec
}

// phaseBuckets span a phase's seconds: a TFTP fetch of iPXE (under 1 s)
// to a slow image B download or an NFS root's first mount (minutes).
var phaseBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}

func newMetrics() *metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &metrics{
		reg:            promreg.New("lender"),
		leases:         prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_lender_leases_created_total", Help: "Leases created since the lender started."}),
		enrolled:       prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_lender_enrollments_total", Help: "Lent servers enrolled (one-time certificate issued) since the lender started."}),
		enrollFailures: counter("ferry_lender_enrollment_failures_total", "Enrollments refused, by reason.", "reason"),
		conflicts:      counter("ferry_lender_boot_conflicts_total", "Boots put in conflict (second script fetch, other address, second key), by kind.", "reason"),
		phaseSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ferry_lender_phase_duration_seconds",
			Help: "Duration of each phase lent servers reported.", Buckets: phaseBuckets}, []string{"phase"}),
		phaseFailures: counter("ferry_lender_phase_failures_total", "Phases lent servers reported as failed.", "phase"),
		phaseBytes:    counter("ferry_lender_phase_bytes_total", "Bytes lent servers reported moving in each phase.", "phase"),
		power:         counter("ferry_lender_power_actions_total", "Power actions run, by driver and action.", "driver", "action"),
		powerErrors:   counter("ferry_lender_power_errors_total", "Power actions that failed, by driver and action.", "driver", "action"),
		dhcp:          counter("ferry_lender_dhcp_requests_total", "DHCP requests on the PXE side: answered (reply OFFER, ACK, NAK), ignored (not a server of a lease, not admitted: refused) or failed.", "outcome", "reply"),
		transfers:     counter("ferry_lender_netboot_transfers_total", "TFTP and HTTP answers on the PXE side: iPXE binaries (rom), per-boot scripts, kernel and initrd A (file); served, refused or failed.", "proto", "what", "outcome"),
		transferBytes: counter("ferry_lender_netboot_bytes_total", "Bytes sent by the PXE-side TFTP and HTTP servers.", "proto", "what"),
	}
	m.reg.MustRegister(m.leases, m.enrolled, m.enrollFailures, m.conflicts, m.phaseSeconds, m.phaseFailures,
		m.phaseBytes, m.power, m.powerErrors, m.dhcp, m.transfers, m.transferBytes)
	return m
}

func (m *metrics) enrollFail(kind string) { m.enrollFailures.WithLabelValues(kind).Inc() }

// conflict counts a boot put in conflict, by kind.
func (m *metrics) conflict(kind string) { m.conflicts.WithLabelValues(kind).Inc() }

func (m *metrics) phase(p api.PhaseReport) {
	m.phaseSeconds.WithLabelValues(p.Phase).Observe(p.End.Sub(p.Start).Seconds())
	if p.Error != "" {
		m.phaseFailures.WithLabelValues(p.Phase).Inc()
	}
	m.phaseBytes.WithLabelValues(p.Phase).Add(float64(max(p.Bytes, 0)))
}

func (m *metrics) powerAction(driver, action string, err error) {
	m.power.WithLabelValues(driver, action).Inc()
	if err != nil {
		m.powerErrors.WithLabelValues(driver, action).Inc()
	}
}

// DHCP and Transfer make metrics the netboot server's Events.
func (m *metrics) DHCP(outcome, reply string) { m.dhcp.WithLabelValues(outcome, reply).Inc() }

func (m *metrics) Transfer(proto, what, outcome string, bytes int64) {
	m.transfers.WithLabelValues(proto, what, outcome).Inc()
	m.transferBytes.WithLabelValues(proto, what).Add(float64(bytes))
}

// storeCollector reads the inventory and the leases at each scrape.
type storeCollector struct {
	m               *Manager
	servers, leases *prometheus.Desc
	active          *prometheus.Desc
}

func newStoreCollector(m *Manager) *storeCollector {
	return &storeCollector{m: m,
		servers: prometheus.NewDesc("ferry_lender_servers", "Servers in the inventory, by state and pool, from the store.", []string{"state", "pool"}, nil),
		leases:  prometheus.NewDesc("ferry_lender_leases", "Leases by state, from the store.", []string{"state"}, nil),
		active:  prometheus.NewDesc("ferry_lender_leases_active", "Active leases, from the store.", nil, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.servers
	ch <- c.leases
	ch <- c.active
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ss, err := c.m.Servers(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.servers, err)
		return
	}
	type key struct{ state, pool string }
	n := map[key]int{}
	for _, s := range ss {
		n[key{s.State, s.Pool}]++
	}
	for k, v := range n {
		ch <- prometheus.MustNewConstMetric(c.servers, prometheus.GaugeValue, float64(v), k.state, k.pool)
	}
	ls, err := c.m.Leases(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.leases, err)
		return
	}
	states := map[string]int{api.LeaseActive: 0, api.LeaseReturned: 0}
	for _, l := range ls {
		states[l.State]++
	}
	for st, v := range states {
		ch <- prometheus.MustNewConstMetric(c.leases, prometheus.GaugeValue, float64(v), st)
	}
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(states[api.LeaseActive]))
}
