package borrower

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry/configfile"
)

func TestConfigExportSettingsAreChecked(t *testing.T) {
	dir := t.TempDir()
	base := func() map[string]any {
		return map[string]any{"dir": "/var/lib/ferry-borrower", "lender_url": "https://l:9443", "m2m_cert": "c", "m2m_key": "k",
			"m2m_ca": "ca", "borrower_ca": "bca", "gateway": "198.51.100.7:500", "image_listen": "10.8.0.1:8444",
			"image_url": "https://10.8.0.1:8444", "image_cert": "ic", "image_key": "ik", "tunnel_pool": "10.8.1.0/24",
			"nfs_server": "10.8.0.2", "nfs_export": "/srv/roots", "nfs_exports": "ganesha",
			"ganesha_exports_file": "/etc/ganesha/ferry-exports.conf"}
	}
	for _, c := range []struct {
		name string
		edit func(map[string]any)
		want string // "" : accepted
	}{
		{"ganesha", func(map[string]any) {}, ""},
		{"no choice", func(m map[string]any) { delete(m, "nfs_exports"); delete(m, "ganesha_exports_file") }, "nfs_exports: empty"},
		{"unknown kind", func(m map[string]any) { m["nfs_exports"] = "nfsd" }, "want ganesha, kernel or none"},
		{"misspelt key", func(m map[string]any) { m["ganesha_export_file"] = "/x" }, "unknown key"},
		{"no file", func(m map[string]any) { delete(m, "ganesha_exports_file") }, "ganesha_exports_file"},
		{"quote in path", func(m map[string]any) { m["ganesha_exports_file"] = `/etc/x"; } EXPORT {` }, "not allowed"},
		{"relative dir", func(m map[string]any) { m["dir"] = "state" }, "absolute"},
		{"ids past 65535", func(m map[string]any) { m["tunnel_pool"] = "10.8.0.0/16" }, "export ids"},
		{"pool holding the gateway", func(m map[string]any) { m["tunnel_pool"] = "198.51.100.0/24" }, "tunnel pool 198.51.100.0/24 holds the gateway (198.51.100.7)"},
		{"kernel with a pseudo path", func(m map[string]any) {
			m["nfs_exports"] = "kernel"
			delete(m, "ganesha_exports_file")
		}, "want \"/var/lib/ferry-borrower/roots\""},
		{"kernel", func(m map[string]any) {
			m["nfs_exports"], m["nfs_export"] = "kernel", "/var/lib/ferry-borrower/roots"
			delete(m, "ganesha_exports_file")
		}, ""},
		{"kernel options", func(m map[string]any) {
			m["nfs_exports"], m["nfs_export"], m["kernel_export_options"] = "kernel", "/var/lib/ferry-borrower/roots", "rw insecure"
			delete(m, "ganesha_exports_file")
		}, "kernel_export_options"},
		{"none with ganesha settings", func(m map[string]any) { m["nfs_exports"] = "none" }, "nfs_exports is none"},
		{"negative lease_hours", func(m map[string]any) { m["lease_hours"] = -1 }, "lease_hours -1: want 1 to 2160"},
		{"lease_seconds too short", func(m map[string]any) { m["lease_seconds"] = 30 }, "lease_seconds 30: want 0"},
		{"lease_seconds overrides lease_hours", func(m map[string]any) { m["lease_hours"], m["lease_seconds"] = 0, 3600 }, ""},
		{"poll_seconds zero", func(m map[string]any) { m["poll_seconds"] = 0 }, "poll_seconds 0: want 1 to 3600"},
	} {
		m := base()
		c.edit(m)
		data, _ := json.Marshal(m)
		p := filepath.Join(dir, "borrower.json")
		os.WriteFile(p, data, 0o600)
		_, err := LoadConfig(p)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: err = %v, want one naming %q", c.name, err, c.want)
		}
	}
}

// A borrower config's problems come out of one load, each on its own line.
func TestBorrowerConfigReportsEveryProblemAtOnce(t *testing.T) {
	p := filepath.Join(t.TempDir(), "borrower.json")
	os.WriteFile(p, []byte(`{"//": "a comment is fine", "dir": "state", "lender_url": "http://l", "m2m_cert": "c", "m2m_key": "k",
		"m2m_ca": "ca", "borrower_ca": "bca", "gateway": "198.51.100.7", "image_listen": "10.8.0.1:8444",
		"image_url": "https://10.8.0.1:8444", "image_cert": "ic", "image_key": "ik", "tunnel_pool": "10.8.1.0/24",
		"nfs_server": "10.8.0.2", "nfs_export": "/srv/roots", "nfs_exports": "nfsd", "keeper_tls_port": 70000, "archve": true}`), 0o600)
	_, err := LoadConfig(p)
	var got []string
	for _, pr := range configfile.Problems(err) {
		got = append(got, pr.String())
	}
	want := []string{
		`archve: unknown key (did you mean "archive"?)`,
		`lender_url "http://l": want https://ADDRESS:PORT, the lender's m2m_listen`,
		`gateway "198.51.100.7": want ADDRESS:PORT`,
		`keeper_tls_port 70000: not a port`,
		`dir "state": want an absolute path (the NFS server is told paths under it)`,
		`nfs_exports "nfsd": want ganesha, kernel or none`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// With strongSwan as the gateway, a local_ts over the tunnel pool lets
// charon forward one lent server's packets to another: warned about.
func TestSwanLocalTSOverThePoolIsWarnedAbout(t *testing.T) {
	dir := t.TempDir()
	for ts, warned := range map[string]bool{"10.8.0.0/24": false, "10.8.0.0/16": true, "0.0.0.0/0": true} {
		m := map[string]any{"dir": "/var/lib/ferry-borrower", "lender_url": "https://l:9443", "m2m_cert": "c", "m2m_key": "k",
			"m2m_ca": "ca", "borrower_ca": "bca", "gateway": "198.51.100.7:500", "image_listen": "10.8.0.1:8444",
			"image_url": "https://10.8.0.1:8444", "image_cert": "ic", "image_key": "ik", "tunnel_pool": "10.8.1.0/24",
			"nfs_server": "10.8.0.2", "nfs_export": "/srv/roots", "nfs_exports": "none",
			"gateway_kind": "strongswan", "vici_socket": "/run/charon.vici", "lender_ca": "lca", "swan_local_ts": []string{ts}}
		data, _ := json.Marshal(m)
		p := filepath.Join(dir, "borrower.json")
		os.WriteFile(p, data, 0o600)
		_, r, err := ReadConfig(p)
		if err != nil || r.Err() != nil {
			t.Fatalf("swan_local_ts %s: %v %v", ts, err, r.Err())
		}
		got := false
		for _, w := range r.Warnings() {
			got = got || strings.Contains(w.String(), "overlaps tunnel_pool 10.8.1.0/24")
		}
		if got != warned {
			t.Errorf("swan_local_ts %s: warned %v, want %v (%v)", ts, got, warned, r.Warnings())
		}
	}
}
