package esp

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// A peer's GSO send (one sendmsg cut into same-sized datagrams) that
// carries an IKE message between two ESP packets: the IKE message reaches
// the daemon, marker stripped, and both inner packets reach the TUN in
// order, whether the kernel hands the run over as one UDP_GRO read or not.
func TestServeUDPSplitsOneGSOSendIntoESPAndIKE(t *testing.T) {
	r := newRig(t, nil)
	in1 := ipv4("10.32.1.5", "10.32.2.7", []byte("first segment"))
	in2 := ipv4("10.32.1.5", "10.32.2.7", []byte("other segment"))
	// B's plane receives what A seals; the rig's A sends to B.
	e1, e2 := r.seal(t, in1), r.seal(t, in2)
	if len(e1) != len(e2) {
		t.Fatalf("ESP sizes %d and %d differ", len(e1), len(e2))
	}
	ike := append([]byte{0, 0, 0, 0}, bytes.Repeat([]byte{0x2e}, len(e1)-4)...)

	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got [][]byte
	var froms []netip.AddrPort
	served := make(chan error, 1)
	go func() {
		served <- r.b.ServeUDP(conn, func(msg []byte, from netip.AddrPort) {
			mu.Lock()
			defer mu.Unlock()
			got, froms = append(got, msg), append(froms, from)
		})
	}()

	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	var oob [32]byte
	run := append(append(append([]byte(nil), e1...), ike...), e2...)
	to := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	if _, _, err := peer.WriteMsgUDPAddrPort(run, udpSegmentCmsg(oob[:], len(e1)), to); err != nil {
		t.Fatalf("GSO send of 3 datagrams: %v", err)
	}

	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		r.tunB.mu.Lock()
		k := len(r.tunB.got)
		r.tunB.mu.Unlock()
		if n == 1 && k == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s: %d IKE messages, %d inner packets (stats %+v); want 1 and 2", n, k, r.b.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !bytes.Equal(got[0], ike[4:]) || froms[0] != peer.LocalAddr().(*net.UDPAddr).AddrPort() {
		t.Errorf("IKE message %d bytes from %v; want the %d bytes after the marker, from %v", len(got[0]), froms[0], len(ike)-4, peer.LocalAddr())
	}
	if !bytes.Equal(r.tunB.got[0], in1) || !bytes.Equal(r.tunB.got[1], in2) {
		t.Errorf("TUN got %x; want %x then %x", r.tunB.got, in1, in2)
	}
	if s := r.b.Stats(); s.RxPackets != 2 || s.DropAuth+s.DropMalformed+s.DropNoSA+s.DropPolicy != 0 {
		t.Errorf("stats %+v; want 2 packets received, no drops", s)
	}

	// The owner closes the socket (ServeUDP never does) and the loop ends.
	conn.Close()
	select {
	case err := <-served:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("ServeUDP after Close = %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeUDP still reading 5 s after its socket was closed")
	}
}
