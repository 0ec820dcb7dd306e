package ike

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Daemon is one IKEv2 endpoint: the responder for everyone who connects
// and the initiator for Connect.
type Daemon struct {
	cfg        Config
	log        *slog.Logger
	conn, natc *net.UDPConn
	counts     counts

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
	// certs is our own chain, cfg.Certs until SetCerts replaces it (a
	// renewed certificate for the same key, certs.go).
	certs atomic.Pointer[[]*x509.Certificate]
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
	if _, user := cfg.DataPlane.(espServer); !user {
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
	certs := cfg.Certs
	d.certs.Store(&certs)
	return d
}

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

// shutdown deletes every established SA, telling the peer without
// waiting for its answer, and closes the sockets.
func (d *Daemon) shutdown() {
	d.mu.Lock()
	d.deleteAll("daemon stopping")
	d.mu.Unlock()
	d.conn.Close()
	d.natc.Close()
}

// bgctx is the context of data plane calls made under the daemon's lock,
// which no caller's context bounds.
func bgctx() context.Context { return context.Background() }
