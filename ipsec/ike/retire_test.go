package ike

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"ferry/ipsec/dataplane"
	"ferry/ipsec/dataplane/dataplanetest"
	"ferry/ipsec/ikev2"
)

// installed is a data plane that moves nothing and tracks which inbound
// SPIs are installed: what would still decrypt.
type installed struct {
	dataplanetest.Null
	mu  sync.Mutex
	spi map[uint32]bool
}

func newInstalled() *installed {
	return &installed{Null: dataplanetest.NewNull(), spi: map[uint32]bool{}}
}

func (p *installed) Install(_ context.Context, sa dataplane.ChildSA) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.spi[sa.InSPI] = true
	return nil
}

func (p *installed) Remove(_ context.Context, in, _ uint32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.spi, in)
	return nil
}

func (p *installed) has(spi uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.spi[spi]
}

func (p *installed) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.spi)
}

// rekeyWithoutDelete makes ini rekey the CHILD_SA it knows as inbound SPI
// old the way a careless or hostile peer would: a valid CREATE_CHILD_SA,
// and then never the DELETE of old that RFC 7296 section 2.8 asks for. It
// returns the SPI it gave the new SA and the gateway's SPI for it.
func rekeyWithoutDelete(t *testing.T, ini *Daemon, old uint32) (in, gwIn uint32) {
	t.Helper()
	done := make(chan error, 1)
	ini.mu.Lock()
	var sa *ikeSA
	for _, s := range ini.sas {
		if s.st == stEstablished {
			sa = s
		}
	}
	if sa == nil {
		ini.mu.Unlock()
		t.Fatal("initiator has no established SA")
	}
	dh, _ := ikev2.NewDH(ikev2.DH_ECP256, rand.Reader)
	in = newChildSPI()
	out := []ikev2.Payload{
		&ikev2.Notify{Protocol: ikev2.ProtoESP, SPI: binary.BigEndian.AppendUint32(nil, old), Kind: ikev2.REKEY_SA},
		&ikev2.SA{Proposals: []ikev2.Proposal{proposal(ini.cfg.ESPPolicy, binary.BigEndian.AppendUint32(nil, in), true)}},
		&ikev2.Nonce{Data: nonce()}, dh.KE(),
		&ikev2.TS{Selectors: Selectors(anyV4)}, &ikev2.TS{Responder: true, Selectors: Selectors(anyV4)},
	}
	err := ini.request(sa, ikev2.CREATE_CHILD_SA, out, func(m *ikev2.Message) {
		if n := errorNotify(m.Payloads); n != nil {
			done <- errorf("gateway refused the rekey: %s", n.Kind)
			return
		}
		if sp := find[*ikev2.SA](m.Payloads); sp != nil && len(sp.Proposals) == 1 && len(sp.Proposals[0].SPI) == 4 {
			gwIn = binary.BigEndian.Uint32(sp.Proposals[0].SPI)
		}
		done <- nil
	}, func() { done <- errorf("gateway did not answer the rekey") })
	ini.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return in, gwIn
}

// Hole 8: a CHILD_SA replaced by a peer's rekey stayed installed until the
// peer deleted it, so a peer that rekeys in a loop and never deletes piled
// up SAs on the gateway.
func TestReplacedChildSAsAreBoundedAndTimedOut(t *testing.T) {
	plane := newInstalled()
	const grace = 2 * time.Second
	lb := newLoopback(t, func(c *Config) { c.DataPlane, c.RekeyGrace = plane, grace })
	ini, _ := lb.initiator(t, "lease-rekeys", true)
	if err := lb.connect(ini); err != nil {
		t.Fatal(err)
	}
	ini.mu.Lock()
	var cur uint32
	for _, sa := range ini.sas {
		cur = sa.children[0].cfg.InSPI
	}
	ini.mu.Unlock()
	first := lb.gw.Status()[0].Children[0].InSPI
	var gwIn uint32
	for i := range 20 {
		cur, gwIn = rekeyWithoutDelete(t, ini, cur)
		if i == 0 && !plane.has(parseSPI(t, first)) {
			t.Fatalf("the CHILD_SA replaced by a rekey was removed at once; want it to keep decrypting for the grace (%v)", grace)
		}
		if n := plane.count(); n > 1+maxRetired {
			t.Fatalf("gateway holds %d CHILD_SAs after %d rekeys without DELETE; want at most %d", n, i+1, 1+maxRetired)
		}
	}
	deadline := time.Now().Add(grace + 3*time.Second)
	for plane.count() != 1 || !plane.has(gwIn) {
		if time.Now().After(deadline) {
			t.Fatalf("%v after the last rekey the gateway still holds %d CHILD_SAs (newest %08x installed: %v); want only the newest",
				grace+3*time.Second, plane.count(), gwIn, plane.has(gwIn))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c := lb.gw.Status()[0].Children; len(c) != 1 {
		t.Fatalf("gateway status lists %d CHILD_SAs; want the newest alone", len(c))
	}
}

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }

func parseSPI(t *testing.T, s string) uint32 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		t.Fatalf("SPI %q: %v", s, err)
	}
	return uint32(v)
}

// rekeyIKEWithoutDelete makes ini rekey its IKE SA sa and move to the new
// one, but never delete the old one: the gateway's copy of it waits for a
// DELETE that never comes.
func rekeyIKEWithoutDelete(t *testing.T, ini *Daemon, sa *ikeSA) *ikeSA {
	t.Helper()
	done := make(chan *ikeSA, 1)
	ini.mu.Lock()
	dh, _ := ikev2.NewDH(sa.suite.DHGroup, rand.Reader)
	ni, spi := nonce(), ini.newSPI()
	out := []ikev2.Payload{&ikev2.SA{Proposals: []ikev2.Proposal{proposal(ini.cfg.IKEPolicy, binary.BigEndian.AppendUint64(nil, spi), true)}},
		&ikev2.Nonce{Data: ni}, dh.KE()}
	err := ini.request(sa, ikev2.CREATE_CHILD_SA, out, func(m *ikev2.Message) {
		sp, nr, ke := find[*ikev2.SA](m.Payloads), find[*ikev2.Nonce](m.Payloads), find[*ikev2.KE](m.Payloads)
		if sp == nil || nr == nil || ke == nil {
			done <- nil
			return
		}
		cs, err1 := ikev2.NewSuite(sp.Proposals[0])
		gir, err2 := dh.SharedSecret(ke.Data)
		if err1 != nil || err2 != nil {
			done <- nil
			return
		}
		n, err := ini.moveSA(sa, cs, true, spi, binary.BigEndian.Uint64(sp.Proposals[0].SPI), ni, nr.Data, gir)
		if err != nil {
			n = nil
		}
		done <- n
	}, func() { done <- nil })
	ini.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	n := <-done
	if n == nil {
		t.Fatal("IKE SA rekey failed")
	}
	return n
}

// The same for IKE SAs: one replaced by the peer's rekey waited for the
// peer's DELETE for ever.
func TestRekeyedIKESAsAreBoundedAndTimedOut(t *testing.T) {
	const grace = 2 * time.Second
	lb := newLoopback(t, func(c *Config) { c.RekeyGrace = grace })
	ini, _ := lb.initiator(t, "lease-ike-rekeys", true)
	if err := lb.connect(ini); err != nil {
		t.Fatal(err)
	}
	ini.mu.Lock()
	var sa *ikeSA
	for _, s := range ini.sas {
		sa = s
	}
	ini.mu.Unlock()
	count := func() int {
		lb.gw.mu.Lock()
		defer lb.gw.mu.Unlock()
		return len(lb.gw.sas)
	}
	for i := range 20 {
		sa = rekeyIKEWithoutDelete(t, ini, sa)
		if n := count(); n > 1+maxRetired {
			t.Fatalf("gateway holds %d IKE SAs after %d IKE rekeys without DELETE; want at most %d", n, i+1, 1+maxRetired)
		}
	}
	deadline := time.Now().Add(grace + 3*time.Second)
	for count() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%v after the last IKE rekey the gateway holds %d IKE SAs; want the newest alone", grace+3*time.Second, count())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := lb.gw.Status(); len(st) != 1 || st[0].State != "established" || len(st[0].Children) != 1 {
		t.Fatalf("gateway status %+v; want the newest IKE SA with the CHILD_SA", st)
	}
}
