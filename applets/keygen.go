package applets

import (
	"context"
	"fmt"
	"net"
	"os"

	"ferry/pki"
)

func keygenApplet() Applet {
	return Applet{
		Name:    "keygen",
		Summary: "one-time IPsec key (ECDSA P-256 or Ed25519) and its CSR",
		Run:     runKeygen,
	}
}

func runKeygen(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "keygen", "keygen --cn NAME [--dns NAME]... [--ip ADDR]... [--ed25519] [--key FILE [--allow-disk]] [--csr FILE]")
	cn := fs.String("cn", "", "common name of the identity (the lease)")
	var dns, ips listFlag
	fs.Var(&dns, "dns", "DNS subjectAltName (repeatable)")
	fs.Var(&ips, "ip", "IP subjectAltName (repeatable)")
	ed := fs.Bool("ed25519", false, "make an Ed25519 key instead of ECDSA P-256")
	keyPath := fs.String("key", "", "write the private key here (mode 0600, must not exist; tmpfs/ramfs unless --allow-disk)")
	csrPath := fs.String("csr", "", "write the CSR here instead of stdout (must not exist)")
	allowDisk := fs.Bool("allow-disk", false, "allow the key on a file system that is not tmpfs or ramfs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	id := pki.Identity{CommonName: *cn, DNSNames: dns}
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return usagef("--ip %q is not an IP address", s)
		}
		id.IPs = append(id.IPs, ip)
	}
	if err := id.Validate(); err != nil {
		return usagef("%v", err)
	}
	alg := pki.ECDSAP256
	if *ed {
		alg = pki.Ed25519
	}
	return keygen(env, id, alg, *keyPath, *csrPath, *allowDisk)
}

func keygen(env *Env, id pki.Identity, alg pki.Algorithm, keyPath, csrPath string, allowDisk bool) error {
	key, err := pki.GenerateKey(alg)
	if err != nil {
		return err
	}
	csr, err := pki.CreateCSR(key, id)
	if err != nil {
		return err
	}
	if keyPath == "" {
		env.Log.Warn("keygen: no --key given: the private key is discarded, the CSR is only a sample")
	} else {
		kp, err := pki.MarshalKeyPEM(key)
		if err != nil {
			return err
		}
		if err := pki.WriteSecretFile(keyPath, kp, allowDisk); err != nil {
			return err
		}
	}
	pin, err := pki.Pin(key.Public())
	if err != nil {
		return err
	}
	env.Log.Info("keygen: made key", "alg", alg, "cn", id.CommonName, "pin", pin)
	if csrPath == "" {
		_, err = env.Stdout.Write(csr)
		return err
	}
	if err := pki.WritePublicFile(csrPath, csr); err != nil {
		if keyPath != "" {
			os.Remove(keyPath) // a key without its CSR is useless: make it again
		}
		return fmt.Errorf("keygen: %w", err)
	}
	return nil
}
