package siteinit

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"ferry/pki"
)

// Borrower is what `ferry borrower init` is told.
type Borrower struct {
	Dir           string // state: /var/lib/ferry/borrower
	Config        string // /etc/ferry/borrower.json
	GatewayConfig string // /etc/ferry/gateway.json
	Name          string // the organisation, e.g. "acme": the lender admits it under this name
	// FromLender is the lender's for-borrowers directory (its m2m CA, its
	// lender CA, its URL), copied here.
	FromLender string
	Gateway    string // the gateway's address on the WAN (IKE, UDP 500/4500)
	LAN        string // this host's address lent servers reach through the tunnel: images, NFS
	TunnelPool string // the lent servers' tunnel addresses, e.g. 10.8.1.0/24
	NFS        string // kernel (default) or ganesha
	OrgCA      *pki.CA
	Force      bool
}

// lenderFiles is what a lender hands a borrower.
type lenderFiles struct {
	m2mCA, lenderCA []byte
	url             string
}

func readLender(dir string) (lenderFiles, error) {
	var lf lenderFiles
	var err error
	if lf.m2mCA, err = os.ReadFile(filepath.Join(dir, LenderM2MCAFile)); err != nil {
		return lf, fmt.Errorf("siteinit: from the lender: %w", err)
	}
	if lf.lenderCA, err = os.ReadFile(filepath.Join(dir, LenderCAFile)); err != nil {
		return lf, fmt.Errorf("siteinit: from the lender: %w", err)
	}
	u, err := os.ReadFile(filepath.Join(dir, LenderURLFile))
	if err != nil {
		return lf, fmt.Errorf("siteinit: from the lender: %w", err)
	}
	lf.url = strings.TrimSpace(string(u))
	for _, c := range [][]byte{lf.m2mCA, lf.lenderCA} {
		certs, err := pki.ParseCertsPEM(c)
		if err != nil {
			return lf, fmt.Errorf("siteinit: from the lender %s: %w", dir, err)
		}
		if !certs[0].IsCA {
			return lf, fmt.Errorf("siteinit: from the lender %s: %q is not a CA", dir, certs[0].Subject.CommonName)
		}
	}
	if !strings.HasPrefix(lf.url, "https://") || len(lf.url) > 200 {
		return lf, fmt.Errorf("siteinit: from the lender: %s %.200q: want https://ADDRESS:PORT", LenderURLFile, lf.url)
	}
	return lf, nil
}

// BorrowerPlan makes every key and certificate of a borrower site, its
// configuration and its gateway's, in memory, as a Plan.
func BorrowerPlan(o Borrower) (*Result, error) {
	if !orgName.MatchString(o.Name) {
		return nil, fmt.Errorf("siteinit: name %q: want 1-63 of a-z 0-9 . _ - (the lender admits the borrower under it)", o.Name)
	}
	for _, p := range []string{o.Dir, o.Config, o.GatewayConfig} {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("siteinit: %q: want an absolute path", p)
		}
	}
	gw, err1 := netip.ParseAddr(o.Gateway)
	lan, err2 := netip.ParseAddr(o.LAN)
	pool, err3 := netip.ParsePrefix(o.TunnelPool)
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, fmt.Errorf("siteinit: --gateway %q, --lan %q (IP addresses) and --tunnel-pool %q (a prefix): %v %v %v", o.Gateway, o.LAN, o.TunnelPool, err1, err2, err3)
	}
	pool = pool.Masked()
	nfs := o.NFS
	if nfs == "" {
		nfs = "kernel"
	}
	if nfs != "kernel" && nfs != "ganesha" && nfs != "none" {
		return nil, fmt.Errorf("siteinit: nfs %q: want kernel, ganesha or none", nfs)
	}
	lf, err := readLender(o.FromLender)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	r := &Result{Plan: Plan{Force: o.Force}}
	r.dir(o.Dir, 0o700)
	pkiDir := filepath.Join(o.Dir, "pki")
	org, orgKeyPath, err := orgCA(&r.Plan, pkiDir, o.Name, o.OrgCA)
	if err != nil {
		return nil, err
	}
	m2mCert, m2mKey, err := issue(&r.Plan, org, pkiDir, "m2m", o.Name+"-m2m", nil, pki.UsageClient)
	if err != nil {
		return nil, err
	}
	imgCert, imgKey, err := issue(&r.Plan, org, pkiDir, "images", o.Name+"-images", []string{lan.String()}, pki.UsageServer)
	if err != nil {
		return nil, err
	}
	keeperCert, keeperKey, err := issue(&r.Plan, org, pkiDir, "keeper-client", o.Name+"-keeper", nil, pki.UsageClient)
	if err != nil {
		return nil, err
	}
	gwCert, gwKey, err := issue(&r.Plan, org, pkiDir, "gateway", o.Name+"-gateway", []string{gw.String()}, pki.UsageIKE)
	if err != nil {
		return nil, err
	}
	lenderM2MCA, lenderCA := filepath.Join(pkiDir, LenderM2MCAFile), filepath.Join(pkiDir, LenderCAFile)
	r.add(lenderM2MCA, lf.m2mCA, 0o644)
	r.add(lenderCA, lf.lenderCA, 0o644)
	forL := filepath.Join(o.Dir, ForLender)
	r.add(filepath.Join(forL, BorrowerCAFile), org.CertPEM(), 0o644)
	r.add(filepath.Join(forL, BorrowerNameFile), []byte(o.Name+"\n"), 0o644)
	allow := filepath.Join(o.Dir, "gateway-allow.jsonl")
	r.add(allow, nil, 0o600)
	status := "/run/ferry/gateway.sock"
	crl := filepath.Join(o.Dir, "lender.crl")
	imagesListen := net.JoinHostPort(lan.String(), DefaultImagesPort)

	cfg := (&object{}).
		note("ferry borrower configuration, written by `ferry borrower init` on "+now.UTC().Format(time.RFC3339)+".",
			"JSON has no comments: the \"//\" keys are them, and ferry ignores them. Unknown keys are refused.",
			"Check it all with: ferry borrower serve --check --config "+o.Config).
		set("dir", o.Dir, "State: the store, the admin socket, images/ (image B), roots/ (one NFS root per lent server), archive/.").
		set("lender_url", lf.url, "The lender's manager-to-manager API.").
		set("m2m_cert", m2mCert, "Our client certificate to the lender (the lender admits "+o.Name+" by its CA, "+BorrowerCAFile+").").
		set("m2m_key", m2mKey).
		set("m2m_ca", lenderM2MCA, "The lender organisation's CA: verifies the lender's m2m listener.").
		set("borrower_ca", filepath.Join(pkiDir, "org-ca.pem"), "Our CA: lent servers receive it at enrollment and check the gateway's and the images server's certificates with it.").
		set("gateway", net.JoinHostPort(gw.String(), "500"), "Where lent servers open their IKEv2 tunnel: ferry gateway, "+o.GatewayConfig+".").
		set("allow_file", allow, "The gateway's allow list: the borrower writes each enrolled one-time key here, the gateway admits only those.").
		set("gateway_status", status, "The gateway's status socket: who holds which tunnel address.").
		set("gateway_crl_file", crl, "The lender CA's CRL, fetched every 30 s, for the gateway's \"crl\" setting.").
		set("image_listen", imagesListen, "The images server: image B to lent servers, through the tunnel only.").
		set("image_url", "https://"+imagesListen).
		set("image_cert", imgCert).
		set("image_key", imgKey).
		set("tunnel_pool", pool.String(), "Each lent server's tunnel address comes from here; keep it equal to the gateway's pool.").
		set("nfs_server", lan.String(), "The NFS server lent servers mount their root from, through the tunnel.")
	if nfs == "kernel" {
		cfg.set("nfs_export", filepath.Join(o.Dir, "roots"), "The kernel NFS server exports real paths: each root DIR/roots/NAME to its server's address alone (exportfs).").
			set("nfs_exports", "kernel", "Which NFS server the borrower drives: kernel (nfs-kernel-server), ganesha or none.")
	} else if nfs == "none" {
		cfg.set("nfs_export", filepath.Join(o.Dir, "roots"), "The path lent servers mount DIR/roots/NAME as, on nfs_server.").
			set("nfs_exports", "none", "none: the borrower exports nothing; export each root to its server's tunnel address alone yourself.")
	} else {
		cfg.set("nfs_export", "/srv/ferry/roots", "ganesha's pseudo path for DIR/roots.").
			set("nfs_exports", "ganesha", "ganesha.conf must %include ganesha_exports_file; export nothing else under nfs_export.").
			set("ganesha_exports_file", "/etc/ganesha/ferry-exports.conf")
	}
	cfg.set("keeper_client_cert", keeperCert, "At return the borrower asks each server's keeper to shut it down, with this client certificate of our CA.").
		set("keeper_client_key", keeperKey).
		set("lease_hours", 24, "How long a lease lasts unless extended (ferry borrower lease extend).")
	r.add(o.Config, cfg.render(), 0o640)

	gcfg := (&object{}).
		note("ferry gateway configuration, written by `ferry borrower init` on "+now.UTC().Format(time.RFC3339)+".",
			"Check it with: ferry gateway --check --config "+o.GatewayConfig).
		set("listen", gw.String(), "The WAN address lent servers reach (UDP 500 and 4500).").
		set("ca", lenderCA, "The lender CA: a lent server's one-time certificate must chain to it AND its key be on the allow list.").
		set("cert", gwCert, "The gateway's certificate, of our CA (lent servers check it against borrower_ca).").
		set("key", gwKey).
		set("pool", pool.String(), "Tunnel addresses: the borrower's tunnel_pool.").
		set("subnets", []string{netip.PrefixFrom(lan, lan.BitLen()).String()}, "What lent servers may reach through the tunnel: the images server and NFS.").
		set("allow", allow, "The allow list the borrower writes (its allow_file).").
		set("status", status, "The status socket the borrower asks (its gateway_status).").
		set("crl", crl, "The lender CA's CRL the borrower keeps (its gateway_crl_file).")
	r.add(o.GatewayConfig, gcfg.render(), 0o640)

	var s strings.Builder
	fmt.Fprintf(&s, "borrower %s: configuration %s and %s, state and keys in %s\n", o.Name, o.Config, o.GatewayConfig, o.Dir)
	if orgKeyPath != "" {
		fmt.Fprintf(&s, "The organisation CA's key is %s: serve does not need it; keep it offline once you have issued what you need.\n", orgKeyPath)
	}
	fmt.Fprintf(&s, "\nNext, on the lender host: copy %s there, then run\n", filepath.Join(forL, BorrowerCAFile))
	fmt.Fprintf(&s, "  ferry lender borrower add %s %s\n", o.Name, BorrowerCAFile)
	fmt.Fprintf(&s, "Then, here:\n  ferry gateway --check --config %s && ferry borrower serve --check --config %s\n", shellQuote(o.GatewayConfig), shellQuote(o.Config))
	r.Summary = s.String()
	return r, nil
}
