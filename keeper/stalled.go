package keeper

import (
	"log/slog"
	"net/netip"
	"time"
)

// When the tunnel's data path comes back after an outage, the NFS
// client's TCP connection does not know: during the outage its segments
// went unanswered and TCP doubled its retransmission timeout after each
// (about 0.2, 0.4, ... 25.6 s), so its next retransmission can come half
// a minute after the network is back, and the root stays frozen until
// then. sunrpc reconnects at once only when the socket dies, and no
// setting of the root's TCP helps (a TCP_USER_TIMEOUT cannot be set on
// sunrpc's socket, and lowering net.ipv4.tcp_retries2 kills connections
// during outages the tunnel rides out). So when the keeper sees the
// tunnel work again it destroys (sock_diag SOCK_DESTROY, what `ss -K`
// does) the connections through the tunnel that TCP is still backing
// off: the kernel aborts them with a reset through the tunnel, sunrpc
// reconnects from the same port and resends what is outstanding, within
// a round trip. A connection that is not backing off is left alone: it
// already moves.

// tcpEstablished is TCP_ESTABLISHED in the kernel's TCP states.
const tcpEstablished = 1

// tcpConn is one TCP connection as sock_diag shows it.
type tcpConn struct {
	Local, Remote netip.AddrPort
	State         uint8
	// Backoff is tcpi_backoff, how often the retransmission timeout was
	// doubled; Retransmits is tcpi_retransmits, the unanswered
	// retransmissions of the oldest unacknowledged segment.
	Backoff, Retransmits uint8
	// Unacked is tcpi_unacked, the segments in flight.
	Unacked uint32
}

// backingOff picks, of conns, the established connections to an address
// in remote whose retransmissions TCP is backing off: those that would
// wait out their timeout although the path is back.
func backingOff(conns []tcpConn, remote []netip.Prefix) []tcpConn {
	var out []tcpConn
	for _, c := range conns {
		if c.State != tcpEstablished || (c.Backoff == 0 && c.Retransmits == 0) {
			continue
		}
		a := c.Remote.Addr().Unmap()
		for _, p := range remote {
			if p.Contains(a) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// recovery follows the tunnel's status for the moment its data path
// comes back after it was seen down: the tunnel is Up again (a reconnect,
// or ESP answered again), or, while the data path still looks stalled
// (nothing to send yet: TCP waits out its back-off), the gateway answered
// an IKE message sent after the stall was seen. It owns no lock: one
// goroutine (followTunnel) feeds it.
type recovery struct {
	down bool
	// since is when the tunnel was first seen down; kicked says the
	// connections were already reset for this outage on an IKE answer.
	since  time.Time
	kicked bool
}

// back takes the tunnel's status at now and reports whether the data
// path has just come back.
func (r *recovery) back(s TunnelStatus, now time.Time) bool {
	switch {
	case s.Up:
		was := r.down && !r.kicked
		*r = recovery{}
		return was
	case !s.Established:
		if !r.down {
			r.down, r.since = true, now
		}
		r.kicked = false // a new connection ends this outage
		return false
	case !r.down:
		r.down, r.since = true, now
		return false
	}
	// Established, data path stalled: LastHeard is whole seconds.
	heard, err := time.Parse(time.RFC3339, s.LastHeard)
	if r.kicked || err != nil || !heard.After(r.since.Truncate(time.Second)) {
		return false
	}
	r.kicked = true
	return true
}

// unstaller destroys the connections that back off through the tunnel.
// list and destroy are sock_diag's (stalled_linux.go); warned says the
// first failure was logged.
type unstaller struct {
	list    func() ([]tcpConn, error)
	destroy func(tcpConn) error
	log     *slog.Logger
	warned  bool
}

// reset destroys the connections to remote that back off, one log line
// each, and returns how many it destroyed. sock_diag missing (no
// inet_diag/tcp_diag, or a kernel without INET_DIAG_DESTROY) costs only
// the fast recovery: logged once, at the first failure.
func (u *unstaller) reset(remote []netip.Prefix, why string) int {
	conns, err := u.list()
	if err != nil {
		u.failed("listing TCP connections", err)
		return 0
	}
	n := 0
	for _, c := range backingOff(conns, remote) {
		if err := u.destroy(c); err != nil {
			u.failed("resetting "+c.Local.String()+" -> "+c.Remote.String(), err)
			continue
		}
		n++
		u.log.Info("tunnel back: reset a TCP connection still backing off, so that its owner reconnects now",
			"local", c.Local.String(), "remote", c.Remote.String(), "backoff", c.Backoff,
			"retransmits", c.Retransmits, "unacked", c.Unacked, "why", why)
	}
	return n
}

func (u *unstaller) failed(what string, err error) {
	if u.warned {
		u.log.Debug("sock_diag: "+what, "err", err)
		return
	}
	u.warned = true
	u.log.Warn("sock_diag unusable: TCP connections through the tunnel resume only when their own back-off ends",
		"what", what, "err", err)
}
