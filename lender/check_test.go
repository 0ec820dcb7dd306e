package lender

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ferry/configfile"
	"ferry/lenderca"
	"ferry/pki"
)

// What a lease will need is checked before the lender serves: image A
// missing, no iPXE file and an m2m key that is not the certificate's are
// each reported, all at once, and Serve refuses to start with them
// without ever logging "serving".
func TestServeRefusesWhatALeaseWouldFailOn(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if _, err := lenderca.Init(state, []string{"127.0.0.1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	acme := newOrg(t, dir, "acme")
	ca, _ := pki.NewOrgCA("bigco", 24*time.Hour)
	_, cert, _ := ca.IssueSite("bigco-m2m", []string{"127.0.0.1"}, pki.UsageServer, 24*time.Hour)
	otherKey, _, _ := ca.IssueSite("other", []string{"127.0.0.1"}, pki.UsageServer, 24*time.Hour)
	kp, _ := pki.MarshalKeyPEM(otherKey)
	os.WriteFile(filepath.Join(dir, "m2m.pem"), pki.CertPEM(cert), 0o644)
	os.WriteFile(filepath.Join(dir, "m2m.key"), kp, 0o600)
	os.MkdirAll(filepath.Join(dir, "tftp"), 0o755)
	cfg := Config{Dir: state, AgentListen: "127.0.0.1:0", PublicURL: "https://127.0.0.1:8443", M2MListen: "127.0.0.1:0",
		M2MCert: filepath.Join(dir, "m2m.pem"), M2MKey: filepath.Join(dir, "m2m.key"), TokenTTL: Duration(10 * time.Minute),
		Borrowers: []BorrowerConfig{{Name: "acme", CA: acme.caFile}},
		Netboot: &NetbootConfig{Interface: "lo", ServerIP: "127.0.0.1", Mode: "proxydhcp", TFTPRoot: filepath.Join(dir, "tftp"),
			KernelA: filepath.Join(dir, "vmlinuz-a"), InitrdA: filepath.Join(dir, "initrd-a.img")}}

	r := &configfile.Report{Name: "check"}
	CheckSetup(cfg, r, time.Now(), true)
	var got []string
	for _, p := range r.Problems {
		got = append(got, p.String())
	}
	text := strings.Join(got, "\n")
	for _, want := range []string{
		"m2m_cert \"" + cfg.M2MCert + "\": pki: " + cfg.M2MKey + " is not the key of " + cfg.M2MCert,
		"netboot.kernel_a \"" + cfg.Netboot.KernelA + "\": image A: open " + cfg.Netboot.KernelA + ": no such file or directory",
		"netboot.initrd_a \"" + cfg.Netboot.InitrdA + "\": image A: open",
		"netboot.tftp_root \"" + cfg.Netboot.TFTPRoot + "\": no iPXE boot file (undionly.kpxe, ipxe.efi)",
		"warning: borrowers[0].ca \"" + acme.caFile + "\": " + acme.caFile + ": \"acme-ca\" expires on",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no problem %q in:\n%s", want, text)
		}
	}

	var log bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Serve(context.Background(), cfg, slog.New(slog.NewTextHandler(&log, nil)), nil, nil)
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "netboot.kernel_a") || !strings.Contains(err.Error(), "m2m_cert") {
			t.Fatalf("Serve: %v, want the refusal naming every problem", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve started with a setup no lease could use")
	}
	if strings.Contains(log.String(), "serving") {
		t.Fatalf("logged serving before refusing:\n%s", log.String())
	}
	if !strings.Contains(log.String(), "expires on") {
		t.Fatalf("the expiry warning was not logged:\n%s", log.String())
	}
}
