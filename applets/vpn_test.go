package applets

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ferry/ipsec/ike"
	"ferry/pki"
)

func TestVPNUpWithoutGatewayIsUsageError(t *testing.T) {
	var out bytes.Buffer
	if code := Main(context.Background(), quietEnv(&out), []string{"ferry", "vpn", "up", "--ca", "x"}); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
}

func TestVPNStatusWithoutDaemonFails(t *testing.T) {
	var out bytes.Buffer
	sock := filepath.Join(t.TempDir(), "none.sock")
	if code := Main(context.Background(), quietEnv(&out), []string{"ferry", "vpn", "status", "--status", sock}); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
}

func TestGatewayRefusesConfigWithUnknownField(t *testing.T) {
	var out bytes.Buffer
	p := filepath.Join(t.TempDir(), "gw.json")
	os.WriteFile(p, []byte(`{"listen":"10.33.0.2","alow":"x"}`), 0o644)
	if code := Main(context.Background(), quietEnv(&out), []string{"ferry", "gateway", "--config", p}); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
}

func TestVPNSaveWritesStateThatUpCanLoad(t *testing.T) {
	dir := t.TempDir()
	ca, _ := pki.NewCA("ca", time.Hour)
	key, cert, _ := ca.Issue(pki.Identity{CommonName: "lease-3"}, pki.ECDSAP256, time.Hour)
	kp, _ := pki.MarshalKeyPEM(key)
	for name, data := range map[string][]byte{"ca.pem": ca.CertPEM(), "cert.pem": pki.CertPEM(cert), "key.pem": kp} {
		os.WriteFile(filepath.Join(dir, name), data, 0o600)
	}
	state := filepath.Join(dir, "state")
	argv := []string{"ferry", "vpn", "save", "--to", state, "--allow-disk", "--gateway", "10.33.0.2",
		"--ca", filepath.Join(dir, "ca.pem"), "--cert", filepath.Join(dir, "cert.pem"), "--key", filepath.Join(dir, "key.pem"), "--subnet", "10.33.2.0/24"}
	var out bytes.Buffer
	if code := Main(context.Background(), quietEnv(&out), argv); code != 0 {
		t.Fatalf("vpn save: exit %d", code)
	}
	s, err := ike.LoadState(state)
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := pki.Pin(key.Public())
	p2, _ := pki.Pin(s.Key.Public())
	if p1 != p2 || s.Gateway.String() != "10.33.0.2" || s.RemoteSubnets[0].String() != "10.33.2.0/24" {
		t.Fatalf("saved state %+v differs from the options", s)
	}
	if code := Main(context.Background(), quietEnv(&out), argv); code == 0 {
		t.Fatal("second vpn save replaced the state")
	}
}
