package applets

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
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
