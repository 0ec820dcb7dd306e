package esp

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"ferry/ipsec/dataplane"
)

// memTUN records what the plane writes to the TUN device.
type memTUN struct {
	mu  sync.Mutex
	got [][]byte
}

func (m *memTUN) Read([]byte) (int, error) { select {} }
func (m *memTUN) Write(b []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.got = append(m.got, append([]byte(nil), b...))
	return len(b), nil
}

// memConn records what the plane sends to peers.
type memConn struct{ sent [][]byte }

func (c *memConn) WriteToUDPAddrPort(b []byte, _ netip.AddrPort) (int, error) {
	c.sent = append(c.sent, append([]byte(nil), b...))
	return len(b), nil
}

func key(b byte) []byte { return bytes.Repeat([]byte{b}, keyLen) }

// testSA is A's view; mirror gives B's view of the same CHILD_SA.
func testSA() dataplane.ChildSA {
	return dataplane.ChildSA{
		InSPI: 0xa0000001, OutSPI: 0xb0000001,
		Local:  netip.MustParseAddrPort("10.32.0.1:4500"),
		Remote: netip.MustParseAddrPort("10.32.0.2:4500"),
		Encap:  true, Alg: dataplane.AlgAES256GCM16,
		InKey: key(1), OutKey: key(2),
		TSLocal:  []netip.Prefix{netip.MustParsePrefix("10.32.1.0/24")},
		TSRemote: []netip.Prefix{netip.MustParsePrefix("10.32.2.0/24")},
	}
}

func mirror(sa dataplane.ChildSA) dataplane.ChildSA {
	sa.InSPI, sa.OutSPI = sa.OutSPI, sa.InSPI
	sa.Local, sa.Remote = sa.Remote, sa.Local
	sa.InKey, sa.OutKey = sa.OutKey, sa.InKey
	sa.TSLocal, sa.TSRemote = sa.TSRemote, sa.TSLocal
	return sa
}

// ipv4 builds a minimal inner IPv4 packet (checksum not needed here).
func ipv4(src, dst string, payload []byte) []byte {
	b := make([]byte, 20+len(payload))
	b[0], b[8], b[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	copy(b[12:], netip.MustParseAddr(src).AsSlice())
	copy(b[16:], netip.MustParseAddr(dst).AsSlice())
	copy(b[20:], payload)
	return b
}

type rig struct {
	a, b     *Plane
	conn     *memConn
	tunB     *memTUN
	saA, saB dataplane.ChildSA
}

func newRig(t testing.TB, edit func(*dataplane.ChildSA)) *rig {
	t.Helper()
	r := &rig{conn: &memConn{}, tunB: &memTUN{}, saA: testSA()}
	if edit != nil {
		edit(&r.saA)
	}
	r.saB = mirror(r.saA)
	r.a = New(Config{TUN: &memTUN{}, Conn: r.conn})
	r.b = New(Config{TUN: r.tunB, Conn: &memConn{}})
	for _, x := range []struct {
		p  *Plane
		sa dataplane.ChildSA
	}{{r.a, r.saA}, {r.b, r.saB}} {
		if err := x.p.Install(context.Background(), x.sa); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { r.a.Close(); r.b.Close() })
	return r
}

// seal makes A send one inner packet and returns the ESP datagram.
func (r *rig) seal(t testing.TB, inner []byte) []byte {
	t.Helper()
	buf := make([]byte, Headroom+len(inner)+Overhead)
	copy(buf[Headroom:], inner)
	n := len(r.conn.sent)
	r.a.send(buf, len(inner))
	if len(r.conn.sent) != n+1 {
		t.Fatalf("A sent nothing for %d-byte packet (stats %+v)", len(inner), r.a.Stats())
	}
	return r.conn.sent[n]
}

// inputOne takes pkt through the inbound path as ServeUDP does for a read
// of one datagram: input, then flush to the TUN device.
func (p *Plane) inputOne(pkt []byte, from netip.AddrPort) error {
	var b rxBatch
	err := p.input(&b, pkt, from)
	p.flush(&b)
	return err
}

func (r *rig) deliver(pkt []byte) error {
	return r.b.inputOne(append([]byte(nil), pkt...), r.saA.Local)
}

func TestSealedPacketMatchesIndependentRFC4106Construction(t *testing.T) {
	r := newRig(t, nil)
	inner := ipv4("10.32.1.5", "10.32.2.7", []byte("hello, ferry"))
	got := r.seal(t, inner)

	// Build the same packet from the RFCs with crypto/cipher directly.
	k := r.saA.OutKey
	blk, _ := aes.NewCipher(k[:32])
	g, _ := cipher.NewGCM(blk)
	var hdr [16]byte
	binary.BigEndian.PutUint32(hdr[0:], r.saA.OutSPI)
	binary.BigEndian.PutUint32(hdr[4:], 1) // first sequence number
	binary.BigEndian.PutUint64(hdr[8:], 1) // IV = counter
	pt := append([]byte(nil), inner...)
	for i := 1; (len(pt)+2)%4 != 0; i++ {
		pt = append(pt, byte(i))
	}
	pt = append(pt, byte(len(pt)-len(inner)), 4)
	nonce := append(append([]byte(nil), k[32:]...), hdr[8:]...)
	want := g.Seal(hdr[:], nonce, pt, hdr[:8])
	if !bytes.Equal(got, want) {
		t.Fatalf("sealed packet\n got %x\nwant %x", got, want)
	}
	if err := r.deliver(got); err != nil {
		t.Fatal(err)
	}
	if len(r.tunB.got) != 1 || !bytes.Equal(r.tunB.got[0], inner) {
		t.Fatalf("B delivered %x, want %x", r.tunB.got, inner)
	}
}

func TestInputDropsAndCountsBadPackets(t *testing.T) {
	r := newRig(t, nil)
	inner := ipv4("10.32.1.5", "10.32.2.7", bytes.Repeat([]byte{7}, 100))
	first := r.seal(t, inner)
	if err := r.deliver(first); err != nil {
		t.Fatal(err)
	}
	corrupt := r.seal(t, inner)
	corrupt[len(corrupt)-1] ^= 1
	wrongSPI := r.seal(t, inner)
	binary.BigEndian.PutUint32(wrongSPI, 0xdeadbeef)
	for _, tc := range []struct {
		name string
		pkt  []byte
		want error
	}{
		{"replayed", first, ErrReplay},
		{"corrupted ICV", corrupt, ErrAuth},
		{"unknown SPI", wrongSPI, ErrNoSA},
		{"truncated", first[:20], ErrMalformed},
	} {
		if err := r.deliver(tc.pkt); !errors.Is(err, tc.want) {
			t.Errorf("%s: Input = %v, want %v", tc.name, err, tc.want)
		}
	}
	st := r.b.Stats()
	if st.RxPackets != 1 || st.DropReplay != 1 || st.DropAuth != 1 || st.DropNoSA != 1 || st.DropMalformed != 1 {
		t.Errorf("stats = %+v", st)
	}
	if len(r.tunB.got) != 1 {
		t.Errorf("B delivered %d packets, want only the first", len(r.tunB.got))
	}
}

func TestInputRefusesInnerPacketOutsideSelectors(t *testing.T) {
	r := newRig(t, func(sa *dataplane.ChildSA) {
		sa.TSRemote = append(sa.TSRemote, netip.MustParsePrefix("10.32.9.0/24"))
	})
	// A authenticates the packet, but its inner source 10.32.3.3 is not in
	// B's remote selector 10.32.1.0/24: a peer may not spoof other networks.
	pkt := r.seal(t, ipv4("10.32.3.3", "10.32.2.7", nil))
	if err := r.deliver(pkt); !errors.Is(err, ErrPolicy) {
		t.Fatalf("Input = %v, want ErrPolicy", err)
	}
	if r.b.Stats().DropPolicy != 1 {
		t.Errorf("stats = %+v", r.b.Stats())
	}
}

// A gateway isolates its pool: a packet from one lent server to another's
// virtual IP is dropped even where the selectors cover the destination.
func TestInputDropsPacketsToAnIsolatedPrefix(t *testing.T) {
	r := newRig(t, nil)
	r.b.Isolate([]netip.Prefix{netip.MustParsePrefix("10.32.2.0/28")})
	if err := r.deliver(r.seal(t, ipv4("10.32.1.5", "10.32.2.7", nil))); !errors.Is(err, ErrPolicy) {
		t.Fatalf("to an isolated address: Input = %v, want ErrPolicy", err)
	}
	if err := r.deliver(r.seal(t, ipv4("10.32.1.5", "10.32.2.100", nil))); err != nil {
		t.Fatalf("to an address beside the isolated prefix: %v", err)
	}
	if st := r.b.Stats(); st.DropPolicy != 1 || len(r.tunB.got) != 1 {
		t.Errorf("stats = %+v, delivered %d; want one drop, one delivered", st, len(r.tunB.got))
	}
}

func TestInputDropsSequenceLeftOfWindow(t *testing.T) {
	r := newRig(t, func(sa *dataplane.ChildSA) { sa.ReplayWindow = 32 })
	inner := ipv4("10.32.1.5", "10.32.2.7", nil)
	old := r.seal(t, inner)
	for i := 0; i < 40; i++ {
		if err := r.deliver(r.seal(t, inner)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.deliver(old); !errors.Is(err, ErrTooOld) {
		t.Fatalf("Input(seq 1 after 41) = %v, want ErrTooOld", err)
	}
	if r.b.Stats().DropTooOld != 1 {
		t.Errorf("stats = %+v", r.b.Stats())
	}
}

func TestESNCarriesTrafficAcrossLow32BitRollover(t *testing.T) {
	r := newRig(t, func(sa *dataplane.ChildSA) { sa.ESN = true })
	out := r.a.tab.Load().routes[0].out
	out.seq.Store(1<<32 - 3)
	r.b.tab.Load().in[r.saB.InSPI].win.top = 1<<32 - 4
	inner := ipv4("10.32.1.5", "10.32.2.7", nil)
	var pkts [][]byte
	for i := 0; i < 6; i++ { // seq 2^32-2 .. 2^32+3
		pkts = append(pkts, r.seal(t, inner))
	}
	// Deliver out of order across the boundary.
	for _, i := range []int{0, 3, 1, 5, 2, 4} {
		if err := r.deliver(pkts[i]); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	if err := r.deliver(pkts[3]); !errors.Is(err, ErrReplay) {
		t.Errorf("replay after rollover = %v, want ErrReplay", err)
	}
	if got := binary.BigEndian.Uint32(pkts[5][4:]); got != 3 {
		t.Errorf("wire sequence after rollover = %d, want 3 (low 32 bits)", got)
	}
}

func TestSequenceExhaustionAsksForRekeyThenDeletes(t *testing.T) {
	r := newRig(t, nil)
	out := r.a.tab.Load().routes[0].out
	out.seq.Store(1<<32 - 1 - seqSoftMargin - 1)
	inner := ipv4("10.32.1.5", "10.32.2.7", nil)
	r.seal(t, inner)
	if ev := next(t, r.a); ev.Kind != dataplane.Soft || ev.Reason != "sequence" || ev.SPI != r.saA.OutSPI {
		t.Fatalf("event = %+v, want soft sequence expiry of %#x", ev, r.saA.OutSPI)
	}
	out.seq.Store(1<<32 - 1)
	buf := make([]byte, Headroom+len(inner)+Overhead)
	copy(buf[Headroom:], inner)
	r.a.send(buf, len(inner))
	if ev := next(t, r.a); ev.Kind != dataplane.Hard || ev.Reason != "sequence" {
		t.Fatalf("event = %+v, want hard sequence expiry", ev)
	}
	if len(r.a.tab.Load().routes) != 0 {
		t.Error("SA still installed after hard expiry")
	}
}

func TestPacketLifetimeEmitsSoftThenHard(t *testing.T) {
	r := newRig(t, func(sa *dataplane.ChildSA) {
		sa.Lifetime = dataplane.Lifetime{SoftPackets: 2, HardPackets: 3}
	})
	inner := ipv4("10.32.1.5", "10.32.2.7", nil)
	var kinds []dataplane.ExpireKind
	for i := 0; i < 3; i++ {
		r.seal(t, inner)
	}
	for len(kinds) < 2 {
		kinds = append(kinds, next(t, r.a).Kind)
	}
	if kinds[0] != dataplane.Soft || kinds[1] != dataplane.Hard {
		t.Fatalf("events = %v, want soft then hard", kinds)
	}
}

func TestInstallRefusesBadSAs(t *testing.T) {
	p := New(Config{TUN: &memTUN{}, Conn: &memConn{}})
	defer p.Close()
	for name, edit := range map[string]func(*dataplane.ChildSA){
		"zero SPI":     func(sa *dataplane.ChildSA) { sa.InSPI = 0 },
		"no encap":     func(sa *dataplane.ChildSA) { sa.Encap = false },
		"short key":    func(sa *dataplane.ChildSA) { sa.InKey = sa.InKey[:32] },
		"cbc":          func(sa *dataplane.ChildSA) { sa.Alg = "aes256cbc" },
		"ipv6 ts":      func(sa *dataplane.ChildSA) { sa.TSRemote = []netip.Prefix{netip.MustParsePrefix("fd00::/64")} },
		"huge window":  func(sa *dataplane.ChildSA) { sa.ReplayWindow = 1 << 20 },
		"no remote ts": func(sa *dataplane.ChildSA) { sa.TSRemote = nil },
	} {
		sa := testSA()
		edit(&sa)
		if err := p.Install(context.Background(), sa); err == nil {
			t.Errorf("%s: Install succeeded", name)
		}
	}
	sa := testSA()
	if err := p.Install(context.Background(), sa); err != nil {
		t.Fatal(err)
	}
	if err := p.Install(context.Background(), sa); err == nil {
		t.Error("installing the same SPI twice succeeded")
	}
}

func next(t *testing.T, p *Plane) dataplane.ExpireEvent {
	t.Helper()
	select {
	case ev := <-p.Expire():
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no expire event")
	}
	return dataplane.ExpireEvent{}
}

func TestRekeyedSATakesOverSendingWhileOldStillReceives(t *testing.T) {
	r := newRig(t, nil)
	inner := ipv4("10.32.1.5", "10.32.2.7", nil)
	old := r.seal(t, inner) // sent on the old SA, delivered late
	nsa := r.saA
	nsa.InSPI, nsa.OutSPI, nsa.InKey, nsa.OutKey = 0xa0000002, 0xb0000002, key(5), key(6)
	if err := r.a.Install(context.Background(), nsa); err != nil {
		t.Fatal(err)
	}
	if err := r.b.Install(context.Background(), mirror(nsa)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if spi := binary.BigEndian.Uint32(r.seal(t, inner)); spi != nsa.OutSPI {
			t.Fatalf("packet %d sent on SPI %#x, want the new %#x", i, spi, nsa.OutSPI)
		}
	}
	if err := r.deliver(old); err != nil {
		t.Errorf("late packet on the old SA: %v", err)
	}
}

func TestCountersReportOneSAsTraffic(t *testing.T) {
	r := newRig(t, nil)
	for range 3 {
		if err := r.deliver(r.seal(t, ipv4("10.32.1.5", "10.32.2.7", make([]byte, 80)))); err != nil {
			t.Fatal(err)
		}
	}
	a, err := r.a.Counters(t.Context(), r.saA.InSPI, r.saA.OutSPI)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.b.Counters(t.Context(), r.saB.InSPI, r.saB.OutSPI)
	if err != nil {
		t.Fatal(err)
	}
	if a.OutPackets != 3 || a.OutBytes != 300 || a.InPackets != 0 {
		t.Errorf("sender's counters %+v, want 3 packets / 300 bytes out, nothing in", a)
	}
	if b.InPackets != 3 || b.InBytes != 300 || b.OutPackets != 0 {
		t.Errorf("receiver's counters %+v, want 3 packets / 300 bytes in", b)
	}
	if _, err := r.a.Counters(t.Context(), r.saA.InSPI, r.saA.OutSPI+1); !errors.Is(err, dataplane.ErrNoSuchSA) {
		t.Errorf("Counters of an SA not installed: %v, want ErrNoSuchSA", err)
	}
}
