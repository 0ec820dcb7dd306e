package applets

import (
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"ferry/lender"
	"ferry/pki"
	"ferry/siteinit"
	"ferry/store"
)

const lenderInitUsage = `lender init --host ADDR[,ADDR...] [--name ORG] [--m2m ADDR[:PORT]] [--interface IF [--mode proxydhcp|dhcp]]
       [--dir DIR] [--config FILE] [--ca-cert FILE --ca-key FILE|-] [--force]

Makes everything a lender site needs, all or nothing: the lender CA (one-time
certificates of lent servers, ca.pem) and the agent listener's certificate for
--host; the organisation's CA (or yours: --ca-cert/--ca-key) and the m2m
listener's server certificate for --m2m; the store; a commented lender.json;
and DIR/for-borrowers/, the files a borrower needs. Keys are 0600 and never
printed. It prints the command to run on the borrower's side next.`

func lenderInit(env *Env, args []string) error {
	fs := newFlags(env, "lender init", lenderInitUsage)
	dir := fs.String("dir", env.lenderDir(), "state directory (or $FERRY_LENDER_DIR)")
	config := fs.String("config", env.lenderConfig(), "configuration file to write (or $FERRY_LENDER_CONFIG; with --dir alone, DIR/lender.json)")
	hosts := fs.String("host", "", "comma-separated addresses or names lent servers reach the lender at (its netboot network)")
	name := fs.String("name", "lender", "the organisation's name, as borrowers know it")
	m2m := fs.String("m2m", "", "ADDRESS[:PORT] borrower managers reach the m2m listener at (default: the first --host, port 9443)")
	iface := fs.String("interface", "", "network interface lent servers PXE boot on (writes the netboot section)")
	mode := fs.String("mode", "proxydhcp", "netboot: proxydhcp (the network's DHCP gives addresses) or dhcp")
	caCert := fs.String("ca-cert", "", "your organisation's CA certificate, instead of a new CA")
	caKey := fs.String("ca-key", "", "its private key: a file, or - for stdin")
	force := fs.Bool("force", false, "replace existing files (a new CA invalidates every certificate it signed)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *hosts == "" {
		return usagef("--host is required")
	}
	configBeside(env, fs, *dir, besideFile{"config", config, "FERRY_LENDER_CONFIG", "lender.json"})
	org, err := importCA(env, *caCert, *caKey)
	if err != nil {
		return err
	}
	res, err := siteinit.LenderPlan(siteinit.Lender{Dir: abs(*dir), Config: abs(*config), Name: *name,
		Hosts: strings.Split(*hosts, ","), M2M: *m2m, Interface: *iface, Mode: *mode, OrgCA: org, Force: *force})
	if err != nil {
		return err
	}
	if err := res.Commit(); err != nil {
		return err
	}
	st, err := store.Open(lender.StorePath(abs(*dir)))
	if err != nil {
		return err
	}
	st.Close()
	fmt.Fprint(env.Stdout, res.Summary)
	return nil
}

const borrowerInitUsage = `borrower init --name ORG --from-lender DIR --gateway ADDR --lan ADDR --tunnel-pool PREFIX
       [--nfs kernel|ganesha|none] [--dir DIR] [--config FILE] [--gateway-config FILE]
       [--ca-cert FILE --ca-key FILE|-] [--force]

Makes everything a borrower site needs, all or nothing: the organisation's CA
(or yours), the m2m client certificate, the images server's certificate for
--lan, the keeper client certificate, the gateway's certificate for
--gateway; a commented borrower.json and gateway.json; and DIR/for-lender/,
the CA the lender admits this borrower by. --from-lender is the lender's
for-borrowers directory (ferry lender init made it), copied here. Keys are
0600 and never printed. It prints the command to run on the lender next.`

func borrowerInit(env *Env, args []string) error {
	fs := newFlags(env, "borrower init", borrowerInitUsage)
	dir := fs.String("dir", env.borrowerDir(), "state directory (or $FERRY_BORROWER_DIR)")
	config := fs.String("config", env.borrowerConfig(), "configuration file to write (or $FERRY_BORROWER_CONFIG; with --dir alone, DIR/borrower.json)")
	gwConfig := fs.String("gateway-config", env.gatewayConfig(), "gateway configuration file to write (or $FERRY_GATEWAY_CONFIG; with --dir alone, DIR/gateway.json)")
	name := fs.String("name", "", "the organisation's name: the lender admits it under this name")
	from := fs.String("from-lender", "", "the lender's for-borrowers directory, copied here")
	gw := fs.String("gateway", "", "the gateway's address on the WAN, which lent servers reach")
	lan := fs.String("lan", "", "this host's address lent servers reach through the tunnel (images server, NFS)")
	pool := fs.String("tunnel-pool", "", "the prefix lent servers' tunnel addresses come from, e.g. 10.8.1.0/24")
	nfs := fs.String("nfs", "kernel", "the NFS server the borrower drives: kernel, ganesha, or none (you export each root yourself)")
	caCert := fs.String("ca-cert", "", "your organisation's CA certificate, instead of a new CA")
	caKey := fs.String("ca-key", "", "its private key: a file, or - for stdin")
	force := fs.Bool("force", false, "replace existing files")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *name == "" || *from == "" || *gw == "" || *lan == "" || *pool == "" {
		return usagef("--name, --from-lender, --gateway, --lan and --tunnel-pool are required")
	}
	configBeside(env, fs, *dir, besideFile{"config", config, "FERRY_BORROWER_CONFIG", "borrower.json"},
		besideFile{"gateway-config", gwConfig, "FERRY_GATEWAY_CONFIG", "gateway.json"})
	org, err := importCA(env, *caCert, *caKey)
	if err != nil {
		return err
	}
	res, err := siteinit.BorrowerPlan(siteinit.Borrower{Dir: abs(*dir), Config: abs(*config), GatewayConfig: abs(*gwConfig),
		Name: *name, FromLender: *from, Gateway: *gw, LAN: *lan, TunnelPool: *pool, NFS: *nfs, OrgCA: org, Force: *force})
	if err != nil {
		return err
	}
	if err := res.Commit(); err != nil {
		return err
	}
	fmt.Fprint(env.Stdout, res.Summary)
	return nil
}

// lenderBorrowerAdd admits a borrower organisation: its CA goes into
// borrowers_dir as NAME.pem, which the lender reads at start and reload.
func lenderBorrowerAdd(env *Env, args []string) error {
	fs := newFlags(env, "lender borrower add", "lender borrower add [--config FILE] [--force] NAME CA.pem")
	config := fs.String("config", env.lenderConfig(), "the lender's configuration (or $FERRY_LENDER_CONFIG): its borrowers_dir")
	force := fs.Bool("force", false, "replace the borrower's CA")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("want NAME and the borrower's CA file")
	}
	cfg, _, err := lender.ReadConfig(*config)
	if err != nil {
		return err
	}
	if cfg.BorrowersDir == "" {
		return fmt.Errorf("%s has no borrowers_dir: list the borrower under \"borrowers\" instead", *config)
	}
	path, err := lender.AdmitBorrower(cfg.BorrowersDir, pos[0], pos[1], *force)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "borrower %s admitted: its m2m client certificates chain to %s\n", pos[0], path)
	fmt.Fprintf(env.Stdout, "A running lender reads it at reload: systemctl reload ferry-lender (or kill -HUP its pid).\n")
	return nil
}

// configBeside moves the configuration files into dir when --dir was
// given and neither their flags nor the environment name them: a state
// directory of its own (a test, a lab, a second instance) must not write
// over the host's /etc/ferry.
func configBeside(env *Env, fs *flag.FlagSet, dir string, files ...besideFile) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["dir"] {
		return
	}
	for _, f := range files {
		if !set[f.flag] && env.getenv(f.variable) == "" {
			*f.path = filepath.Join(dir, f.name)
		}
	}
}

// besideFile is a configuration file's flag, value, variable and name.
type besideFile struct {
	flag     string
	path     *string
	variable string
	name     string
}

// importCA reads a site's own CA, or returns nil (init makes one).
func importCA(env *Env, certFile, keyFile string) (*pki.CA, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, usagef("--ca-cert and --ca-key go together")
	}
	certPEM, err := pki.ReadPEMFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readSecret(env, keyFile)
	if err != nil {
		return nil, err
	}
	return pki.LoadCA(certPEM, keyPEM)
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
