package svctest

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/pki"
)

// shortenAgentCert re-signs the lender's tls.pem with its own CA to end
// at notAfter: a lender that has served for almost two years.
func shortenAgentCert(t *testing.T, dir string, notAfter time.Time) {
	t.Helper()
	cas, err := pki.LoadCertsFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := pki.LoadKeyFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.pem"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := *pair.Leaf
	tmpl.NotBefore = time.Unix(min(time.Now().Unix(), notAfter.Unix())-48*3600, 0)
	tmpl.SerialNumber.SetInt64(time.Now().UnixNano())
	tmpl.NotAfter = notAfter
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, cas[0], pair.Leaf.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// served is the certificate the agent listener presents now, verified
// as an agent does: against the lender CA it pins, for the host its
// command line names.
func served(t *testing.T, s *lenderSite) *x509.Certificate {
	t.Helper()
	cas, _ := pki.LoadCertsFile(filepath.Join(s.dir, "ca.pem"))
	roots := x509.NewCertPool()
	roots.AddCert(cas[0])
	c, err := tls.Dial("tcp", s.agent, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("an agent's TLS connection to %s: %v", s.agent, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// The agent listener's certificate does not run out under a lender that
// runs for years: one already expired is renewed at start (not refused),
// one that comes within 30 days of its end while serving is renewed then,
// and one put on disk by hand is taken on reload and renewed if due; each
// renewal logs the new end, and agents (pinning the CA) connect throughout.
func TestLenderRenewsAgentCertificate(t *testing.T) {
	s := newLenderSite(t)
	shortenAgentCert(t, s.dir, time.Now().Add(-time.Minute))
	out, _ := exec.Command(ferryBin(), "lender", "serve", "--check", "--config", s.config).CombinedOutput()
	if !strings.Contains(string(out), "info: dir ") || !strings.Contains(string(out), "renews it") || strings.Contains(string(out), "error:") {
		t.Fatalf("serve --check with an expired agent certificate: want a note that serve renews it, no error\n%s", out)
	}
	n := newNotifySocket(t)
	p := start(t, exec.Command(ferryBin(), "lender", "serve", "--config", s.config), n)
	n.expect(t, p, "READY=1")
	p.waitLog(t, "lender: agent listener certificate renewed", "not_after=")
	twoYears := time.Now().Add(729 * 24 * time.Hour)
	if c := served(t, s); c.NotAfter.Before(twoYears) {
		t.Fatalf("served certificate ends %v after the renewal at start", c.NotAfter)
	}

	// 30 days and 3 seconds left: not due at the reload that takes it,
	// due 3 seconds later, while serving.
	shortenAgentCert(t, s.dir, time.Now().Add(30*24*time.Hour+3*time.Second))
	p.signal(t, syscall.SIGHUP)
	n.expect(t, p, "RELOADING=1")
	n.expect(t, p, "READY=1")
	if c := served(t, s); c.NotAfter.After(twoYears) {
		t.Fatalf("reload did not take the certificate on disk:\n%s", p.log)
	}
	deadline := time.Now().Add(20 * time.Second)
	for p.countLog("lender: agent listener certificate renewed") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no renewal while serving:\n%s", p.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c := served(t, s); c.NotAfter.Before(twoYears) {
		t.Fatalf("served certificate ends %v after the renewal while serving", c.NotAfter)
	}

	// Due at the reload itself.
	shortenAgentCert(t, s.dir, time.Now().Add(time.Hour))
	p.signal(t, syscall.SIGHUP)
	n.expect(t, p, "RELOADING=1")
	n.expect(t, p, "READY=1")
	if c := served(t, s); c.NotAfter.Before(twoYears) {
		t.Fatalf("served certificate ends %v after a reload with one due", c.NotAfter)
	}
	if c := p.countLog("lender: agent listener certificate renewed"); c != 3 {
		t.Fatalf("%d renewals logged, want 3:\n%s", c, p.log)
	}
}
