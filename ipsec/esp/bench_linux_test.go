package esp

import (
	"fmt"
	"io"
	"testing"
	"time"
)

// BenchmarkBulkTCPUserspaceESPvsPlain sends the same TCP bulk transfer over
// the veth pair directly and through user-space ESP (TUN, AES-256-GCM, UDP
// 4500) in the same run, and reports both rates and their ratio.
// The 1500-byte veth is the realistic case; 9000 shows what larger
// packets buy (per-packet syscalls dominate, not AES-GCM).
func BenchmarkBulkTCPUserspaceESPvsPlain(b *testing.B) {
	for _, mtu := range []int{1500, 9000} {
		b.Run(fmt.Sprintf("mtu%d", mtu), func(b *testing.B) { benchBulk(b, mtu) })
	}
}

func benchBulk(b *testing.B, mtu int) {
	a, g := topology(b, mtu)
	const n = 64 << 20
	var plain, esp time.Duration
	for i := 0; i < b.N; i++ {
		plain += timed(b, g, a, "10.32.0.2:5002", "10.32.0.2:5002", n)
		esp += timed(b, g, a, "10.32.2.1:5003", "10.32.2.1:5003", n)
	}
	mbps := func(d time.Duration) float64 { return float64(n) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(plain), "plain_MB/s")
	b.ReportMetric(mbps(esp), "esp_MB/s")
	b.ReportMetric(100*mbps(esp)/mbps(plain), "esp_%_of_plain")
}

func timed(b *testing.B, srv, cli *end, laddr, daddr string, n int64) time.Duration {
	b.Helper()
	l := listen(b, srv.ns, laddr)
	defer l.Close()
	c := dial(b, cli.ns, daddr)
	done := make(chan error, 1)
	go func() {
		s, err := l.Accept()
		if err == nil {
			_, err = io.Copy(io.Discard, s)
			s.Close()
		}
		done <- err
	}()
	// A fixed buffer and a discarding reader: the benchmark measures the
	// path, not a pattern generator (TestTCPThrough... checks the bytes).
	buf := make([]byte, 256<<10)
	start := time.Now()
	for sent := int64(0); sent < n; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}
