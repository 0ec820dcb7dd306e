package ike

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"ferry/ipsec/dataplane"
)

// espInput is implemented by data planes that take ESP datagrams from the
// daemon's port-4500 socket (ipsec/esp); the kernel demultiplexes by
// itself.
type espInput interface {
	Input(pkt []byte, from netip.AddrPort) error
}

// Daemon is one IKEv2 endpoint: the responder for everyone who connects
// and the initiator for Connect.
type Daemon struct {
	cfg        Config
	log        *slog.Logger
	conn, natc *net.UDPConn

	mu       sync.Mutex
	sas      map[uint64]*ikeSA // by the SPI this side chose
	halfOpen map[initKey]*ikeSA
	refused  int        // SAs in stRefused
	logged   refusalLog // refusals already logged
	cookies  cookieJar
	// unknownSPI limits INVALID_IKE_SPI answers (liveness.go).
	unknownSPI invalidSPILimit
	// lost wakes Keep when a tunnel we opened went down.
	lost chan struct{}
	// tunnel is the history of the tunnel this daemon opens (Connect),
	// keys that of each peer key's tunnel (responder), for status.
	tunnel connHistory
	keys   map[string]*connHistory
}

// initKey finds a half-open responder SA from a retransmitted
// IKE_SA_INIT request.
type initKey struct {
	from netip.AddrPort
	spii uint64
}

// New opens the IKE sockets (Port and NATPort on Local).
func New(cfg Config) (*Daemon, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	conn, err := listen(cfg.Local, cfg.Port)
	if err != nil {
		return nil, err
	}
	natc := cfg.NATSocket
	if natc == nil {
		if natc, err = listen(cfg.Local, cfg.NATPort); err != nil {
			conn.Close()
			return nil, err
		}
	}
	d := newDaemon(cfg, conn, natc)
	if _, user := cfg.DataPlane.(espInput); !user {
		if err := d.prepareKernelSockets(); err != nil {
			conn.Close()
			natc.Close()
			return nil, err
		}
	}
	return d, nil
}

func newDaemon(cfg Config, conn, natc *net.UDPConn) *Daemon {
	d := &Daemon{cfg: cfg, log: cfg.Log, conn: conn, natc: natc, sas: map[uint64]*ikeSA{}, halfOpen: map[initKey]*ikeSA{},
		lost: make(chan struct{}, 1), keys: map[string]*connHistory{}}
	d.cookies.rotate()
	return d
}

func listen(a netip.Addr, port uint16) (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, port)))
	if err != nil {
		return nil, fmt.Errorf("ike: listen on %s port %d: %w", a, port, err)
	}
	c.SetReadBuffer(1 << 20)
	return c, nil
}

// NATConn is the port-4500 socket; a user-space ESP data plane sends on it.
func (d *Daemon) NATConn() *net.UDPConn { return d.natc }

// Run serves both sockets and the timers until ctx ends, then deletes
// every SA (telling the peers) and closes the sockets.
func (d *Daemon) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- d.serve(ctx, d.conn, false) }()
	go func() { errc <- d.serve(ctx, d.natc, true) }()
	expire := d.cfg.DataPlane.Expire()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			d.shutdown()
			<-errc
			<-errc
			return nil
		case err := <-errc:
			d.shutdown()
			return err
		case now := <-t.C:
			d.tick(now)
		case ev, ok := <-expire:
			if ok {
				d.expired(ev)
			} else {
				expire = nil
			}
		}
	}
}

func (d *Daemon) shutdown() {
	d.mu.Lock()
	for _, sa := range d.sas {
		if sa.st == stEstablished {
			d.sendDeleteNow(sa)
		}
		d.removeSA(sa, "daemon stopping")
	}
	d.mu.Unlock()
	d.conn.Close()
	d.natc.Close()
}

func (d *Daemon) serve(ctx context.Context, c *net.UDPConn, nat bool) error {
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("ike: read %s: %w", c.LocalAddr(), err)
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		pkt := buf[:n]
		if nat {
			kind, msg := dataplane.Classify(pkt)
			switch kind {
			case dataplane.ESP:
				if in, ok := d.cfg.DataPlane.(espInput); ok {
					in.Input(pkt, from)
				}
				continue
			case dataplane.IKE:
				pkt = msg
			default:
				continue
			}
		}
		d.receive(append([]byte(nil), pkt...), from, nat)
	}
}

// send writes datagrams to the peer on the SA's current port.
func (d *Daemon) send(sa *ikeSA, dgrams [][]byte) {
	sa.lastSend = time.Now()
	for _, b := range dgrams {
		d.sendTo(b, sa.remote, sa.natT)
	}
}

func (d *Daemon) sendTo(b []byte, to netip.AddrPort, nat bool) {
	var err error
	if nat {
		_, err = d.natc.WriteToUDPAddrPort(append([]byte{0, 0, 0, 0}, b...), to)
	} else {
		_, err = d.conn.WriteToUDPAddrPort(b, to)
	}
	if err != nil {
		d.log.Debug("ike: send failed", "to", to, "err", err)
	}
}

func (d *Daemon) localAddr(nat bool) netip.AddrPort {
	if nat {
		return netip.AddrPortFrom(d.cfg.Local, d.cfg.NATPort)
	}
	return netip.AddrPortFrom(d.cfg.Local, d.cfg.Port)
}

// newSPI picks a fresh non-zero IKE SPI not in use.
func (d *Daemon) newSPI() uint64 {
	for {
		var b [8]byte
		rand.Read(b[:])
		s := binary.BigEndian.Uint64(b[:])
		if _, used := d.sas[s]; s != 0 && !used {
			return s
		}
	}
}

func newChildSPI() uint32 {
	for {
		var b [4]byte
		rand.Read(b[:])
		// SPIs 1-255 are reserved by IANA (RFC 4303 2.1).
		if s := binary.BigEndian.Uint32(b[:]); s > 255 {
			return s
		}
	}
}

func nonce() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// removeSA forgets sa, removes its CHILD_SAs from the data plane and
// returns its virtual IP; pending Connect calls get the reason.
func (d *Daemon) removeSA(sa *ikeSA, reason string) {
	if sa.st == stRefused {
		d.refused--
		sa.st = stDeleting
		d.log.Debug("ike: forgot refused SA", "spi", fmt.Sprintf("%016x", sa.localSPI()), "reason", reason)
	}
	delete(d.sas, sa.localSPI())
	d.leaveHalfOpen(sa)
	for _, c := range sa.children {
		d.cfg.DataPlane.Remove(context.Background(), c.cfg.InSPI, c.cfg.OutSPI)
	}
	sa.children = nil
	if d.cfg.Authorizer == nil && d.cfg.Pool != nil && sa.peer != nil && sa.vip.IsValid() && !sa.origin && !sa.moved && !d.holds(sa.peer.Pin) {
		// Without an allow list there is no lease to bind the address
		// to (Revoke releases it otherwise): it goes with the key's last
		// SA.
		d.cfg.Pool.Release(sa.peer.Pin)
	}
	if sa.result != nil {
		sa.result <- errors.New(reason)
		sa.result = nil
	}
	if !sa.moved && sa.st == stEstablished {
		if h := d.history(sa); h != nil {
			h.lastReason, h.lastDown = reason, time.Now()
		}
	}
	if sa.origin && !sa.moved && sa.st == stEstablished {
		select {
		case d.lost <- struct{}{}:
		default:
		}
	}
	if sa.st == stEstablished || sa.st == stDeleting {
		d.log.Info("ike: SA down", "spi", fmt.Sprintf("%016x", sa.localSPI()), "peer", peerName(sa), "reason", reason)
	}
}

// leaveHalfOpen takes sa out of the half-open table: it authenticated,
// was refused, timed out or is gone. The entry is found by the key it was
// made with, never by the SA's current (peer-controlled) address.
func (d *Daemon) leaveHalfOpen(sa *ikeSA) {
	if d.halfOpen[sa.openKey] == sa {
		delete(d.halfOpen, sa.openKey)
	}
}

// holds reports whether an SA of the peer with pin is left (a responder's
// SA that has not been moved on by a rekey).
func (d *Daemon) holds(pin string) bool {
	for _, o := range d.sas {
		if !o.origin && !o.moved && o.peer != nil && o.peer.Pin == pin {
			return true
		}
	}
	return false
}

func peerName(sa *ikeSA) string {
	if sa.peer != nil {
		return sa.peer.Subject
	}
	return sa.remote.String()
}
