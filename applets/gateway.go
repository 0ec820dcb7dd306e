package applets

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"ferry/configfile"
	"ferry/internal/promreg"
	"ferry/ipsec/authz"
	"ferry/ipsec/ike"
	"ferry/pki"
)

func gatewayApplet() Applet {
	return Applet{
		Name:    "gateway",
		Summary: "IPsec gateway for lent servers (IKEv2 responder with an allow list)",
		Run:     runGateway,
	}
}

// gatewayFile is the gateway's JSON configuration.
type gatewayFile struct {
	Listen  string   `json:"listen"`
	CA      string   `json:"ca"`
	Cert    string   `json:"cert"`
	Key     string   `json:"key"`
	Pool    string   `json:"pool"`
	Subnets []string `json:"subnets"`
	Inner   string   `json:"inner,omitempty"` // own inner address on the TUN device, e.g. 10.33.2.1/32
	Allow   string   `json:"allow"`           // allow list file (JSON lines)
	CRL     string   `json:"crl,omitempty"`   // the lender CA's CRL file (DER or PEM), reloaded on change
	Status  string   `json:"status,omitempty"`
	TUN     string   `json:"tun,omitempty"`
	DNS     []string `json:"dns,omitempty"` // name servers handed out with the virtual IP
	// Addresses is the file keeping which key holds which pool address
	// across restarts; default: the allow file's path + ".addresses".
	Addresses string `json:"addresses,omitempty"`
	// StatusListen serves /metrics (default 127.0.0.1:9733, loopback;
	// "off": none).
	StatusListen string `json:"status_listen,omitempty"`
	// dpd_seconds, ike_lifetime_seconds, child_lifetime_seconds,
	// rekey_margin_seconds: the defaults match the servers' keepers.
	ike.Timers
}

const gatewayUsage = `gateway --config FILE
       gateway status [--status SOCKET] [-o json]   (the SAs, as swanctl --list-sas)

The borrower's IKEv2 responder for lent servers. A peer gets in only if its
certificate chains to "ca" AND its public key's pin is on the "allow" list
(JSON lines, written by 'ferry borrower'; reloaded on change and on SIGHUP;
a removed key tears its tunnel down). ESP runs in user space over a TUN
device. Each key gets one address from "pool" for as long as it is on the
allow list, the same after any reconnect; the bindings are kept in the
"addresses" file (default: the allow file + ".addresses") so a restarted
gateway hands out the same ones; a line's "virtual_ip" gives its key that
address alone. "crl" (optional): the lender CA's CRL file (DER or PEM,
signed by "ca"), reloaded on change: a revoked certificate is refused and
its tunnel torn down, even while its key is listed. Liveness and rekeys: "dpd_seconds" (10),
"ike_lifetime_seconds" (14400), "child_lifetime_seconds" (3600) and
"rekey_margin_seconds" (360: each end rekeys between 2 and 1 margins
before the lifetime ends), the same defaults as the servers' keepers.
"status_listen" (default 127.0.0.1:9733, "off": none) serves /metrics:
SAs by state, ESP bytes and packets both ways, rekeys and refusals.
Requests for IKE SAs the gateway does not know (a server still holding
an SA from before a restart) get INVALID_IKE_SPI (at most 2 a second per
address, 100 in all).
SIGHUP (systemctl reload) re-reads and re-checks this file as --check
does: cert, key, ca, crl, subnets, dns and the timers apply at once, to
the next IKE_AUTH, liveness check and rekey (established tunnels stay up
as they are); listen, pool, inner, tun, status, status_listen, addresses
and allow are named in one log line as changing only at restart. A file
that fails its checks changes nothing: the error names the file, the
setting and why. Under systemd: RELOADING=1, then READY=1.
Example configuration:

  {"listen": "198.51.100.7", "ca": "lender-ca.pem",
   "cert": "gw.pem", "key": "gw.key", "pool": "10.8.1.0/24",
   "subnets": ["10.8.0.0/24"], "inner": "10.8.0.254/32",
   "allow": "/etc/ferry/gateway-allow.jsonl",
   "status": "/run/ferry-gateway.sock", "dns": ["10.8.0.53"]}

options:`

func runGateway(ctx context.Context, env *Env, args []string) error {
	if len(args) > 0 && args[0] == "status" {
		return gatewayStatus(ctx, env, args[1:])
	}
	fs := newFlags(env, "gateway", gatewayUsage)
	check := fs.Bool("check", false, "check the configuration, the key pair, the CA and the allow list, then exit: 0 ok, 1 problems (one per line)")
	path := fs.String("config", env.gatewayConfig(), "JSON configuration, or $FERRY_GATEWAY_CONFIG (listen, ca, cert, key, pool, subnets, inner, allow, addresses, crl, status, status_listen, tun, dns, dpd_seconds, ike_lifetime_seconds, child_lifetime_seconds, rekey_margin_seconds); SIGHUP re-reads it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *check {
		l, r, err := loadGateway(env, *path, false)
		if err != nil {
			return err
		}
		l.file.checkSetup(r, time.Now())
		return printCheck(env, r)
	}
	svc := serviceNotify(ctx, env, "gateway")
	defer svc.Close(ctx)
	reload, stop := reloadOnHangup(ctx, env, svc, "gateway", func() (gatewayLoaded, *configfile.Report, error) {
		return loadGateway(env, *path, true)
	})
	defer stop()
	l, r, err := loadGateway(env, *path, false)
	if err != nil {
		return err
	}
	if err := r.Err(); err != nil {
		return err
	}
	return l.parts.run(ctx, env, svc, l, reload)
}

// gatewayLoaded is a gateway configuration read and checked.
type gatewayLoaded struct {
	path  string
	file  gatewayFile
	cfg   ike.Config
	parts *gatewayParts
}

// loadGateway reads and checks the file at path, every problem in the
// report; with setup, also what serving needs beyond the file
// (checkSetup), as a reload does before it replaces anything.
func loadGateway(env *Env, path string, setup bool) (gatewayLoaded, *configfile.Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return gatewayLoaded{}, nil, fmt.Errorf("gateway config: %w", err)
	}
	if len(b) > 1<<20 {
		return gatewayLoaded{}, nil, fmt.Errorf("gateway config %s: %d bytes, over 1 MiB", path, len(b))
	}
	l := gatewayLoaded{path: path}
	r := &configfile.Report{Name: "gateway config " + path}
	configfile.Decode(r, b, &l.file)
	l.cfg, l.parts = l.file.check(env, r)
	if setup && !r.Failed() {
		l.file.checkSetup(r, time.Now())
	}
	return l, r, nil
}

type gatewayParts struct {
	allow *authz.List
	inner netip.Prefix
}

// build checks every setting, recording each problem in r, and returns
// what the gateway runs on; its error is r's (every problem at once).
func (c gatewayFile) build(env *Env) (ike.Config, *gatewayParts, error) {
	r := &configfile.Report{Name: "gateway config"}
	cfg, g := c.check(env, r)
	return cfg, g, r.Err()
}

func (c gatewayFile) check(env *Env, r *configfile.Report) (ike.Config, *gatewayParts) {
	var cfg ike.Config
	g := &gatewayParts{}
	var err error
	r.Required(map[string]string{"listen": c.Listen, "ca": c.CA, "cert": c.Cert, "key": c.Key, "pool": c.Pool})
	if c.Listen != "" {
		if cfg.Local, err = netip.ParseAddr(c.Listen); err != nil {
			r.Errorf("listen", c.Listen, "want the IP address IKE listens on (UDP 500 and 4500)")
		}
	}
	if c.Pool != "" {
		if pool, err := netip.ParsePrefix(c.Pool); err != nil {
			r.Errorf("pool", c.Pool, "want the prefix lent servers' virtual IPs come from, e.g. 10.8.1.0/24")
		} else if cfg.Pool, err = ike.NewPool(pool); err != nil {
			r.Errorf("pool", c.Pool, "%v", err)
		}
	}
	for i, s := range c.Subnets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			r.Errorf(fmt.Sprintf("subnets[%d]", i), s, "want a prefix lent servers may reach, e.g. 10.8.0.0/24")
			continue
		}
		cfg.LocalSubnets = append(cfg.LocalSubnets, p)
	}
	if len(c.Subnets) == 0 {
		r.Errorf("subnets", nil, "none given: want the prefixes lent servers reach through the tunnel (the image server, NFS)")
	}
	for i, s := range c.DNS {
		a, err := netip.ParseAddr(s)
		if err != nil {
			r.Errorf(fmt.Sprintf("dns[%d]", i), s, "want an IP address")
			continue
		}
		cfg.DNS = append(cfg.DNS, a)
	}
	if c.Inner != "" {
		if g.inner, err = netip.ParsePrefix(c.Inner); err != nil {
			r.Errorf("inner", c.Inner, "want the gateway's own inner address, e.g. 10.8.0.254/32")
		}
	}
	if c.CA != "" {
		if cfg.CAs, err = pki.LoadCertsFile(c.CA); err != nil {
			r.Errorf("ca", c.CA, "%v", err)
		}
	}
	if c.Cert != "" {
		if cfg.Certs, err = pki.LoadCertsFile(c.Cert); err != nil {
			r.Errorf("cert", c.Cert, "%v", err)
		}
	}
	if c.Key != "" {
		if cfg.Key, err = pki.LoadKeyFile(c.Key); err != nil {
			r.Errorf("key", c.Key, "%v", err)
		}
	}
	if c.Allow == "" {
		r.Errorf("allow", nil, "no allow list file (every key would be refused): want the file ferry borrower writes (its allow_file)")
	}
	if err := c.Timers.Apply(&cfg); err != nil {
		r.Add("", err)
	}
	g.allow = authz.New(env.Log, nil)
	cfg.Authorizer, cfg.ForceEncap, cfg.Log = g.allow, true, env.Log
	return cfg, g
}

// checkSetup records what starting the gateway will need beyond its
// file: the key pair, the CA, the allow list; certificates ending within
// 30 days and keys others may read are warnings.
func (c gatewayFile) checkSetup(r *configfile.Report, now time.Time) {
	if c.Cert != "" && c.Key != "" {
		_, w, err := pki.CheckPair(c.Cert, c.Key, pki.UsageIKE, nil, now)
		addChecked(r, "cert", c.Cert, err, w)
	}
	if c.CA != "" {
		_, w, err := pki.CheckCAFile(c.CA, now)
		addChecked(r, "ca", c.CA, err, w)
	}
	if c.Allow == "" {
		return
	}
	if _, err := os.Stat(c.Allow); err != nil {
		r.Errorf("allow", c.Allow, "%v: the borrower's allow_file, which `ferry borrower init` makes", err)
	}
	if c.CRL != "" {
		if _, err := os.Stat(c.CRL); err != nil {
			// The borrower writes it once it serves (gateway_crl_file): on
			// a site just set up, the gateway is checked before that.
			r.Infof("crl", c.CRL, "not there yet: ferry borrower serve writes it from the lender's CRL within 30 s of starting; the gateway loads it when it appears (until then it refuses no certificate as revoked)")
		}
	}
}

func addChecked(r *configfile.Report, field, value string, err error, w []string) {
	if err != nil {
		r.Errorf(field, value, "%v", err)
	}
	for _, s := range w {
		r.Warnf(field, value, "%s", s)
	}
}

func (g *gatewayParts) run(ctx context.Context, env *Env, svc *service, l gatewayLoaded, reload <-chan gatewayLoaded) error {
	cfg, c := l.cfg, l.file
	if err := g.allow.Load(ctx, c.Allow); err != nil {
		return err
	}
	addrs := c.Addresses
	if addrs == "" {
		addrs = c.Allow + ".addresses"
	}
	if err := cfg.Pool.Persist(addrs); err != nil {
		return err
	}
	// Keys that left the allow list while the gateway was down.
	listed := map[string]bool{}
	for _, e := range g.allow.Entries() {
		listed[e.Pin] = true
	}
	cfg.Pool.Retain(func(pin string) bool { return listed[pin] })
	tun := c.TUN
	if tun == "" {
		tun = "ferrygw0"
	}
	us, err := ike.OpenUserspace(cfg.Local, 4500, tun, 1400, g.inner, env.Log)
	if err != nil {
		return err
	}
	defer us.Close()
	// Replies to a lent server whose SA is gone must not leave in clear:
	// the pool is guarded (a prohibit route under the TUN's routes) for as
	// long as this host serves it, and after this process too.
	if err := us.Guard(ctx, []netip.Prefix{cfg.Pool.Prefix()}, netip.Addr{}); err != nil {
		return err
	}
	// A lent server has no business with another: what one sends to the
	// pool is dropped here, even where the subnets cover the pool.
	us.Isolate([]netip.Prefix{cfg.Pool.Prefix()})
	cfg.DataPlane, cfg.NATSocket = us, us.Socket
	d, err := ike.New(cfg)
	if err != nil {
		return err
	}
	g.allow.SetRevoker(d)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go us.Run(ctx)
	go g.allow.Watch(ctx, c.Allow, 2*time.Second)
	crl := &crlWatch{allow: g.allow}
	crl.start(ctx, c.CRL, cfg.CAs[0])
	defer crl.stop()
	if c.Status != "" {
		go d.ServeControl(ctx, c.Status, cancel)
	}
	statusLn, err := promreg.Listen(c.StatusListen, defaultGatewayStatusListen, env.Log)
	if err != nil {
		return err
	}
	if statusLn != nil {
		srv := gatewayStatusServer(d)
		go srv.Serve(statusLn)
		defer srv.Close()
	}
	env.Log.Info("gateway: serving", "listen", cfg.Local, "pool", cfg.Pool.Prefix(), "bound", cfg.Pool.Leased(), "addresses", addrs,
		"subnets", cfg.LocalSubnets, "allowed", len(g.allow.Entries()), "status", promreg.Addr(statusLn))
	svc.Ready()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	running := l
	for {
		select {
		case err := <-done:
			return err
		case next := <-reload:
			running = g.reload(ctx, env, d, crl, running, next)
			svc.Ready()
		}
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
