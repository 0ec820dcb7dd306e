package fleet

import (
	"crypto"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/lender/lendertest"
	"ferry/pki"
)

const charonBin = "/usr/lib/ipsec/charon"

// startCharon runs strongSwan's charon as the responder in namespace ns, configured as ferry's gateway is: the lender CA for the
// servers' certificates, a virtual IP pool, UDP encapsulation, user-space
// ESP (kernel-libipsec), DPD every 10 s, and no log (ferry's gateway logs
// warnings only). charon has no inner address of its own: it gets one on
// the loopback (as ipsec/ike's interop test gives it).
func startCharon(t *testing.T, dir, ns string, la *lendertest.Agent, cert *x509.Certificate, key crypto.Signer) *responder {
	t.Helper()
	if _, err := os.Stat(charonBin); err != nil {
		t.Skipf("strongSwan: %v (scripts/ci-deps.sh installs it)", err)
	}
	keyPEM, err := pki.MarshalKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	sw := filepath.Join(dir, "swan")
	files := map[string][]byte{"x509ca/lender-ca.pem": pki.CertPEM(la.CA.Cert), "x509/gw.pem": pki.CertPEM(cert), "private/gw.key": keyPEM,
		"strongswan.conf": []byte(strings.Join([]string{"charon {", "load_modular = no",
			"load = random nonce kdf hmac sha1 sha2 aes gcm openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints kernel-libipsec kernel-netlink socket-default vici",
			"install_routes = yes", "filelog {", "stderr {", "default = -1", "}", "}", "syslog {", "daemon {", "default = -1", "}", "}", "plugins {", "vici {", "socket = unix://" + sw + "/charon.vici", "}", "}", "}",
			"swanctl {", "load = random pem pkcs1 pkcs8 x509 openssl", "}"}, "\n") + "\n"),
		"swanctl.conf": []byte(strings.Join([]string{"connections {", "fleet {", "version = 2", "local_addrs = " + gatewayAddr.String(),
			"proposals = aes256gcm16-prfsha256-ecp256", "encap = yes", "pools = vips", "dpd_delay = 10s",
			"local {", "auth = pubkey", "certs = gw.pem", "}", "remote {", "auth = pubkey", "cacerts = lender-ca.pem", "}",
			"children {", "net {", "local_ts = 10.89.0.0/24", "esp_proposals = aes256gcm16", "}", "}", "}", "}",
			"pools {", "vips {", "addrs = 10.90.0.0/20", "}", "}"}, "\n") + "\n")}
	for name, data := range files {
		p := filepath.Join(sw, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("ip", "netns", "exec", ns, "ip", "addr", "add", "10.89.0.1/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("inner address: %v: %s", err, out)
	}
	conf := "STRONGSWAN_CONF=" + filepath.Join(sw, "strongswan.conf")
	// charon wants /run for its pid file: a private one.
	cmd := exec.Command("ip", "netns", "exec", ns, "unshare", "-m", "sh", "-c", "mount -t tmpfs none /run && exec "+charonBin)
	cmd.Env = append(os.Environ(), conf)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(sw, "charon.vici")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("charon: no vici socket in 10 s")
		}
	}
	load := exec.Command("swanctl", "--load-all", "--file", filepath.Join(sw, "swanctl.conf"), "--uri", "unix://"+sw+"/charon.vici")
	load.Env = append(os.Environ(), conf)
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("swanctl --load-all: %v\n%s", err, out)
	}
	return &responder{name: "strongSwan charon", pid: cmd.Process.Pid}
}
