// Package ikemetrics exposes an IKE daemon's SAs and counters as
// Prometheus series (ferry gateway's status listener): SAs by state,
// CHILD_SAs, ESP bytes and packets both ways, rekeys and refusals.
package ikemetrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"ferry/ipsec/ike"
)

// Source is what the collector reads at each scrape; *ike.Daemon is one.
type Source interface {
	Status() []ike.SAStatus
	Counts() ike.Counts
}

// Collector reads a Source at each scrape.
type Collector struct {
	src                            Source
	sas, children, bytes, packets  *prometheus.Desc
	rekeys, rekeyFailures, refused *prometheus.Desc
}

// New is a collector of src, prefixed ferry_gateway_.
func New(src Source) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("ferry_gateway_"+name, help, labels, nil)
	}
	return &Collector{src: src,
		sas:           d("ike_sas", "IKE SAs by state.", "state"),
		children:      d("child_sas", "CHILD_SAs installed (a rekeyed one counts until it goes)."),
		bytes:         d("esp_bytes", "ESP payload bytes of the CHILD_SAs now installed, by direction.", "direction"),
		packets:       d("esp_packets", "ESP packets of the CHILD_SAs now installed, by direction.", "direction"),
		rekeys:        d("rekeys_total", "Rekeys completed since the gateway started, IKE SA or CHILD_SA.", "sa"),
		rekeyFailures: d("rekey_failures_total", "Rekeys that failed since the gateway started."),
		refused:       d("refusals_total", "Requests refused since the gateway started: peer (authentication, allow list, CRL), child (CHILD_SA or CREATE_CHILD_SA), message (another IKE version).", "what"),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.sas, c.children, c.bytes, c.packets, c.rekeys, c.rekeyFailures, c.refused} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	states := map[string]int{"established": 0}
	children := 0
	var inB, outB, inP, outP uint64
	for _, s := range c.src.Status() {
		states[s.State]++
		for _, ch := range s.Children {
			children++
			inB, outB, inP, outP = inB+ch.InBytes, outB+ch.OutBytes, inP+ch.InPackets, outP+ch.OutPackets
		}
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for st, n := range states {
		gauge(c.sas, float64(n), st)
	}
	gauge(c.children, float64(children))
	gauge(c.bytes, float64(inB), "in")
	gauge(c.bytes, float64(outB), "out")
	gauge(c.packets, float64(inP), "in")
	gauge(c.packets, float64(outP), "out")
	n := c.src.Counts()
	counter(c.rekeys, n.IKERekeys, "ike")
	counter(c.rekeys, n.ChildRekeys, "child")
	counter(c.rekeyFailures, n.RekeyFailures)
	counter(c.refused, n.RefusedPeers, "peer")
	counter(c.refused, n.RefusedChildren, "child")
	counter(c.refused, n.RefusedOthers, "message")
}
