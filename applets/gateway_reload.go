package applets

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"ferry/ipsec/authz"
	"ferry/ipsec/ike"
)

// reload applies next (read and checked) where the running gateway can
// take it and says what waits for a restart; it returns what now runs.
// Live: the key pair (cert, key), ca, crl, subnets, dns and the timers
// (ike.Daemon.Reconfigure: for the next IKE_AUTH, the next tick and the
// next rekey; established SAs stay up as they are), and the allow list
// is read again. At restart only: what sockets, devices and files were
// opened with (listen, pool, inner, tun, status, status_listen,
// addresses, allow).
func (g *gatewayParts) reload(ctx context.Context, env *Env, d *ike.Daemon, crl *crlWatch, old, next gatewayLoaded) gatewayLoaded {
	n := next.cfg
	err := d.Reconfigure(ike.Live{Certs: n.Certs, Key: n.Key, CAs: n.CAs, LocalSubnets: n.LocalSubnets, DNS: n.DNS,
		DPD: n.DPD, IKELifetime: n.IKELifetime, ChildLifetime: n.ChildLifetime, RekeyMargin: n.RekeyMargin})
	if err != nil {
		env.Log.Error("gateway: reload refused, the running configuration stays",
			"err", fmt.Errorf("gateway config %s: cert %s, key %s: %w", next.path, next.file.Cert, next.file.Key, err))
		return old
	}
	applied, restart := next, []string{}
	o, f := old.file, &applied.file
	for _, s := range []struct {
		name     string
		old, new *string
	}{{"listen", &o.Listen, &f.Listen}, {"pool", &o.Pool, &f.Pool}, {"inner", &o.Inner, &f.Inner}, {"tun", &o.TUN, &f.TUN},
		{"status", &o.Status, &f.Status}, {"status_listen", &o.StatusListen, &f.StatusListen},
		{"addresses", &o.Addresses, &f.Addresses}, {"allow", &o.Allow, &f.Allow}} {
		if *s.old != *s.new {
			restart = append(restart, s.name)
			*s.new = *s.old
		}
	}
	applied.cfg.Local, applied.cfg.Pool, applied.parts = old.cfg.Local, old.cfg.Pool, old.parts
	if f.CRL != crl.path || !crl.issuedBy(n.CAs[0]) {
		crl.start(ctx, f.CRL, n.CAs[0])
	}
	// As before the whole file was reloaded: SIGHUP re-reads the allow
	// list at once rather than at the next poll.
	if err := g.allow.Load(ctx, o.Allow); err != nil {
		env.Log.Warn("gateway: reload: allow list not re-read, the running one stays", "allow", o.Allow, "err", err)
	}
	if len(restart) > 0 {
		env.Log.Warn("gateway: reload: these settings change only at restart", "settings", restart)
	}
	env.Log.Info("gateway: configuration reloaded", "config", next.path, "cert", f.Cert, "ca", f.CA, "crl", f.CRL,
		"subnets", n.LocalSubnets, "dns", n.DNS, "dpd", n.DPD, "ike_lifetime", n.IKELifetime,
		"child_lifetime", n.ChildLifetime, "rekey_margin", n.RekeyMargin, "sas", len(d.Status()))
	return applied
}

// crlWatch is the one goroutine watching the CRL file ("crl"), restarted
// when a reload names another file or another CA. A CRL already loaded
// stays in force when "crl" is removed: nothing once revoked gets back in
// before a restart.
type crlWatch struct {
	allow  *authz.List
	path   string
	ca     *x509.Certificate
	cancel context.CancelFunc
}

func (w *crlWatch) start(ctx context.Context, path string, ca *x509.Certificate) {
	w.stop()
	w.path, w.ca = path, ca
	if path == "" {
		return
	}
	// The first load before returning: the daemon may already verify
	// peers against ca (a reload's Reconfigure), and a certificate this
	// CRL lists must not pass IKE_AUTH while the watch is being
	// scheduled. An unreadable file keeps the CRL loaded before; the
	// watch says why and retries.
	w.allow.LoadCRL(ctx, path, ca)
	ctx, w.cancel = context.WithCancel(ctx)
	go w.allow.WatchCRL(ctx, path, ca, 2*time.Second)
}

func (w *crlWatch) stop() {
	if w.cancel != nil {
		w.cancel()
		w.cancel = nil
	}
}

func (w *crlWatch) issuedBy(ca *x509.Certificate) bool {
	return w.ca != nil && bytes.Equal(w.ca.Raw, ca.Raw)
}
