package ike

import "time"

// connHistory is one tunnel's connections, for status: a peer key's
// (responder) or the one this daemon opens (initiator).
type connHistory struct {
	since      time.Time // the current connection came up
	reconnects int       // connections after the first
	lastReason string    // why the last SA of the tunnel went down
	lastDown   time.Time
}

// maxKeyHistories bounds the responder's per-key histories; with an
// allow list they leave with their key (Revoke).
const maxKeyHistories = 100000

// keyConn is pin's history, made at its first connection.
func (d *Daemon) keyConn(pin string) *connHistory {
	h := d.keys[pin]
	if h == nil {
		h = &connHistory{}
		if len(d.keys) < maxKeyHistories {
			d.keys[pin] = h
		}
	}
	return h
}

// connected notes a fresh connection (not a rekey) in h.
func (d *Daemon) connected(h *connHistory) {
	if !h.since.IsZero() {
		h.reconnects++
	}
	h.since = time.Now()
}

// history is the connection history sa belongs to, if any.
func (d *Daemon) history(sa *ikeSA) *connHistory {
	switch {
	case sa.origin:
		return &d.tunnel
	case sa.peer != nil:
		return d.keys[sa.peer.Pin]
	}
	return nil
}

// History is a tunnel's connections so far (TunnelHistory).
type History struct {
	Since      time.Time // the current (or last) connection came up
	Reconnects int       // connections after the first
	LastReason string    // why the last SA of the tunnel went down
}

// TunnelHistory is the history of the tunnel this daemon opens
// (Connect, Keep), also while it is down.
func (d *Daemon) TunnelHistory() History {
	d.mu.Lock()
	defer d.mu.Unlock()
	return History{Since: d.tunnel.since, Reconnects: d.tunnel.reconnects, LastReason: d.tunnel.lastReason}
}
