package esp

import (
	"context"
	"net/netip"
	"testing"
)

// FuzzInput feeds arbitrary datagrams to a plane with one SA installed: no
// input may panic, and whatever is delivered must be an IPv4 packet inside
// the SA's selectors.
func FuzzInput(f *testing.F) {
	r := newRig(f, nil)
	f.Add(r.seal(f, ipv4("10.32.1.5", "10.32.2.7", []byte("seed"))))
	f.Add([]byte{0xa0, 0, 0, 1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		tun := &memTUN{}
		p := New(Config{TUN: tun, Conn: &memConn{}})
		defer p.Close()
		sa := mirror(testSA())
		sa.ESN = len(pkt)%2 == 0
		if err := p.Install(context.Background(), sa); err != nil {
			t.Fatal(err)
		}
		if err := p.inputOne(pkt, netip.AddrPort{}); err != nil {
			return
		}
		for _, got := range tun.got {
			src, dst, ok := innerAddrs(got)
			if !ok || !containsAny(sa.TSRemote, src) || !containsAny(sa.TSLocal, dst) {
				t.Fatalf("delivered %x outside the selectors", got)
			}
		}
	})
}

// FuzzStripTrailer checks the padding parser on its own.
func FuzzStripTrailer(f *testing.F) {
	f.Add([]byte{0x45, 1, 2, 2, 4})
	f.Add([]byte{0, 4})
	f.Fuzz(func(t *testing.T, pt []byte) {
		body, _, err := stripTrailer(pt, 1)
		if err == nil && len(body) > len(pt)-2 {
			t.Fatalf("body %d bytes from %d", len(body), len(pt))
		}
	})
}
