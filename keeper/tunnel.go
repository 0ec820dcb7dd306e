package keeper

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"ferry/api"
	"ferry/ipsec/dataplane"
	"ferry/ipsec/ike"
)

// TunnelStatus is the tunnel part of GET /status: whether the tunnel to
// the gateway carries traffic, which inner address it gave us, and its
// history since the keeper started.
type TunnelStatus struct {
	Gateway string `json:"gateway"`
	// Up: an IKE SA is established and its data path is not stalled (ESP
	// we send is answered, or nothing is sent). Established is the IKE SA
	// alone; DataPath is ike.SAStatus.DataPath ("alive", "idle",
	// "stalled", "none").
	Up          bool   `json:"up"`
	Established bool   `json:"established"`
	DataPath    string `json:"data_path"`
	VirtualIP   string `json:"virtual_ip,omitempty"`
	SAs         int    `json:"ike_sas"`
	Children    int    `json:"child_sas"`
	// Since is when the current connection came up (a reconnect moves
	// it, a rekey does not); SAAgeSeconds and NextRekey are the current
	// IKE SA's; LastHeard is the last IKE message or ESP packet from the
	// gateway.
	Since        string `json:"since,omitempty"`
	SAAgeSeconds int64  `json:"sa_age_seconds,omitempty"`
	NextRekey    string `json:"next_rekey,omitempty"`
	LastHeard    string `json:"last_heard,omitempty"`
	// Reconnects counts connections after the first; LastReconnectReason
	// is why the previous one ended.
	Reconnects          int    `json:"reconnects"`
	LastReconnectReason string `json:"last_reconnect_reason,omitempty"`
	// DataPlane is the ESP data plane that carries the tunnel: "kernel"
	// (XFRM) or "user" (user-space ESP over TUN).
	DataPlane DataPlane `json:"dataplane"`
}

// DataPlane chooses where ESP runs: in the kernel (XFRM states and
// policies) or in ferry (user-space ESP over a TUN device).
type DataPlane string

// The data-plane choices. Auto takes the kernel plane when the kernel
// can build the tunnel's ESP states and user-space ESP otherwise.
const (
	DataPlaneAuto   DataPlane = "auto"
	DataPlaneKernel DataPlane = "kernel"
	DataPlaneUser   DataPlane = "user"
)

// ParseDataPlane reads a data-plane choice; "" is auto.
func ParseDataPlane(s string) (DataPlane, error) {
	switch p := DataPlane(s); p {
	case "":
		return DataPlaneAuto, nil
	case DataPlaneAuto, DataPlaneKernel, DataPlaneUser:
		return p, nil
	}
	return "", fmt.Errorf("data plane %q: want auto, kernel or user", s)
}

// Describe is the plane as the console names it.
func (p DataPlane) Describe() string {
	if p == DataPlaneKernel {
		return "kernel ESP"
	}
	return "user-space ESP"
}

// Tunnel settings that both image A (in-process) and the keeper use.
const (
	// TUNName is the user-space ESP device of the lent server.
	TUNName = "ferry0"
	tunMTU  = 1400
	// ConnectTimeout bounds one attempt to bring the tunnel up.
	ConnectTimeout = 60 * time.Second
	// RetryMax is the longest wait between two attempts to reopen the
	// tunnel: the root file system hangs meanwhile.
	RetryMax = 3 * time.Second
)

// Backoff is the tunnel's retransmission schedule: resends at most 2 s
// apart, so that a request in flight when the network or the gateway
// comes back is answered within 2 s; given up after 8 sends (about 14 s),
// then Keep reconnects.
var Backoff = ike.Backoff{Base: 500 * time.Millisecond, Max: 2 * time.Second, Tries: 8}

// Tunnel is the lent server's IKEv2 initiator: the one-time certificate's
// tunnel to the borrower gateway. ESP runs in the kernel (XFRM) where it
// can, else in user space over a TUN device. Image A runs one in-process;
// in image B the keeper runs it for the whole lease.
type Tunnel struct {
	d      *ike.Daemon
	plane  dataplane.DataPlane
	kind   DataPlane
	target ike.Target
	cancel context.CancelFunc
	log    *slog.Logger
}

// OpenTunnel opens the data plane that choice names (auto: the kernel's
// when it has ESP, with one log line saying why not otherwise) and the IKE
// sockets for st, and starts the daemon; Connect or Keep then bring the
// tunnel up.
func OpenTunnel(ctx context.Context, st *ike.InitiatorState, choice DataPlane, log *slog.Logger) (*Tunnel, error) {
	local := st.Local
	if !local.IsValid() {
		a, err := routedFrom(st.Gateway)
		if err != nil {
			return nil, err
		}
		local = a
	}
	if st.TunnelPool.IsValid() {
		// A pool holding the gateway or this server would have its guard
		// cut the tunnel's own path: refused before anything is set up.
		if err := api.CheckTunnelPool(st.TunnelPool, api.PathAddr{Name: "the gateway", Addr: st.Gateway}, api.PathAddr{Name: "this server's address", Addr: local}); err != nil {
			return nil, fmt.Errorf("tunnel to %s: %s: %w", st.Gateway, "vpn.json", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	t := &Tunnel{target: st.Target(), cancel: cancel, log: log}
	cfg := ike.Config{Local: local, Certs: st.Certs, Key: st.Key, CAs: st.CAs,
		ForceEncap: true, Log: log, Backoff: Backoff, RetryMax: RetryMax}
	if err := st.Timers.Apply(&cfg); err != nil {
		cancel()
		return nil, fmt.Errorf("tunnel to %s: %s: %w", st.Gateway, "vpn.json", err)
	}
	if err := t.openPlane(ctx, &cfg, choice); err != nil {
		cancel()
		return nil, fmt.Errorf("tunnel to %s: %w", st.Gateway, err)
	}
	// Fail closed before anything is sent: until the first CHILD_SA, and
	// whenever none is up, packets to the gateway's subnets are blocked
	// rather than routed in clear (B's kernel starts with nothing of A's).
	// The tunnel pool too: the other lent servers' virtual IPs are no
	// selector of ours (the gateway narrows to the borrower's subnets),
	// so without a guard a packet to one would take the default route
	// onto the lender LAN. With it, it goes through the tunnel where a
	// selector covers it (the SA's policy or route wins over the guard)
	// and is dropped everywhere else.
	guarded := t.target.RemoteSubnets
	if st.TunnelPool.IsValid() {
		guarded = append(slices.Clip(guarded), st.TunnelPool)
		log.Info("guarding the tunnel pool: other lent servers' addresses only through the tunnel, else dropped", "pool", st.TunnelPool)
	}
	if err := t.plane.Guard(ctx, guarded, st.Gateway); err != nil {
		t.plane.Close()
		cancel()
		return nil, fmt.Errorf("tunnel to %s (%s): %w", st.Gateway, t.kind.Describe(), err)
	}
	d, err := ike.New(cfg)
	if err != nil {
		t.plane.Close()
		cancel()
		return nil, fmt.Errorf("tunnel to %s (%s): %w", st.Gateway, t.kind.Describe(), err)
	}
	t.d = d
	go d.Run(ctx)
	return t, nil
}

// openPlane sets cfg's data plane to the kernel's or to user-space ESP,
// as choice says.
func (t *Tunnel) openPlane(ctx context.Context, cfg *ike.Config, choice DataPlane) error {
	if choice != DataPlaneUser {
		p, err := openKernelPlane(ctx, t.log)
		if err == nil {
			t.plane, t.kind, cfg.DataPlane = p, DataPlaneKernel, p
			return nil
		}
		if choice == DataPlaneKernel {
			return fmt.Errorf("kernel ESP (dataplane=kernel): %w", err)
		}
		t.log.Warn("kernel ESP unusable, falling back to user-space ESP", "reason", err.Error())
	}
	us, err := ike.OpenUserspace(cfg.Local, 4500, TUNName, tunMTU, netip.Prefix{}, t.log)
	if err != nil {
		return fmt.Errorf("user-space ESP on %s: %w", TUNName, err)
	}
	go us.Run(ctx)
	t.plane, t.kind, cfg.DataPlane, cfg.NATSocket = us, DataPlaneUser, us, us.Socket
	return nil
}

// Connect brings the tunnel up once, within ConnectTimeout.
func (t *Tunnel) Connect(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ConnectTimeout)
	defer cancel()
	if err := t.d.Connect(ctx, t.target); err != nil {
		return fmt.Errorf("IKEv2 to gateway %s: %w", t.target.Gateway, err)
	}
	return nil
}

// Keep holds the tunnel up (reconnecting after DPD failures or deletes)
// until ctx ends; rekeys run inside the daemon.
func (t *Tunnel) Keep(ctx context.Context) { t.d.Keep(ctx, t.target) }

// Status reports the tunnel towards the gateway.
func (t *Tunnel) Status() TunnelStatus {
	s := TunnelStatus{Gateway: t.target.Gateway.String(), DataPlane: t.kind, DataPath: "none"}
	for _, sa := range t.d.Status() {
		if !sa.Opened { // our tunnel, whichever end rekeyed it
			continue
		}
		s.SAs++
		s.Children += len(sa.Children)
		if sa.State == "established" && !s.Established {
			s.Established, s.VirtualIP, s.DataPath = true, sa.VirtualIP, sa.DataPath
			s.Since, s.SAAgeSeconds, s.NextRekey, s.LastHeard = sa.Since, sa.AgeSeconds, sa.NextRekey, sa.LastHeard
		}
	}
	s.Up = s.Established && (s.DataPath == "alive" || s.DataPath == "idle")
	h := t.d.TunnelHistory() // also while no SA is left
	s.Reconnects, s.LastReconnectReason = h.Reconnects, h.LastReason
	return s
}

// Close deletes the SAs (telling the gateway) and closes the data plane:
// the kernel's states, or the TUN device. The plane's fail-closed state
// (block policies or prohibit routes for the gateway's subnets, the
// virtual IP and its routes) stays: the lent server's lease ends with its
// kernel (power-off, or kexec from A to B), never with a clear-text window.
func (t *Tunnel) Close(ctx context.Context) {
	t.d.DeleteAll(ctx)
	t.cancel()
	t.plane.Close()
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
