package ike

import "testing"

// Hole 1 of "Trust boundaries": a handshake whose IKE_AUTH came from
// another port than its IKE_SA_INIT (NAT-T) left its half-open entry
// behind, and HalfOpenMax of them locked every initiator out.
func TestHalfOpenAccountingSurvivesPortChange(t *testing.T) {
	const max = 32
	lb := newLoopback(t, func(c *Config) { c.HalfOpenMax, c.CookieThreshold = max, 1<<20 })
	good, _ := lb.initiator(t, "lease-good", true)
	bad, _ := lb.initiator(t, "lease-bad", false)
	for i := range 300 {
		d, listed := good, true
		if i%3 == 2 {
			d, listed = bad, false
		}
		err := lb.connect(d)
		if listed && err != nil {
			t.Fatalf("handshake %d (listed key) after %d half-open entries: %v; want it to connect", i+1, lb.halfOpen(), err)
		}
		if !listed && err == nil {
			t.Fatalf("handshake %d: an unlisted key connected", i+1)
		}
	}
	if err := lb.connect(good); err != nil {
		t.Fatalf("listed key after 300 handshakes through NAT-T: %v", err)
	}
	if n := lb.halfOpen(); n != 0 {
		t.Fatalf("%d half-open entries after every handshake ended; want 0", n)
	}
	lb.gw.mu.Lock()
	defer lb.gw.mu.Unlock()
	if err := lb.gw.halfOpenExact(); err != nil {
		t.Fatal(err)
	}
}
