package netboot

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// The steps of a netboot this server sees, for the transfer's timeline:
// what happens before image A's kernel runs (firmware DHCP, iPXE's DHCP,
// the script, the kernel and initrd downloads) is otherwise invisible.
const (
	StepDHCPFirmware = "dhcp-firmware" // a PXE ROM's DISCOVER..ACK (vendor class PXEClient)
	StepDHCPiPXE     = "dhcp-ipxe"     // iPXE's DISCOVER..ACK
	StepDHCPOS       = "dhcp-os"       // any other client's: image A's own
	StepScript       = "script"
	StepKernel       = "kernel"
	StepInitrd       = "initrd"
)

// Event is one step of one machine's netboot.
type Event struct {
	MAC        net.HardwareAddr
	Step       string
	Start, End time.Time
	Bytes      int64
	Err        error
}

// Observer may be implemented by a Policy: it hears every step of the
// netboots the policy admitted, after the server answered it. It must not
// block for long (DHCP and HTTP answers wait for it).
type Observer interface {
	Observed(Event)
}

func (s *Server) observe(e Event) {
	if o, ok := s.policy.(Observer); ok {
		o.Observed(e)
	}
}

// discoveries remembers when each MAC's current DHCP exchange began, so a
// step spans DISCOVER..ACK. It is bounded: when full it forgets all, and
// the next step then starts at its REQUEST.
type discoveries struct {
	mu  sync.Mutex
	max int
	m   map[string]time.Time
}

func newDiscoveries(max int) *discoveries {
	return &discoveries{max: max, m: make(map[string]time.Time)}
}

// begin records a DISCOVER (the first of a retransmitted series counts).
func (d *discoveries) begin(mac net.HardwareAddr, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.m[mac.String()]; ok {
		return
	}
	if len(d.m) >= d.max {
		clear(d.m)
	}
	d.m[mac.String()] = now
}

// end returns when mac's exchange began (now when unknown) and forgets it.
func (d *discoveries) end(mac net.HardwareAddr, now time.Time) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.m[mac.String()]
	delete(d.m, mac.String())
	if !ok {
		return now
	}
	return t
}

// countingWriter counts the body bytes of an answer.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection underneath.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
