package borrower

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeExportfs is a stand-in exportfs(8) that records its arguments: the
// host has no kernel NFS server to run the real one against.
func fakeExportfs(t *testing.T, dir string) (bin, log string) {
	bin, log = filepath.Join(dir, "exportfs"), filepath.Join(dir, "exportfs.log")
	script := "#!/bin/sh\necho \"$*\" >> " + log + "\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, log
}

func TestKernelExportsAddsMissingRemovesStaleLeavesOthers(t *testing.T) {
	dir := t.TempDir()
	bin, log := fakeExportfs(t, dir)
	roots := "/var/lib/ferry-borrower/roots"
	etab := filepath.Join(dir, "etab")
	os.WriteFile(etab, []byte("/srv/other\t10.0.0.5(rw,sync)\n"+
		roots+"/Bold-0\t10.61.8.9(rw,sync,no_root_squash)\n"+
		roots+"/Bkeep-0\t10.61.8.2(rw,sync,no_root_squash)\n"+
		roots+"/Bhand-0\t*(ro)\n"), 0o644)
	k := &kernelExports{bin: bin, etab: etab, roots: roots, options: defaultKernelExportOptions}
	err := k.Set(context.Background(), []Export{
		{Name: "Bnew-0", Path: roots + "/Bnew-0", Client: netip.MustParseAddr("10.61.8.1")},
		{Name: "Bkeep-0", Path: roots + "/Bkeep-0", Client: netip.MustParseAddr("10.61.8.2")},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(log)
	want := "-o " + defaultKernelExportOptions + " 10.61.8.1:" + roots + "/Bnew-0\n-u 10.61.8.9:" + roots + "/Bold-0\n"
	if string(got) != want {
		t.Errorf("exportfs ran:\n%s\nwant:\n%s", got, want)
	}

	// The export this driver replaces: every root in one.
	os.WriteFile(etab, []byte(roots+"\t*(rw,no_root_squash)\n"), 0o644)
	err = k.Set(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), roots+" is exported to *") {
		t.Fatalf("Set with the roots directory exported to everyone: %v, want a refusal naming it", err)
	}
}

func TestGaneshaReloadRefusesAPidThatIsNotGanesha(t *testing.T) {
	dir := t.TempDir()
	pid := filepath.Join(dir, "ganesha.pid")
	os.WriteFile(pid, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	g := &ganeshaExports{file: filepath.Join(dir, "exports.conf"), pidFile: pid}
	err := g.Set(context.Background(), []Export{{ID: 1001, Path: "/r/B-0", Pseudo: "/srv/roots/B-0", Client: netip.MustParseAddr("10.61.8.1")}})
	if err == nil || !strings.Contains(err.Error(), "not ganesha.nfsd") {
		t.Fatalf("Set with a pid file naming this test: %v, want a refusal", err)
	}
	data, _ := os.ReadFile(g.file)
	for _, want := range []string{"Export_Id = 1001;", `Path = "/r/B-0";`, `Pseudo = "/srv/roots/B-0";`, "Access_Type = None;",
		"CLIENT { Clients = 10.61.8.1; Access_Type = RW; Squash = No_Root_Squash; }"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("exports file lacks %q:\n%s", want, data)
		}
	}
}

func TestTwoBorrowersCannotShareAGaneshaExportsFile(t *testing.T) {
	cfg := Config{NFSExports: "ganesha", GaneshaExportsFile: filepath.Join(t.TempDir(), "ferry-exports.conf")}
	first, err := openExports(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = openExports(cfg)
	if err == nil || !strings.Contains(err.Error(), "held by another borrower") {
		t.Fatalf("a second borrower on the same exports file: %v, want a refusal", err)
	}
	first.(*ganeshaExports).lock.Close()
	if _, err := openExports(cfg); err != nil {
		t.Fatalf("after the first one ended: %v", err)
	}
}
