package keeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Where the keeper answers. In managed mode both the plain-HTTP status and
// the shutdown request (HTTPS) are for the borrower, who reaches the lent
// server only through the tunnel, and for the root's own checks. So a
// wildcard listen address (":7070", ":7071", the defaults) means loopback
// (status only) and the tunnel's virtual IP, never every interface: the
// lender network, where the server's NIC still is, gets no answer. An
// address with a host is taken as it is (the operator chose it), and
// without a tunnel (lab mode) nothing changes.
//
// The virtual IP is known only once the tunnel is up, leaves the link
// while the keeper reconnects (the kernel plane removes it with the last
// CHILD_SA, the user plane with its TUN address) and may differ after a
// reconnect. So the listener binds it with IP_FREEBIND (the bind does not
// need the address present, and the socket stays while the address goes
// and comes back), and the keeper re-reads the tunnel's status every
// followEvery and listens anew only when the address changed. Polling,
// not an event: the tunnel reports state by Status(), and one look at it
// every half second costs nothing. The same look notices the tunnel's
// recovery after an outage (stalled.go): half a second of the 5 s the
// root may take to resume after the network is back.
const followEvery = 500 * time.Millisecond

// A listener on the virtual IP accepts connections only from addresses
// the tunnel carries (Tunnel.carries: the borrower's subnets). The virtual
// IP is a local address, and Linux takes packets for a local address on
// any interface (the weak host model): in the kernel plane it even sits on
// the NIC. Without the check a neighbour on the lender network that routes
// the virtual IP to the server's MAC would reach the listener in clear. A
// forged source inside the borrower's subnets gets no handshake: the
// answer goes into the tunnel.

// endpoint is one of the keeper's HTTP services and the listeners it
// serves on.
type endpoint struct {
	name  string
	serve func(net.Listener) error // until the listener closes
	log   *slog.Logger

	// follow: port on the tunnel's virtual IP, bound to vip when known.
	follow bool
	port   string
	allow  func(netip.Addr) bool // peers accepted on the virtual IP

	mu        sync.Mutex
	listeners []net.Listener // the fixed one(s), then the virtual IP's
	vip       netip.Addr
	vipLn     net.Listener
	lastErr   string // the last failure to listen on the virtual IP, logged
}

// listen opens e's listeners for addr: addr itself, or, when the keeper
// keeps a tunnel and addr has no host, loopback (if loopback) now and
// the virtual IP later (followTunnel).
func (k *Keeper) listen(name, addr string, loopback bool, serve func(net.Listener) error) (*endpoint, error) {
	e := &endpoint{name: name, serve: serve, log: k.log}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("keeper: %s listen address %q: %w", name, addr, err)
	}
	if host != "" || k.tunnel == nil {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("keeper: %s listener %s: %w", name, addr, err)
		}
		e.start(ln)
		return e, nil
	}
	e.follow, e.port, e.allow = true, port, k.tunnel.carries
	if loopback {
		// IP_FREEBIND: the keeper must not fail for want of lo (the network
		// phase sets it up, but status is not worth a failed boot).
		ln, err := listenFreebind(net.JoinHostPort("127.0.0.1", port))
		if err != nil {
			return nil, fmt.Errorf("keeper: %s listener on loopback port %s: %w", name, port, err)
		}
		// Port 0 (tests): the virtual IP gets the port loopback got.
		e.port = fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
		e.start(ln)
	}
	return e, nil
}

// start serves on ln on a goroutine of its own.
func (e *endpoint) start(ln net.Listener) {
	e.mu.Lock()
	e.listeners = append(e.listeners, ln)
	e.mu.Unlock()
	e.log.Info("listening", "service", e.name, "addr", ln.Addr().String())
	go func() {
		err := e.serve(ln)
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			e.log.Error("listener stopped", "service", e.name, "addr", ln.Addr().String(), "err", err)
		}
	}()
}

// toVIP moves the endpoint's virtual-IP listener to vip, if it follows
// the tunnel and vip is a new address. A failed bind is retried on the
// next look.
func (e *endpoint) toVIP(vip netip.Addr) {
	if e == nil || !e.follow || !vip.IsValid() || vip == e.vip {
		return
	}
	addr := net.JoinHostPort(vip.String(), e.port)
	ln, err := listenFreebind(addr)
	if err != nil {
		if msg := addr + ": " + err.Error(); msg != e.lastErr { // once, not every second
			e.log.Warn("cannot listen on the tunnel's virtual IP; retrying", "service", e.name, "addr", addr, "err", err)
			e.lastErr = msg
		}
		return
	}
	e.lastErr = ""
	e.mu.Lock()
	old := e.vipLn
	e.vip, e.vipLn = vip, ln
	e.mu.Unlock()
	if old != nil {
		old.Close()
		e.log.Info("the tunnel's virtual IP changed", "service", e.name, "old", old.Addr().String())
	}
	e.start(&tunnelOnly{Listener: ln, allow: e.allow, log: e.log, name: e.name})
}

// tunnelOnly accepts only connections from peers allow admits, closing
// the others at once.
type tunnelOnly struct {
	net.Listener
	allow   func(netip.Addr) bool
	log     *slog.Logger
	name    string
	refused int
}

func (l *tunnelOnly) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		peer, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		if l.allow(peer.Addr()) {
			return c, nil
		}
		c.Close()
		// One line for the 1st, 2nd, 4th, 8th... refusal: a flood must not
		// fill the log.
		if l.refused++; l.refused&(l.refused-1) == 0 {
			l.log.Warn("refused a connection to the virtual IP from outside the tunnel", "service", l.name,
				"peer", c.RemoteAddr().String(), "refused_so_far", l.refused)
		}
	}
}

// close closes every listener of e.
func (e *endpoint) close() {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ln := range e.listeners {
		ln.Close()
	}
}

// followTunnel keeps the endpoints that follow the tunnel on its virtual
// IP, and resets the connections still backing off when the tunnel comes
// back (stalled.go), until ctx ends. It runs on the caller's goroutine,
// which makes the sockets, sock_diag's too, in the caller's network
// namespace (tests run the keeper in one).
func (k *Keeper) followTunnel(ctx context.Context, eps ...*endpoint) {
	t := time.NewTicker(followEvery)
	defer t.Stop()
	// A restarted keeper comes after an outage: the root's connections
	// backed off while no one kept the tunnel.
	rec := recovery{down: k.opt.Restarts > 0, since: k.start}
	unstall := newUnstaller(k.log)
	for {
		if k.tunnel != nil {
			st := k.tunnel.Status()
			if vip, err := netip.ParseAddr(st.VirtualIP); err == nil {
				for _, e := range eps {
					e.toVIP(vip)
				}
			}
			if rec.back(st, time.Now()) {
				unstall.reset(k.tunnel.remoteSelectors(), "data path "+st.DataPath)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// httpLimits bound what one client of the keeper's HTTP servers can
// hold.
type httpLimits struct {
	header, read, write, idle time.Duration
}

// defaultLimits: headers within 5 s, a whole request within 10 s, the
// answer written within 10 s, an idle keep-alive connection closed after
// 30 s. The keeper's answers are small and its requests have no body, so
// honest clients never get near; without them a client that stalls in a
// body (or never reads the answer) holds a connection and a goroutine for
// as long as it likes.
var defaultLimits = httpLimits{header: 5 * time.Second, read: 10 * time.Second, write: 10 * time.Second, idle: 30 * time.Second}

// newHTTPServer is an HTTP server with the keeper's limits and 8 KiB of
// headers at most.
func (k *Keeper) newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h,
		ReadHeaderTimeout: k.limits.header, ReadTimeout: k.limits.read,
		WriteTimeout: k.limits.write, IdleTimeout: k.limits.idle,
		MaxHeaderBytes: 8 << 10, ErrorLog: slog.NewLogLogger(k.log.Handler(), slog.LevelWarn)}
}
