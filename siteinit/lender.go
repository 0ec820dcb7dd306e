package siteinit

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"ferry/lenderca"
	"ferry/pki"
)

// Validity of what init makes: an organisation's CA outlives the
// certificates it signs; those are renewed with `ferry pki issue`.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	LeafValidity = 2 * 365 * 24 * time.Hour
)

// The files a lender hands to its borrowers, in DIR/for-borrowers.
const (
	ForBorrowers      = "for-borrowers"
	LenderM2MCAFile   = "lender-m2m-ca.pem" // verifies the lender's m2m listener
	LenderCAFile      = "lender-ca.pem"     // the lender CA: lent servers' one-time certificates
	LenderURLFile     = "lender-url"        // the lender's m2m URL, one line
	ForLender         = "for-lender"
	BorrowerCAFile    = "borrower-ca.pem" // the borrower's m2m client certificates chain to it
	BorrowerNameFile  = "borrower-name"
	DefaultM2MPort    = "9443"
	DefaultAgentPort  = "8443"
	DefaultImagesPort = "9444"
)

var orgName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Lender is what `ferry lender init` is told.
type Lender struct {
	Dir    string   // state: /var/lib/ferry/lender
	Config string   // /etc/ferry/lender.json
	Name   string   // the organisation, e.g. "bigco"
	Hosts  []string // addresses lent servers reach the lender at (its netboot network)
	M2M    string   // ADDRESS[:PORT] borrowers reach the m2m listener at
	// Netboot: Interface and ServerIP (default: the first of Hosts) set;
	// Mode dhcp or proxydhcp (default).
	Interface, ServerIP, Mode string
	OrgCA                     *pki.CA // the site's own CA (--ca-cert/--ca-key); nil: init makes one
	Force                     bool
}

// Result is a plan and what to tell the operator.
type Result struct {
	Plan
	Summary  string // what was made and what comes next, for the terminal
	CASHA256 string
}

// LenderPlan makes every key and certificate of a lender site and its
// configuration, in memory, as a Plan.
func LenderPlan(o Lender) (*Result, error) {
	if !orgName.MatchString(o.Name) {
		return nil, fmt.Errorf("siteinit: name %q: want 1-63 of a-z 0-9 . _ - (the organisation, as borrowers will know it)", o.Name)
	}
	if len(o.Hosts) == 0 {
		return nil, fmt.Errorf("siteinit: no host: give the address lent servers reach the lender at")
	}
	if !filepath.IsAbs(o.Dir) || !filepath.IsAbs(o.Config) {
		return nil, fmt.Errorf("siteinit: dir %q and config %q: want absolute paths", o.Dir, o.Config)
	}
	m2mHost, m2mPort := splitPort(o.M2M, DefaultM2MPort)
	if m2mHost == "" {
		m2mHost = o.Hosts[0]
	}
	now := time.Now()
	ca, caFiles, err := lenderca.Generate(o.Hosts, now)
	if err != nil {
		return nil, err
	}
	r := &Result{Plan: Plan{Force: o.Force}, CASHA256: ca.Fingerprint()}
	r.dir(o.Dir, 0o700)
	for _, f := range caFiles {
		r.add(filepath.Join(o.Dir, f.Name), f.PEM, f.Mode)
	}
	pkiDir := filepath.Join(o.Dir, "pki")
	org, orgKeyPath, err := orgCA(&r.Plan, pkiDir, o.Name, o.OrgCA)
	if err != nil {
		return nil, err
	}
	m2mCert, m2mKey, err := issue(&r.Plan, org, pkiDir, "m2m", o.Name+"-m2m", []string{m2mHost}, pki.UsageServer)
	if err != nil {
		return nil, err
	}
	borrowersDir := filepath.Join(o.Dir, "borrowers")
	r.dir(borrowersDir, 0o755)
	url := "https://" + net.JoinHostPort(m2mHost, m2mPort)
	forB := filepath.Join(o.Dir, ForBorrowers)
	r.add(filepath.Join(forB, LenderM2MCAFile), org.CertPEM(), 0o644)
	r.add(filepath.Join(forB, LenderCAFile), []byte(ca.PEM()), 0o644)
	r.add(filepath.Join(forB, LenderURLFile), []byte(url+"\n"), 0o644)

	agentListen := net.JoinHostPort(o.Hosts[0], DefaultAgentPort)
	cfg := (&object{}).
		note("ferry lender configuration, written by `ferry lender init` on "+now.UTC().Format(time.RFC3339)+".",
			"JSON has no comments: the \"//\" keys are them, and ferry ignores them. Unknown keys are refused.",
			"Check it all, and what a lease will need, with: ferry lender serve --check --config "+o.Config).
		set("dir", o.Dir, "State: the lender CA (ca.pem, ca.key), the agent listener's certificate, the store, the admin socket.").
		set("agent_listen", agentListen, "Where lent servers' image A enrolls, reports phases and fetches the CRL (HTTPS): this host on the servers' network.").
		set("public_url", "https://"+agentListen, "How image A reaches agent_listen; its certificate (tls.pem) names "+strings.Join(o.Hosts, ", ")+".").
		set("m2m_listen", net.JoinHostPort(m2mHost, m2mPort), "Where borrower managers ask for leases (mutual TLS).").
		set("m2m_cert", m2mCert, "The m2m listener's certificate and key, signed by this organisation's CA ("+LenderM2MCAFile+" for borrowers).").
		set("m2m_key", m2mKey).
		set("borrowers_dir", borrowersDir,
			"The borrower organisations admitted: each NAME.pem in this directory is the CA of borrower NAME's client certificates.",
			"Add one with: ferry lender borrower add NAME CA.pem   (then reload: systemctl reload ferry-lender, or SIGHUP).",
			"For finer control list them under \"borrowers\": [{\"name\", \"ca\", \"cn\", \"spki_sha256\"}] (see ferry lender --help).").
		set("token_ttl", "10m", "How long a boot may take from power-on to enrollment before its one-time token expires.")
	if o.Interface != "" {
		sip := o.ServerIP
		if sip == "" {
			sip = o.Hosts[0]
		}
		mode := o.Mode
		if mode == "" {
			mode = "proxydhcp"
		}
		imgA := filepath.Join(o.Dir, "image-a")
		r.dir(imgA, 0o755)
		nb := (&object{}).
			set("interface", o.Interface, "The network lent servers PXE boot on.").
			set("server_ip", sip, "This host's address on it: TFTP next-server and the iPXE script's host.").
			set("mode", mode, "proxydhcp: the network's DHCP server gives addresses, ferry adds the boot options.",
				"dhcp: ferry gives addresses too; then also set pool_first, pool_last, prefix and router.").
			set("kernel_a", filepath.Join(imgA, "vmlinuz"), "Image A: a kernel with the NIC, tun and NFS drivers (a distribution kernel will do) ...").
			set("initrd_a", filepath.Join(imgA, "initrd.img"), "... and its initramfs, made by ferry itself:",
				"ferry initrd build -o "+filepath.Join(imgA, "initrd.img")+" --kernel-modules /lib/modules/RELEASE --module NIC_DRIVER --esp",
				"The iPXE boot ROMs come from Debian's ipxe package (/usr/lib/ipxe; tftp_root to change).").
			set("cmdline", "console=ttyS0,115200 console=tty0", "Image A's kernel options, before the lease's own (ip=dhcp is added unless you give ip=).")
		cfg.set("netboot", nb, "Netboot: DHCP or ProxyDHCP, TFTP of iPXE and a per-boot iPXE script that admits only servers of a lease.")
	}
	r.add(o.Config, cfg.render(), 0o640)

	var s strings.Builder
	fmt.Fprintf(&s, "lender %s: configuration %s, state and keys in %s\n", o.Name, o.Config, o.Dir)
	fmt.Fprintf(&s, "ca_sha256 %s\n", r.CASHA256)
	if orgKeyPath != "" {
		fmt.Fprintf(&s, "The organisation CA's key is %s: serve does not need it; keep it offline once you have issued what you need.\n", orgKeyPath)
	}
	if o.Interface == "" {
		fmt.Fprintf(&s, "No --interface: no netboot section; lent servers must be booted into image A by other means.\n")
	}
	fmt.Fprintf(&s, "\nNext, on the borrower's manager host: copy %s/ there, then run\n", forB)
	fmt.Fprintf(&s, "  ferry borrower init --name BORROWER --from-lender %s --gateway WAN_ADDRESS --lan LAN_ADDRESS --tunnel-pool 10.8.1.0/24\n", ForBorrowers)
	fmt.Fprintf(&s, "It prints the command that admits the borrower here (ferry lender borrower add ...).\n")
	fmt.Fprintf(&s, "Then, here: ferry lender serve --check\n")
	r.Summary = s.String()
	return r, nil
}

// orgCA is the organisation's CA: o when given (its key stays where the
// site keeps it), else a new one written to pkiDir/org-ca.{pem,key}.
// It returns the key's path when init wrote it.
func orgCA(p *Plan, pkiDir, name string, given *pki.CA) (*pki.CA, string, error) {
	p.dir(pkiDir, 0o700)
	if given != nil {
		p.add(filepath.Join(pkiDir, "org-ca.pem"), given.CertPEM(), 0o644)
		return given, "", nil
	}
	ca, err := pki.NewOrgCA(name, CAValidity)
	if err != nil {
		return nil, "", err
	}
	kp, err := pki.MarshalKeyPEM(ca.Key)
	if err != nil {
		return nil, "", err
	}
	keyPath := filepath.Join(pkiDir, "org-ca.key")
	p.add(filepath.Join(pkiDir, "org-ca.pem"), ca.CertPEM(), 0o644)
	p.add(keyPath, kp, 0o600)
	return ca, keyPath, nil
}

// issue adds pkiDir/file.{pem,key} for cn, hosts and usage, signed by ca.
func issue(p *Plan, ca *pki.CA, pkiDir, file, cn string, hosts []string, usage pki.Usage) (string, string, error) {
	key, cert, err := ca.IssueSite(cn, hosts, usage, LeafValidity)
	if err != nil {
		return "", "", err
	}
	kp, err := pki.MarshalKeyPEM(key)
	if err != nil {
		return "", "", err
	}
	cp, kpath := filepath.Join(pkiDir, file+".pem"), filepath.Join(pkiDir, file+".key")
	p.add(cp, pki.CertPEM(cert), 0o644)
	p.add(kpath, kp, 0o600)
	return cp, kpath, nil
}

// splitPort splits "host:port" or "host" (port def).
func splitPort(s, def string) (string, string) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		return h, p
	}
	return strings.Trim(s, "[]"), def
}
