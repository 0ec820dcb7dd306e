package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"ferry/api"
	"ferry/ipsec/ike"
	"ferry/keeper"
	"ferry/pki"
)

// enrollTries bounds attempts when the lender cannot be reached; a refusal
// (a used or expired token) is final at once.
const enrollTries = 4

// enroll makes the one-time key in RAM, sends its CSR with the one-time
// token to the lender manager (TLS pinned to ferry.ca=) and keeps what the
// answer says: the certificate, the borrower's gateway and CA, image B and
// the root. From here on every phase is reported to the lender.
func (a *Agent) enroll(ctx context.Context) error {
	lenderURL, pin, token, err := a.bootstrap()
	if err != nil {
		return err
	}
	a.trace = traceID(a.cmd)
	leaseID, serverID, err := subjectFromTrace(a.trace)
	if err != nil {
		return err
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return err
	}
	csr, err := pki.CreateCSR(key, pki.Identity{CommonName: leaseID + "/" + serverID})
	if err != nil {
		return err
	}
	c := &api.Client{Base: lenderURL, HTTP: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: lenderTLS(pin, lenderURL, nil)}}}
	var resp api.EnrollResponse
	req := api.EnrollRequest{Token: token, MAC: a.mac, CSR: string(csr)}
	if err := callRetrying(ctx, func() error { return c.Call(ctx, http.MethodPost, api.PathEnroll, req, &resp) }); err != nil {
		return fmt.Errorf("enroll at %s: %w", lenderURL, err)
	}
	e, err := checkEnrollment(&resp, leaseID, serverID)
	if err != nil {
		return err
	}
	if err := sameKey(e.cert, key.Public()); err != nil {
		return err
	}
	if e.pool.IsValid() {
		if err := api.CheckTunnelPool(e.pool, api.PathAddr{Name: "the lender", Addr: urlAddr(lenderURL)}); err != nil {
			return fmt.Errorf("enrollment answer: tunnel_pool: %w", err)
		}
	} else {
		a.con.printf("ferry: warning: the lease names no tunnel_pool (an older borrower): packets to other lent servers' tunnel addresses are not guarded")
	}
	a.settings = e.settings
	a.lease = &Lease{LenderURL: lenderURL, CAPin: pin, LeaseID: leaseID, ServerID: serverID, Gateway: e.gateway.String()}
	a.ident = &ike.InitiatorState{Gateway: e.gateway, VirtualIP: true, ForceEncap: true, Timers: e.timers,
		TunnelPool: e.pool, Key: key, Certs: []*x509.Certificate{e.cert}, CAs: e.borrowerCA}
	a.imageTLS = borrowerTLS(e.borrowerCA)
	a.rep.connect(ctx, a.lease, tls.Certificate{Certificate: [][]byte{e.cert.Raw}, PrivateKey: key, Leaf: e.cert})
	a.con.printf("ferry: enrolled lease=%s server=%s serial=%x gateway=%s until %s",
		leaseID, serverID, e.cert.SerialNumber, e.gateway, e.cert.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// bootstrap reads the lender's parameters from A's command line.
func (a *Agent) bootstrap() (lenderURL, pin, token string, err error) {
	lenderURL, _ = a.cmd.Get("ferry.lender")
	pin, _ = a.cmd.Get("ferry.ca")
	token, _ = a.cmd.Get("ferry.token")
	u, perr := url.Parse(lenderURL)
	if perr != nil || u.Scheme != "https" || u.Host == "" {
		return "", "", "", fmt.Errorf("ferry.lender=%q: want the lender manager's https URL", lenderURL)
	}
	if b, herr := hex.DecodeString(pin); herr != nil || len(b) != 32 {
		return "", "", "", fmt.Errorf("ferry.ca=%q: want the lender CA's SHA-256 fingerprint, 64 hex digits", pin)
	}
	if token == "" {
		return "", "", "", errors.New("no ferry.token= on the kernel command line")
	}
	if _, ok := a.cmd.Get("ferry.trace"); !ok {
		return "", "", "", errors.New("no ferry.trace= on the kernel command line (it names the lease and server)")
	}
	return lenderURL, pin, token, nil
}

// lenderTLS is the TLS of every call to the lender: its serving
// certificate, signed by the pinned CA, for the ferry.lender URL's host
// (api.PinnedClientTLS). An unparsable URL leaves no host, which fails
// every handshake.
func lenderTLS(pin, lenderURL string, client *tls.Certificate) *tls.Config {
	var host string
	if u, err := url.Parse(lenderURL); err == nil {
		host = u.Hostname()
	}
	return api.PinnedClientTLS(pin, host, client)
}

// urlAddr is the address of an URL's host; the zero Addr for a name.
func urlAddr(rawURL string) netip.Addr {
	u, err := url.Parse(rawURL)
	if err != nil {
		return netip.Addr{}
	}
	a, _ := netip.ParseAddr(u.Hostname())
	return a
}

// callRetrying retries fn while the lender is unreachable (a network
// error); an answer, a refusal or a failed pin check ends the loop.
func callRetrying(ctx context.Context, fn func() error) error {
	var err error
	for i := range enrollTries {
		if err = fn(); err == nil {
			return nil
		}
		var ne *net.OpError
		if !errors.As(err, &ne) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(1<<i) * time.Second):
		}
	}
	return err
}

func sameKey(cert *x509.Certificate, pub any) error {
	want, err := pki.Pin(pub)
	if err != nil {
		return err
	}
	got, err := pki.Pin(cert.PublicKey)
	if err != nil || got != want {
		return fmt.Errorf("enrollment answer: certificate serial %x is for key %s, not ours (%s)", cert.SerialNumber, got, want)
	}
	return nil
}

// borrowerTLS verifies image B's server: the borrower CA from the
// enrollment answer is its only trust.
func borrowerTLS(cas []*x509.Certificate) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: certPool(cas)}
}

func certPool(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// tunnelA opens IKEv2 to the borrower's gateway with the one-time
// certificate; the gateway hands out an address inside the borrower's
// network, and fetch-b goes through the tunnel. ESP runs where
// ferry.dataplane says (tunnel_plane.go); B's keeper follows A's choice.
func (a *Agent) tunnelA(ctx context.Context) error {
	plane, err := a.dataPlane()
	if err != nil {
		return err
	}
	// Kernel ESP (and the auto plane's probe of it) needs ESP's modules,
	// which have been loading since the modules phase.
	if err := a.waitModules(ctx); err != nil {
		return err
	}
	t, err := keeper.OpenTunnel(ctx, a.ident, plane, a.log)
	if err != nil {
		return err
	}
	if err := connectRetrying(ctx, t, a.log); err != nil {
		t.Close(ctx)
		return err
	}
	a.tunnel = t
	st := t.Status()
	a.con.printf("ferry: tunnel up gateway=%s vip=%s via %s", st.Gateway, st.VirtualIP, st.DataPlane.Describe())
	return nil
}

// tunnelWait bounds tunnel-a: the borrower learns the one-time key from
// the lender only after enrollment and then puts it on the gateway's allow
// list, so the first attempts may be refused.
const tunnelWait = 2 * time.Minute

// tunnelRetryDelay is the pause after the try'th refused attempt. The
// borrower's poll of a booting lease is held at the lender and answered
// at the enrollment, and the gateway reloads its allow list when the
// borrower replaces it, so the key is normally accepted a few hundred
// milliseconds after enrollment: the first tries come every 0.2 s (a
// refused try costs A and the gateway one handshake, tens of
// milliseconds), then every 0.5 s for a lender or borrower that polls,
// then 2 s, so that a key that never comes costs the gateway one
// refused handshake per 2 s, as before.
func tunnelRetryDelay(try int) time.Duration {
	switch {
	case try <= 5:
		return 200 * time.Millisecond
	case try <= 9:
		return 500 * time.Millisecond
	}
	return 2 * time.Second
}

func connectRetrying(ctx context.Context, t *keeper.Tunnel, log *slog.Logger) error {
	deadline := time.Now().Add(tunnelWait)
	for try := 1; ; try++ {
		err := t.Connect(ctx)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		log.Warn("tunnel not up yet (is the key on the gateway's allow list?); retrying", "try", try, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(tunnelRetryDelay(try)):
		}
	}
}

// armed is the last word of A: the console line and, in managed mode,
// the "kexec-armed" report to the lender. The tunnel is closed first so
// that the gateway frees the SA at once rather than at its DPD timeout;
// B re-opens it with the same certificate.
func (a *Agent) armed(ctx context.Context) {
	if a.tunnel != nil {
		a.tunnel.Close(ctx)
	}
	now := time.Now()
	a.con.printf("ferry: kexec armed trace=%s", a.trace)
	a.rep.add(ctx, "kexec-armed", now, now, 0, nil)
	a.rep.drain()
}
