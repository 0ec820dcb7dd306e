package agent

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func TestOwnModuleDirPrefersMergedUsr(t *testing.T) {
	root := t.TempDir()
	if got := ownModuleDir(root, "6.12.0-1-cloud-amd64"); got != "" {
		t.Fatalf("empty root: %q", got)
	}
	os.MkdirAll(filepath.Join(root, "lib/modules/6.12.0-1-cloud-amd64"), 0o755)
	if got := ownModuleDir(root, "6.12.0-1-cloud-amd64"); got != filepath.Join(root, "lib/modules/6.12.0-1-cloud-amd64") {
		t.Errorf("got %q", got)
	}
	os.MkdirAll(filepath.Join(root, "usr/lib/modules/6.12.0-1-cloud-amd64"), 0o755)
	if got := ownModuleDir(root, "6.12.0-1-cloud-amd64"); got != filepath.Join(root, "usr/lib/modules/6.12.0-1-cloud-amd64") {
		t.Errorf("got %q", got)
	}
	if got := ownModuleDir(root, "6.1.0-57-amd64"); got != "" {
		t.Errorf("other release: %q", got)
	}
}

func TestFirmwareDirSetOnlyWhenOnlyUsrHasIt(t *testing.T) {
	root := t.TempDir()
	param := filepath.Join(root, "sys/module/firmware_class/parameters/path")
	os.MkdirAll(filepath.Dir(param), 0o755)
	os.WriteFile(param, nil, 0o644)
	os.MkdirAll(filepath.Join(root, "usr/lib/firmware"), 0o755)
	useFirmwareDir(root, slog.New(slog.DiscardHandler))
	if b, _ := os.ReadFile(param); string(b) != "/usr/lib/firmware" {
		t.Fatalf("path = %q", b)
	}
	os.WriteFile(param, nil, 0o644)
	os.MkdirAll(filepath.Join(root, "lib/firmware"), 0o755)
	useFirmwareDir(root, slog.New(slog.DiscardHandler))
	if b, _ := os.ReadFile(param); string(b) != "" {
		t.Fatalf("path set although /lib/firmware exists: %q", b)
	}
}
