package fleet

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Step names, in the order a server goes through them.
const (
	StepDHCP   = "dhcp"    // DISCOVER/OFFER + REQUEST/ACK
	StepScript = "script"  // the iPXE script
	StepImageA = "image-a" // kernel and initrd
	StepEnroll = "enroll"  // CSR with the one-time token -> certificate
	StepIKE    = "ike"     // IKE_SA_INIT + IKE_AUTH, until the CHILD_SA is up
	StepImageB = "image-b" // kernel and initrd of image B, HTTPS through the tunnel
)

// Steps lists them in order.
var Steps = []string{StepDHCP, StepScript, StepImageA, StepEnroll, StepIKE, StepImageB}

// Recorder collects the durations of each step, concurrently.
type Recorder struct {
	mu    sync.Mutex
	steps map[string]*series
}

type series struct {
	d           []time.Duration
	first, last time.Time // first start, last end: the step's wall span
	errs        int
}

func NewRecorder() *Recorder { return &Recorder{steps: map[string]*series{}} }

// Add records one step that ran from start to end (err non-nil: failed).
func (r *Recorder) Add(step string, start, end time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.steps[step]
	if s == nil {
		s = &series{first: start, last: end}
		r.steps[step] = s
	}
	if err != nil {
		s.errs++
		return
	}
	s.d = append(s.d, end.Sub(start))
	if start.Before(s.first) {
		s.first = start
	}
	if end.After(s.last) {
		s.last = end
	}
}

// StepStats is one step's summary.
type StepStats struct {
	Step          string
	Count, Errors int
	Rate          float64 // completed per second over the step's wall span
	P50, P95, P99 time.Duration
}

// Stats summarises every step, in Steps order.
func (r *Recorder) Stats() []StepStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []StepStats
	for _, name := range Steps {
		s := r.steps[name]
		if s == nil {
			continue
		}
		d := slices.Clone(s.d)
		slices.Sort(d)
		st := StepStats{Step: name, Count: len(d), Errors: s.errs}
		if span := s.last.Sub(s.first).Seconds(); span > 0 {
			st.Rate = float64(len(d)) / span
		}
		st.P50, st.P95, st.P99 = pct(d, 50), pct(d, 95), pct(d, 99)
		out = append(out, st)
	}
	return out
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := (len(d)*p + 99) / 100
	return d[min(max(i-1, 0), len(d)-1)]
}

// Table formats stats for a person (make bench).
func Table(stats []StepStats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %-8s %6s %6s %9s %9s %9s %9s\n", "step", "ok", "errors", "per s", "p50", "p95", "p99")
	for _, s := range stats {
		fmt.Fprintf(&b, "  %-8s %6d %6d %9.1f %9s %9s %9s\n", s.Step, s.Count, s.Errors, s.Rate,
			s.P50.Round(100*time.Microsecond), s.P95.Round(100*time.Microsecond), s.P99.Round(100*time.Microsecond))
	}
	return b.String()
}
