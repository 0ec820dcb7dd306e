package applets

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/pki"
)

// gatewayFiles writes a CA, a gateway certificate and key into dir and
// returns a configuration naming them.
func gatewayFiles(t *testing.T, dir string) gatewayFile {
	t.Helper()
	ca, err := pki.NewCA("ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, cert, _ := ca.Issue(pki.Identity{CommonName: "gw"}, pki.ECDSAP256, time.Hour)
	kp, _ := pki.MarshalKeyPEM(key)
	for name, data := range map[string][]byte{"ca.pem": ca.CertPEM(), "gw.pem": pki.CertPEM(cert), "gw.key": kp} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return gatewayFile{Listen: "10.33.0.2", CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "gw.pem"), Key: filepath.Join(dir, "gw.key"),
		Pool: "10.33.200.0/24", Subnets: []string{"10.33.2.0/24"}, Allow: filepath.Join(dir, "allow.jsonl")}
}

func TestGatewayConfigTimers(t *testing.T) {
	var out bytes.Buffer
	c := gatewayFiles(t, t.TempDir())
	cfg, _, err := c.build(quietEnv(&out))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DPD != 10*time.Second || cfg.IKELifetime != 4*time.Hour || cfg.ChildLifetime != time.Hour || cfg.RekeyMargin != 6*time.Minute {
		t.Fatalf("defaults: DPD %v IKE %v CHILD %v margin %v; want the keeper's 10s 4h 1h 6m", cfg.DPD, cfg.IKELifetime, cfg.ChildLifetime, cfg.RekeyMargin)
	}
	c.DPDSeconds, c.ChildLifetimeSeconds = 5, 1800
	if cfg, _, err = c.build(quietEnv(&out)); err != nil || cfg.DPD != 5*time.Second || cfg.ChildLifetime != 30*time.Minute {
		t.Fatalf("dpd_seconds 5, child_lifetime_seconds 1800: %v, DPD %v CHILD %v", err, cfg.DPD, cfg.ChildLifetime)
	}
	c.RekeyMarginSeconds = 900
	if _, _, err := c.build(quietEnv(&out)); err == nil || !strings.Contains(err.Error(), "rekey_margin_seconds") {
		t.Fatalf("margin half the CHILD_SA lifetime: %v; want an error naming rekey_margin_seconds", err)
	}
}

// Every problem of a gateway config comes out of one run, each on its own
// line: unknown keys, bad values and unreadable files together.
func TestGatewayConfigReportsEveryProblemAtOnce(t *testing.T) {
	dir := t.TempDir()
	c := gatewayFiles(t, dir)
	p := filepath.Join(dir, "gateway.json")
	os.WriteFile(p, []byte(`{"//": "x", "listen": "10.33.0.2:500", "ca": "`+c.CA+`", "cert": "`+filepath.Join(dir, "nope.pem")+`", "key": "`+c.Key+`",
		"pool": "10.33.200.0/24", "subnets": ["10.33.2.0/33"], "allow": "a", "dpd_secs": 5}`), 0o600)
	var out bytes.Buffer
	err := runGateway(t.Context(), quietEnv(&out), []string{"--config", p})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"gateway config " + p + ": 4 problems:",
		"\n  dpd_secs: unknown key (did you mean \"dpd_seconds\"?)",
		"\n  listen \"10.33.0.2:500\": want the IP address IKE listens on",
		"\n  subnets[0] \"10.33.2.0/33\": want a prefix",
		"\n  cert \"" + filepath.Join(dir, "nope.pem") + "\": "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
