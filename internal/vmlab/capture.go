package vmlab

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Capture is tcpdump writing every packet of one interface to a pcap file
// (packet-buffered, so the file can be read while it runs), the first 160
// bytes of each: the headers the filters need, not a lease's worth of
// ciphertext.
type Capture struct {
	*Proc
	Pcap string
}

// StartCapture captures on iface in namespace ns into pcap.
func StartCapture(t testing.TB, ns, iface, pcap string) *Capture {
	t.Helper()
	p := Start(t, "tcpdump "+iface, pcap+".log", "ip", "netns", "exec", ns,
		"tcpdump", "-i", iface, "-n", "-U", "-s", "160", "-w", pcap)
	// tcpdump says "listening on" once the socket is open.
	listening := func() bool { return countIn(p.Log, "listening on") > 0 }
	if !waitFor(10*time.Second, func() bool { return listening() || !p.Running() }) || !listening() {
		t.Fatalf("tcpdump on %s in %s did not start: %s", iface, ns, tailFile(p.Log, 2000))
	}
	return &Capture{Proc: p, Pcap: pcap}
}

// Packets returns tcpdump's one-line summaries of the captured packets
// that match the pcap-filter expression filter.
func (c *Capture) Packets(filter string) ([]string, error) {
	out, err := exec.Command("tcpdump", "-n", "-r", c.Pcap, filter).Output()
	if err != nil {
		return nil, fmt.Errorf("tcpdump -r %s %q: %w", c.Pcap, filter, err)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines, nil
}
