package borrower_test

import (
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"ferry/api"
	"ferry/gatewayctl"
	"ferry/lender"
)

const charonPath = "/usr/lib/ipsec/charon"

// startCharon runs strongSwan's charon in a network namespace of its own
// (named for this package and pid) with a private /run, and returns its
// VICI socket. It skips when charon, swanctl or root is missing.
func startCharon(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(charonPath); err != nil {
		t.Skipf("strongSwan charon not installed (%s): apt-get install strongswan-charon strongswan-swanctl", charonPath)
	}
	if _, err := exec.LookPath("swanctl"); err != nil {
		t.Skip("swanctl not installed (strongswan-swanctl)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	dir := t.TempDir()
	socket := filepath.Join(dir, "charon.vici")
	conf := fmt.Sprintf(`charon {
    load_modular = no
    load = random nonce kdf hmac sha2 aes gcm openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints kernel-netlink socket-default vici
    install_routes = no
    plugins {
        vici {
            socket = unix://%s
        }
    }
}
`, socket)
	if err := os.WriteFile(filepath.Join(dir, "strongswan.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("borrower%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	cmd := exec.Command("ip", "netns", "exec", ns, "unshare", "-m", "sh", "-c",
		"mount --make-rprivate / && mount -t tmpfs none /run && exec "+charonPath)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(dir, "strongswan.conf"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, "charon's VICI socket", func() error { _, err := os.Stat(socket); return err })
	return socket
}

// forget unloads a conn from charon behind the borrower's back.
func forget(t *testing.T, socket, lease, server string) {
	s, err := gatewayctl.DialSwan(t.Context(), socket, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Unload(t.Context(), lease, server); err != nil {
		t.Fatal(err)
	}
}

func swanctl(t *testing.T, socket string, args ...string) string {
	out, err := exec.Command("swanctl", append(args, "--uri", "unix://"+socket)...).CombinedOutput()
	if err != nil {
		t.Fatalf("swanctl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestStrongSwanGatewayLetsInEnrolledServersUntilReturn(t *testing.T) {
	socket := startCharon(t)
	var ldir string
	l := newLabWith(t, buildFerry(t), func(cfg map[string]any) {
		delete(cfg, "allow_file")
		delete(cfg, "gateway_status")
		ldir = filepath.Join(filepath.Dir(cfg["dir"].(string)), "lender")
		cfg["gateway_kind"], cfg["vici_socket"] = "strongswan", socket
		cfg["lender_ca"], cfg["swan_local_ts"] = filepath.Join(ldir, "ca.pem"), []string{"10.44.0.0/24"}
	})
	if pools := swanctl(t, socket, "--list-pools"); !strings.Contains(pools, "ferry-borrower") || !strings.Contains(pools, "127.44.") {
		t.Errorf("borrower did not load its pool into charon:\n%s", pools)
	}
	out := l.must(t, "borrower", "lease", "request", "--dir", l.bdir, "--count", "2", "--image", "b1")
	id := leaseLine.FindStringSubmatch(out)[1]
	var ls []api.Lease
	if err := api.UnixClient(lender.AdminSocket(l.ldir)).Call(t.Context(), "GET", "/admin/leases", nil, &ls); err != nil || len(ls) != 1 {
		t.Fatalf("lender has %d leases (%v), want 1", len(ls), err)
	}
	var agents []*agent
	for _, s := range ls[0].Servers[:1] { // only the first enrolls
		a := &agent{mac: s.MAC, boot: l.bootParams(t, s.MAC)}
		if code, body := a.enroll(t); code != 200 {
			t.Fatalf("enroll %s: %d %s", s.MAC, code, body)
		}
		agents = append(agents, a)
	}
	enrolled, idle := ls[0].Servers[0].ID, ls[0].Servers[1].ID
	conn := "ferry-" + ls[0].ID + "-" + enrolled
	waitFor(t, "charon to have the enrolled server's conn", func() error {
		if conns := swanctl(t, socket, "--list-conns"); !strings.Contains(conns, conn+":") ||
			!strings.Contains(conns, "CN="+ls[0].ID+"/"+enrolled) || !strings.Contains(conns, "CN=ferry lender CA") {
			return fmt.Errorf("charon's conns:\n%s", conns)
		}
		return nil
	})
	// The conn pins the enrolled server's one-time key (remote.pubkeys:
	// charon lists a pinned key among the remote's certs), not merely its
	// subject, which another key certified under it would also carry.
	raw := swanctl(t, socket, "--list-conns", "--raw")
	if !regexp.MustCompile(`remote-1 \{[^}]*certs=\[[^\]]*CN=` + regexp.QuoteMeta(ls[0].ID+"/"+enrolled)).MatchString(raw) {
		t.Errorf("the conn does not pin the server's key (no remote certs):\n%s", raw)
	}
	if conns := swanctl(t, socket, "--list-conns"); strings.Contains(conns, idle) {
		t.Errorf("charon lets in server %s, which never enrolled:\n%s", idle, conns)
	}
	l.borrowerP.kill()
	forget(t, socket, ls[0].ID, enrolled) // as a restarted charon would
	l.startBorrower(t)
	waitFor(t, "the borrower to reload the conn after its restart", func() error {
		if conns := swanctl(t, socket, "--list-conns"); !strings.Contains(conns, conn+":") {
			return fmt.Errorf("charon's conns:\n%s", conns)
		}
		return nil
	})
	if out := l.must(t, "borrower", "lease", "return", "--dir", l.bdir, id); !strings.Contains(out, "state returned") {
		t.Fatalf("lease return printed %q", out)
	}
	if conns := swanctl(t, socket, "--list-conns"); strings.Contains(conns, ls[0].ID) {
		t.Errorf("charon still has the lease's conns after return:\n%s", conns)
	}
	// The return revoked the certificate: charon holds the lender's CRL.
	leaf, _ := x509.ParseCertificate(agents[0].cert.Certificate[0])
	serial := fmt.Sprintf("% x", leaf.SerialNumber.Bytes())
	serial = strings.ReplaceAll(serial, " ", ":")
	if crls := swanctl(t, socket, "--list-certs", "--type", "x509crl"); !strings.Contains(crls, serial) {
		t.Errorf("charon's CRLs lack the returned server's certificate %s:\n%s", serial, crls)
	}
}
