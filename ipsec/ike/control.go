package ike

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

func bgctx() context.Context { return context.Background() }

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
}

// DeleteAll deletes every established SA, telling the peers.
func (d *Daemon) DeleteAll(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, sa := range d.sas {
		if sa.st == stEstablished {
			d.sendDeleteNow(sa)
		}
		d.removeSA(sa, "deleted by request")
	}
}

// ChildStatus describes one installed CHILD_SA.
type ChildStatus struct {
	InSPI    string         `json:"in_spi"`
	OutSPI   string         `json:"out_spi"`
	TSLocal  []netip.Prefix `json:"ts_local"`
	TSRemote []netip.Prefix `json:"ts_remote"`
}

// SAStatus describes one IKE SA.
type SAStatus struct {
	Role      string        `json:"role"`
	State     string        `json:"state"`
	SPIi      string        `json:"spi_i"`
	SPIr      string        `json:"spi_r"`
	Remote    string        `json:"remote"`
	Encap     bool          `json:"encap"`
	Peer      string        `json:"peer,omitempty"`
	Pin       string        `json:"pin,omitempty"`
	Lease     string        `json:"lease,omitempty"`
	VirtualIP string        `json:"virtual_ip,omitempty"`
	DNS       []netip.Addr  `json:"dns,omitempty"`
	Suite     string        `json:"suite,omitempty"`
	Age       string        `json:"age"`
	Children  []ChildStatus `json:"children"`
}

// Status lists the SAs.
func (d *Daemon) Status() []SAStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]SAStatus, 0, len(d.sas))
	for _, sa := range d.sas {
		if sa.st != stRefused {
			out = append(out, saStatus(sa))
		}
	}
	return out
}

func saStatus(sa *ikeSA) SAStatus {
	s := SAStatus{Role: "responder", State: sa.st.String(), SPIi: fmt.Sprintf("%016x", sa.spii), SPIr: fmt.Sprintf("%016x", sa.spir),
		Remote: sa.remote.String(), Encap: sa.natT, Lease: sa.lease, Age: time.Since(sa.created).Round(time.Second).String(), Children: []ChildStatus{}}
	if sa.initiator {
		s.Role = "initiator"
	}
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
	for _, c := range sa.children {
		s.Children = append(s.Children, ChildStatus{InSPI: fmt.Sprintf("%08x", c.cfg.InSPI), OutSPI: fmt.Sprintf("%08x", c.cfg.OutSPI), TSLocal: c.cfg.TSLocal, TSRemote: c.cfg.TSRemote})
	}
	return s
}
