package applets

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"ferry/pki"
	"ferry/siteinit"
)

const pkiHelp = `pki: the individual steps of a site's keys and certificates
(ferry lender init and ferry borrower init do them all at once)

  pki ca --name ORG --cert FILE --key FILE [--days 3650] [--force]
      a new organisation CA (ECDSA P-256)
  pki issue --ca-cert FILE --ca-key FILE|- --cn NAME --usage server|client|ike
            [--host ADDR,NAME...] --cert FILE --key FILE [--days 730] [--force]
      a key and a certificate signed by the CA: server (TLS server: the
      lender's m2m listener, the images server; --host required), client
      (the borrower's m2m client, the keeper client), ike (the gateway)
  pki show FILE...
      each certificate: subject, issuer, validity, usage, names, SHA-256
      fingerprint and key pin (spki_sha256)
  pki check --cert FILE --key FILE [--ca FILE] [--usage server|client|ike]
      the key is the certificate's, it is valid now (and chains to --ca);
      warns when it ends within 30 days or the key file is readable by others

Private keys are written 0600, never printed and never taken from the
command line (a file, or - for stdin); files are written whole or not at
all, and an existing one is replaced only with --force.`

func pkiApplet() Applet {
	return Applet{Name: "pki", Summary: "organisation CAs and site certificates: ca, issue, show, check", Run: runPKI}
}

func runPKI(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		fmt.Fprintln(env.Stdout, pkiHelp)
		if len(args) == 0 {
			return usagef("missing subcommand")
		}
		return nil
	}
	switch args[0] {
	case "ca":
		return pkiCA(env, args[1:])
	case "issue":
		return pkiIssue(env, args[1:])
	case "show":
		return pkiShow(env, args[1:])
	case "check":
		return pkiCheck(env, args[1:])
	}
	return usagef("unknown subcommand %q", args[0])
}

func pkiCA(env *Env, args []string) error {
	fs := newFlags(env, "pki ca", "pki ca --name ORG --cert FILE --key FILE [--days N] [--force]")
	name := fs.String("name", "", "the organisation (the CA is \"ORG CA\")")
	cert := fs.String("cert", "", "certificate file to write")
	key := fs.String("key", "", "private key file to write (0600)")
	days := fs.Int("days", 3650, "validity in days")
	force := fs.Bool("force", false, "replace existing files")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *name == "" || *cert == "" || *key == "" || *days < 1 {
		return usagef("--name, --cert and --key are required, --days at least 1")
	}
	ca, err := pki.NewOrgCA(*name, time.Duration(*days)*24*time.Hour)
	if err != nil {
		return err
	}
	return writeCertKey(env, *cert, *key, ca.Cert, ca.Key, *force)
}

// writeCertKey writes a certificate and its key (0600), both or neither,
// and prints what the certificate is.
func writeCertKey(env *Env, certFile, keyFile string, cert *x509.Certificate, key crypto.Signer, force bool) error {
	kp, err := pki.MarshalKeyPEM(key)
	if err != nil {
		return err
	}
	p := siteinit.Plan{Force: force}
	p.Add(certFile, pki.CertPEM(cert), 0o644)
	p.Add(keyFile, kp, 0o600)
	if err := p.Commit(); err != nil {
		return err
	}
	fmt.Fprint(env.Stdout, pki.Describe(cert))
	return nil
}

func pkiIssue(env *Env, args []string) error {
	fs := newFlags(env, "pki issue", "pki issue --ca-cert FILE --ca-key FILE|- --cn NAME --usage server|client|ike [--host H,...] --cert FILE --key FILE")
	caCert := fs.String("ca-cert", "", "the signing CA's certificate")
	caKey := fs.String("ca-key", "", "the signing CA's key: a file, or - for stdin")
	cn := fs.String("cn", "", "the certificate's common name")
	usage := fs.String("usage", "", "server, client or ike")
	hosts := fs.String("host", "", "comma-separated IP addresses and DNS names it is for")
	cert := fs.String("cert", "", "certificate file to write")
	key := fs.String("key", "", "private key file to write (0600)")
	days := fs.Int("days", 730, "validity in days (never past the CA's end)")
	force := fs.Bool("force", false, "replace existing files")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cn == "" || *cert == "" || *key == "" || *days < 1 {
		return usagef("--cn, --cert and --key are required, --days at least 1")
	}
	u, err := pki.ParseUsage(*usage)
	if err != nil {
		return usagef("%v", err)
	}
	ca, err := importCA(env, *caCert, *caKey)
	if err != nil {
		return err
	}
	if ca == nil {
		return usagef("--ca-cert and --ca-key are required")
	}
	var hs []string
	if *hosts != "" {
		hs = strings.Split(*hosts, ",")
	}
	k, c, err := ca.IssueSite(*cn, hs, u, time.Duration(*days)*24*time.Hour)
	if err != nil {
		return err
	}
	return writeCertKey(env, *cert, *key, c, k, *force)
}

func pkiShow(env *Env, args []string) error {
	fs := newFlags(env, "pki show", "pki show FILE...")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("want at least one certificate file")
	}
	for i, f := range pos {
		certs, err := pki.LoadCertsFile(f)
		if err != nil {
			return err
		}
		for j, c := range certs {
			if i+j > 0 {
				fmt.Fprintln(env.Stdout)
			}
			fmt.Fprintf(env.Stdout, "file         %s\n%s", f, pki.Describe(c))
		}
	}
	return nil
}

func pkiCheck(env *Env, args []string) error {
	fs := newFlags(env, "pki check", "pki check --cert FILE --key FILE [--ca FILE] [--usage server|client|ike]")
	cert := fs.String("cert", "", "certificate file")
	key := fs.String("key", "", "its private key file")
	caFile := fs.String("ca", "", "the CA it must chain to")
	usage := fs.String("usage", "ike", "what it must be good for when --ca is given: server, client or ike (any)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cert == "" || *key == "" {
		return usagef("--cert and --key are required")
	}
	u, err := pki.ParseUsage(*usage)
	if err != nil {
		return usagef("%v", err)
	}
	var roots *x509.CertPool
	if *caFile != "" {
		if roots, err = pki.PoolFromFile(*caFile); err != nil {
			return err
		}
	}
	leaf, warn, err := pki.CheckPair(*cert, *key, u, roots, time.Now())
	for _, w := range warn {
		fmt.Fprintln(env.Stdout, "warning: "+w)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "ok: %s is the key of %q, valid until %s\n", *key, leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}
