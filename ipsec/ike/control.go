package ike

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// Revoke deletes every SA of the peer whose key has pin and frees the
// key's virtual IP: the allow list calls it when a lease's key leaves it
// (authz.Revoker), the end of the lease for the tunnel.
func (d *Daemon) Revoke(ctx context.Context, pin, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, sa := range d.sas {
		if sa.peer != nil && sa.peer.Pin == pin {
			d.sendDeleteNow(sa)
			d.removeSA(sa, "revoked: "+reason)
		}
	}
	if d.cfg.Pool != nil {
		d.cfg.Pool.Release(pin)
	}
	delete(d.keys, pin)
}

// DeleteAll deletes every established SA, telling the peers.
func (d *Daemon) DeleteAll(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deleteAll("deleted by request")
}

// deleteAll forgets every SA, telling the peer of each established one
// without waiting for its answer.
func (d *Daemon) deleteAll(reason string) {
	for _, sa := range d.sas {
		if sa.st == stEstablished {
			d.sendDeleteNow(sa)
		}
		d.removeSA(sa, reason)
	}
}

// ChildStatus describes one installed CHILD_SA. The counters are the
// data plane's (inner packets and bytes since it was installed).
type ChildStatus struct {
	InSPI      string         `json:"in_spi"`
	OutSPI     string         `json:"out_spi"`
	TSLocal    []netip.Prefix `json:"ts_local"`
	TSRemote   []netip.Prefix `json:"ts_remote"`
	AgeSeconds int64          `json:"age_seconds"`
	RekeyAt    string         `json:"rekey_at,omitempty"` // RFC 3339: its soft expiry by time
	Replaced   bool           `json:"replaced,omitempty"` // a rekey replaced it; it goes after a grace
	InPackets  uint64         `json:"in_packets"`
	InBytes    uint64         `json:"in_bytes"`
	OutPackets uint64         `json:"out_packets"`
	OutBytes   uint64         `json:"out_bytes"`
}

// SAStatus describes one IKE SA.
type SAStatus struct {
	// Role is this end's in the IKE SA (a rekey makes its requester the
	// initiator); Opened says this end opened the tunnel (Connect),
	// whichever end rekeyed since.
	Role      string       `json:"role"`
	Opened    bool         `json:"opened,omitempty"`
	State     string       `json:"state"`
	SPIi      string       `json:"spi_i"`
	SPIr      string       `json:"spi_r"`
	Remote    string       `json:"remote"`
	Encap     bool         `json:"encap"`
	Peer      string       `json:"peer,omitempty"`
	Pin       string       `json:"pin,omitempty"`
	Lease     string       `json:"lease,omitempty"`
	VirtualIP string       `json:"virtual_ip,omitempty"`
	DNS       []netip.Addr `json:"dns,omitempty"`
	Suite     string       `json:"suite,omitempty"`
	Age       string       `json:"age"`
	// AgeSeconds is this IKE SA's age (a rekey makes a new one);
	// NextRekey (RFC 3339) when this end rekeys it, if it does.
	AgeSeconds int64  `json:"age_seconds"`
	NextRekey  string `json:"next_rekey,omitempty"`
	// LastHeard (RFC 3339) is the last authenticated IKE message or ESP
	// packet from the peer.
	LastHeard string `json:"last_heard,omitempty"`
	// DataPath is whether ESP moves: "alive" (ESP from the peer within the
	// DPD interval), "idle" (none, and ours was not left unanswered),
	// "stalled" (we send, nothing comes back: a liveness check is under
	// way) or "none" (no CHILD_SA installed, or not established).
	DataPath string `json:"data_path"`
	// Since (RFC 3339) is when the current connection came up: a fresh
	// IKE_AUTH of this key (responder) or of our Connect (initiator),
	// kept across rekeys. Reconnects counts the connections after the
	// first since the daemon started; LastReconnectReason is why the
	// previous one ended.
	Since               string        `json:"since,omitempty"`
	Reconnects          int           `json:"reconnects"`
	LastReconnectReason string        `json:"last_reconnect_reason,omitempty"`
	Children            []ChildStatus `json:"children"`
}

// Status lists the SAs, reading each CHILD_SA's counters from the data
// plane.
func (d *Daemon) Status() []SAStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	out := make([]SAStatus, 0, len(d.sas))
	for _, sa := range d.sas {
		if sa.st != stRefused {
			out = append(out, d.saStatus(sa, now))
		}
	}
	return out
}

func (d *Daemon) saStatus(sa *ikeSA, now time.Time) SAStatus {
	s := SAStatus{Role: "responder", State: sa.st.String(), SPIi: fmt.Sprintf("%016x", sa.spii), SPIr: fmt.Sprintf("%016x", sa.spir),
		Remote: sa.remote.String(), Encap: sa.natT, Lease: sa.lease, Age: now.Sub(sa.created).Round(time.Second).String(),
		AgeSeconds: int64(now.Sub(sa.created) / time.Second), Children: []ChildStatus{}}
	if sa.initiator {
		s.Role = "initiator"
	}
	s.Opened = sa.origin
	if sa.peer != nil {
		s.Peer, s.Pin = sa.peer.Subject, sa.peer.Pin
	}
	if sa.vip.IsValid() {
		s.VirtualIP = sa.vip.String()
	}
	s.DNS = sa.dns
	if sa.suite != nil {
		s.Suite = sa.suite.String()
	}
	if sa.st == stEstablished && d.cfg.IKELifetime > 0 {
		d.ikeRekeyDue(sa, now) // picks the time if the first tick has not yet
		s.NextRekey = rfc3339(sa.rekeyAt)
	}
	if sa.st == stEstablished {
		d.probe(sa, now)
	}
	last := sa.lastRecv
	if sa.lastESPIn.After(last) {
		last = sa.lastESPIn
	}
	s.LastHeard = rfc3339(last)
	s.DataPath = d.dataPath(sa, now)
	if h := d.history(sa); h != nil && !h.since.IsZero() {
		s.Since, s.Reconnects, s.LastReconnectReason = rfc3339(h.since), h.reconnects, h.lastReason
	}
	for _, c := range sa.children {
		cs := ChildStatus{InSPI: fmt.Sprintf("%08x", c.cfg.InSPI), OutSPI: fmt.Sprintf("%08x", c.cfg.OutSPI), TSLocal: c.cfg.TSLocal, TSRemote: c.cfg.TSRemote,
			AgeSeconds: int64(now.Sub(c.installed) / time.Second), Replaced: c.replaced}
		if t := c.cfg.Lifetime.SoftTime; t > 0 && !c.replaced {
			cs.RekeyAt = rfc3339(c.installed.Add(t))
		}
		if ctr, err := d.cfg.DataPlane.Counters(bgctx(), c.cfg.InSPI, c.cfg.OutSPI); err == nil {
			cs.InPackets, cs.InBytes, cs.OutPackets, cs.OutBytes = ctr.InPackets, ctr.InBytes, ctr.OutPackets, ctr.OutBytes
		}
		s.Children = append(s.Children, cs)
	}
	return s
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
