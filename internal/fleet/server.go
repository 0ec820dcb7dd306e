//go:build linux

package fleet

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"ferry/agent"
	"ferry/api"
	"ferry/ipsec/dataplane"
	"ferry/ipsec/dataplane/dataplanetest"
	"ferry/ipsec/esp"
	"ferry/ipsec/ike"
	"ferry/netboot"
	"ferry/pki"
)

// Lender is the lender's side as a lent server meets it before its tunnel.
type Lender struct {
	// Netboot is the lender's netboot server: its DHCP handler (Answer) is
	// called as a relay would, its HTTP handler is reached over TCP.
	Netboot *netboot.Server
	CA      *x509.Certificate // the lender CA, which the agent API's TLS chains to
}

// Gateway is the borrower's side: where the tunnels go and how an
// enrolled key gets on its allow list (the borrower's job).
type Gateway struct {
	Addr          netip.Addr
	CAs           []*x509.Certificate // the borrower CA the gateway's certificate chains to
	RemoteSubnets []netip.Prefix
	// Allow puts an enrolled key on the gateway's allow list; nil: the
	// borrower manager does (it polls the lender for enrolled keys).
	Allow func(pin, lease string) error
	DPD   time.Duration
	// Data, when set, carries the servers' inner packets: each tunnel
	// gets a user-space ESP plane on it (as image A's agent runs one),
	// and image B can be fetched through it. Nil: the CHILD_SAs are
	// negotiated and held, not carried.
	Data *Ports
	// NoVirtualIP asks for no inner address (a responder configured
	// without a pool).
	NoVirtualIP bool
}

// Server is one played lent server.
type Server struct {
	MAC     net.HardwareAddr
	Addr    netip.Addr // from the lender's DHCP
	Pin     string
	Retries int // IKE attempts refused before the allow list had the key
	cert    *x509.Certificate
	key     crypto.Signer
	enr     *api.EnrollResponse // the lender's answer: image B, borrower CA
	d       *ike.Daemon
	port    *port // on Gateway.Data, when the tunnel carries data
	done    chan struct{}
}

// IKE is the server's IKE daemon, holding its tunnel.
func (s *Server) IKE() *ike.Daemon { return s.d }

// Wait returns once the server's IKE daemon stopped.
func (s *Server) Wait() { <-s.done }

// Prepare runs one lent server through the steps before its tunnel
// (DHCP, script, image A, enrollment) and puts its key on the gateway's
// allow list, recording each step in rec.
func Prepare(ctx context.Context, mac net.HardwareAddr, l Lender, g Gateway, rec *Recorder) (*Server, error) {
	s := &Server{MAC: mac}
	step := func(name string, f func() error) error {
		start := time.Now()
		err := f()
		rec.Add(name, start, time.Now(), err)
		if err != nil {
			return fmt.Errorf("%s %s: %w", mac, name, err)
		}
		return nil
	}
	var scriptURL string
	if err := step(StepDHCP, func() (err error) { s.Addr, scriptURL, err = dhcp(ctx, l.Netboot, mac); return err }); err != nil {
		return nil, err
	}
	web := httpFrom(s.Addr, nil)
	var script string
	if err := step(StepScript, func() (err error) { script, err = get(ctx, web, scriptURL, 64<<10); return err }); err != nil {
		return nil, err
	}
	kernel, initrd, params, err := parseScript(script)
	if err != nil {
		return nil, err
	}
	if err := step(StepImageA, func() error {
		for _, u := range []string{kernel, initrd} {
			if _, err := get(ctx, web, u, 1<<30); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var cert *x509.Certificate
	var key crypto.Signer
	if err := step(StepEnroll, func() (err error) { cert, key, s.enr, err = enroll(ctx, s.Addr, l.CA, mac, params); return err }); err != nil {
		return nil, err
	}
	if s.Pin, err = pki.Pin(cert.PublicKey); err != nil {
		return nil, err
	}
	if g.Allow != nil {
		if err := g.Allow(s.Pin, s.enr.LeaseID); err != nil {
			return nil, err
		}
	}
	s.cert, s.key = cert, key
	return s, nil
}

// Tunnel opens the server's tunnel to the gateway, recording the
// handshake in rec. The tunnel lives, with DPD, until ctx ends.
func (s *Server) Tunnel(ctx context.Context, g Gateway, rec *Recorder, log *slog.Logger) error {
	mac, cert, key := s.MAC, s.cert, s.key
	var err error
	var dp dataplane.DataPlane = dataplanetest.NewNull()
	var natc *net.UDPConn
	if g.Data != nil {
		// Image A's user-space plane, on its own port-4500 socket shared
		// with the daemon, its TUN a port of the shared device.
		if natc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(s.Addr, dataplane.NATTPort))); err != nil {
			return fmt.Errorf("%s: %w", mac, err)
		}
		s.port = g.Data.newPort()
		plane := esp.New(esp.Config{TUN: s.port, Conn: natc, Router: s.port, MTU: g.Data.mtu, Log: log})
		go plane.Run(ctx)
		dp = plane
	}
	if s.d, err = ike.New(ike.Config{Local: s.Addr, NATSocket: natc, Certs: []*x509.Certificate{cert}, Key: key, CAs: g.CAs,
		DataPlane: dp, ForceEncap: true, DPD: g.DPD, Log: log}); err != nil {
		if natc != nil {
			natc.Close()
			s.port.close()
		}
		return fmt.Errorf("%s: ike: %w", mac, err)
	}
	s.done = make(chan struct{})
	go func() {
		s.d.Run(ctx)
		if s.port != nil {
			s.port.close()
		}
		close(s.done)
	}()
	t := ike.Target{Gateway: g.Addr, RemoteSubnets: g.RemoteSubnets, VirtualIP: !g.NoVirtualIP}
	// The borrower's allow list reaches the gateway a moment after the
	// enrollment (a file it reloads): a refusal before that is retried,
	// and only the attempt that succeeds is the step's time.
	for {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		start := time.Now()
		err = s.d.Connect(cctx, t)
		cancel()
		if err == nil {
			rec.Add(StepIKE, start, time.Now(), nil)
			return nil
		}
		if s.Retries++; s.Retries >= 8 || ctx.Err() != nil {
			rec.Add(StepIKE, start, time.Now(), err)
			return fmt.Errorf("%s: ike after %d attempts: %w", mac, s.Retries, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(s.Retries) * 250 * time.Millisecond):
		}
	}
}

// FetchImageB fetches image B (kernel and initrd, each checked against
// the SHA-256 of the enrollment answer) as image A's agent does, with its
// code, from the server's virtual IP: through its tunnel, to the
// borrower's image server. It records the step and returns the bytes.
func (s *Server) FetchImageB(ctx context.Context, rec *Recorder) (int64, error) {
	start := time.Now()
	n, err := s.fetchImageB(ctx)
	rec.Add(StepImageB, start, time.Now(), err)
	if err != nil {
		return n, fmt.Errorf("%s %s: %w", s.MAC, StepImageB, err)
	}
	return n, nil
}

func (s *Server) fetchImageB(ctx context.Context) (int64, error) {
	if s.port == nil {
		return 0, errors.New("the tunnel carries no data (Gateway.Data unset)")
	}
	vip, err := s.port.VIP()
	if err != nil {
		return 0, err
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: vip.AsSlice()}, Timeout: 20 * time.Second}
	return agent.FetchImageB(ctx, s.enr, d.DialContext)
}

// dhcp takes an address from the lender's DHCP handler as iPXE does
// (user class iPXE: the answer names the script's URL).
func dhcp(ctx context.Context, srv *netboot.Server, mac net.HardwareAddr) (netip.Addr, string, error) {
	ipxe := dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE"))
	disc, err := dhcpv4.NewDiscovery(mac, ipxe)
	if err != nil {
		return netip.Addr{}, "", err
	}
	offer, err := srv.Answer(ctx, disc)
	if err != nil {
		return netip.Addr{}, "", fmt.Errorf("discover: %w", err)
	}
	req, err := dhcpv4.NewRequestFromOffer(offer, ipxe)
	if err != nil {
		return netip.Addr{}, "", err
	}
	ack, err := srv.Answer(ctx, req)
	if err != nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		return netip.Addr{}, "", fmt.Errorf("request: no ACK (%v)", err)
	}
	a, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || ack.BootFileNameOption() == "" {
		return netip.Addr{}, "", errors.New("ACK without an address or a script URL")
	}
	return a, ack.BootFileNameOption(), nil
}

// httpFrom is an HTTP client whose connections leave from addr, as the
// lent server's own would; roots, when set, is the TLS trust.
func httpFrom(addr netip.Addr, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: addr.AsSlice()}, Timeout: 10 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	if roots != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

func get(ctx context.Context, c *http.Client, u string, limit int64) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	var b strings.Builder
	_, err = io.Copy(&b, io.LimitReader(resp.Body, limit))
	return b.String(), err
}

// parseScript reads the kernel and initrd URLs and the kernel's
// parameters from the lender's iPXE script (netboot's ipxeScript).
func parseScript(s string) (kernel, initrd string, params map[string]string, err error) {
	params = map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "kernel":
			kernel = f[1]
			for _, p := range f[2:] {
				if k, v, ok := strings.Cut(p, "="); ok {
					params[k] = v
				}
			}
		case len(f) >= 4 && f[0] == "initrd":
			initrd = f[len(f)-1]
		}
	}
	if kernel == "" || initrd == "" || params["ferry.token"] == "" || params["ferry.lender"] == "" {
		return "", "", nil, fmt.Errorf("script without kernel, initrd, ferry.token or ferry.lender: %.300q", s)
	}
	return kernel, initrd, params, nil
}

// enroll is image A's enrollment: a one-time key, its CSR with the token
// to the lender's agent API from the server's own address.
func enroll(ctx context.Context, from netip.Addr, ca *x509.Certificate, mac net.HardwareAddr, params map[string]string) (*x509.Certificate, crypto.Signer, *api.EnrollResponse, error) {
	u, err := url.Parse(params["ferry.lender"])
	if err != nil || u.Scheme != "https" {
		return nil, nil, nil, fmt.Errorf("ferry.lender=%q: want https", params["ferry.lender"])
	}
	leaseID, serverID, _ := strings.Cut(params["ferry.trace"], "-")
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return nil, nil, nil, err
	}
	csr, err := pki.CreateCSR(key, pki.Identity{CommonName: leaseID + "/" + serverID})
	if err != nil {
		return nil, nil, nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	c := &api.Client{Base: strings.TrimRight(u.String(), "/"), HTTP: httpFrom(from, roots)}
	var resp api.EnrollResponse
	if err := c.Call(ctx, http.MethodPost, api.PathEnroll, api.EnrollRequest{Token: params["ferry.token"], MAC: mac.String(), CSR: string(csr)}, &resp); err != nil {
		return nil, nil, nil, err
	}
	certs, err := pki.ParseCertsPEM([]byte(resp.Certificate))
	if err != nil || len(certs) == 0 {
		return nil, nil, nil, fmt.Errorf("enrollment answer: certificate: %v", err)
	}
	return certs[0], key, &resp, nil
}
