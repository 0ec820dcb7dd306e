package keeper

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"ferry/ipsec/ike"
)

// TunnelStatus is the tunnel part of GET /status: whether an IKE SA to
// the gateway is established and which inner address it gave us.
type TunnelStatus struct {
	Gateway   string `json:"gateway"`
	Up        bool   `json:"up"`
	VirtualIP string `json:"virtual_ip,omitempty"`
	SAs       int    `json:"ike_sas"`
	Children  int    `json:"child_sas"`
	Since     string `json:"since,omitempty"`
}

// Tunnel settings that both image A (in-process) and the keeper use.
const (
	// TUNName is the user-space ESP device of the lent server.
	TUNName = "ferry0"
	tunMTU  = 1400
	// ConnectTimeout bounds one attempt to bring the tunnel up.
	ConnectTimeout = 60 * time.Second
)

// Tunnel is the lent server's IKEv2 initiator with user-space ESP over a
// TUN device: the one-time certificate's tunnel to the borrower gateway.
// Image A runs one in-process; in image B the keeper runs it for the
// whole lease. Kernel XFRM can replace the data plane later: the daemon
// takes any dataplane.DataPlane.
type Tunnel struct {
	d      *ike.Daemon
	us     *ike.Userspace
	target ike.Target
	cancel context.CancelFunc
	since  time.Time
	log    *slog.Logger
}

// OpenTunnel opens the TUN device and the IKE sockets for st and starts
// the daemon; Connect or Keep then bring the tunnel up.
func OpenTunnel(ctx context.Context, st *ike.InitiatorState, log *slog.Logger) (*Tunnel, error) {
	local := st.Local
	if !local.IsValid() {
		a, err := routedFrom(st.Gateway)
		if err != nil {
			return nil, err
		}
		local = a
	}
	us, err := ike.OpenUserspace(local, 4500, TUNName, tunMTU, netip.Prefix{}, log)
	if err != nil {
		return nil, fmt.Errorf("tunnel to %s: user-space ESP on %s: %w", st.Gateway, TUNName, err)
	}
	cfg := ike.Config{Local: local, Certs: st.Certs, Key: st.Key, CAs: st.CAs,
		DataPlane: us, NATSocket: us.Socket, ForceEncap: true, Log: log,
		DPD: 10 * time.Second, IKELifetime: 4 * time.Hour, ChildLifetime: time.Hour}
	d, err := ike.New(cfg)
	if err != nil {
		us.Close()
		return nil, fmt.Errorf("tunnel to %s: %w", st.Gateway, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	go us.Run(ctx)
	go d.Run(ctx)
	return &Tunnel{d: d, us: us, target: st.Target(), cancel: cancel, log: log}, nil
}

// Connect brings the tunnel up once, within ConnectTimeout.
func (t *Tunnel) Connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ConnectTimeout)
	defer cancel()
	if err := t.d.Connect(ctx, t.target); err != nil {
		return fmt.Errorf("IKEv2 to gateway %s: %w", t.target.Gateway, err)
	}
	t.since = time.Now()
	return nil
}

// Keep holds the tunnel up (reconnecting after DPD failures or deletes)
// until ctx ends; rekeys run inside the daemon.
func (t *Tunnel) Keep(ctx context.Context) { t.d.Keep(ctx, t.target) }

// Status reports the SAs towards the gateway.
func (t *Tunnel) Status() TunnelStatus {
	s := TunnelStatus{Gateway: t.target.Gateway.String()}
	for _, sa := range t.d.Status() {
		if sa.Role != "initiator" {
			continue
		}
		s.SAs++
		s.Children += len(sa.Children)
		if sa.State == "established" {
			s.Up = true
			s.VirtualIP = sa.VirtualIP
		}
	}
	if s.Up && !t.since.IsZero() {
		s.Since = t.since.UTC().Format(time.RFC3339)
	}
	return s
}

// Close deletes the SAs (telling the gateway) and removes the device.
func (t *Tunnel) Close(ctx context.Context) {
	t.d.DeleteAll(ctx)
	t.cancel()
	t.us.Close()
}

// routedFrom is the local address the kernel would use towards gw.
func routedFrom(gw netip.Addr) (netip.Addr, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, 500)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("no route to gateway %s: %w", gw, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}
