package lender

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ferry/configfile"
)

// A lender config's problems come out of one load, each on its own line
// with its field path, the value given and what is wanted.
func TestLenderConfigReportsEveryProblemAtOnce(t *testing.T) {
	dir := t.TempDir()
	good := `"dir": "/var/lib/ferry/lender", "agent_listen": "10.0.0.1:8443", "public_url": "https://10.0.0.1:8443",
	  "m2m_listen": "203.0.113.5:9443", "m2m_cert": "m2m.pem", "m2m_key": "m2m.key",
	  "borrowers": [{"name": "acme", "ca": "acme-ca.pem"}]`
	nb := `"interface": "eth1", "server_ip": "10.0.0.1", "kernel_a": "k", "initrd_a": "i"`
	for _, tc := range []struct {
		name, json string
		want       []string
	}{
		{"good", "{" + good + "}", nil},
		{"good with comments and netboot", `{"//": "the lender", ` + good + `, "netboot": {"//": ["x"], ` + nb + `, "mode": "proxydhcp"}}`, nil},
		{"typos and bad values together", `{` + good + `, "token_tl": "10m", "netboot": {` + nb + `, "mode": "dhcp", "prefix": "10.0.0.0/24",
		   "pool_first": "10.0.1.5", "pool_last": "10.0.0.150", "intreface": "eth1"}}`, []string{
			`token_tl: unknown key (did you mean "token_ttl"?)`,
			`netboot.intreface: unknown key (did you mean "interface"?)`,
			`netboot.pool_first "10.0.1.5": want an IPv4 address inside prefix 10.0.0.0/24 (mode dhcp)`,
			`netboot.pool_last "10.0.0.150": want an address at or after pool_first 10.0.1.5`}},
		{"missing and malformed", `{"dir": "/d", "agent_listen": "10.0.0.1", "public_url": "http://x", "token_ttl": "10s",
		   "borrowers": [{"name": "Acme", "ca": ""}, {"name": "b", "ca": "b.pem", "spki_sha256": "xyz"}]}`, []string{
			`m2m_cert: missing or empty: required`,
			`m2m_key: missing or empty: required`,
			`m2m_listen: missing or empty: required`,
			`agent_listen "10.0.0.1": want ADDRESS:PORT to listen on`,
			`public_url "http://x": want https://ADDRESS:PORT, how agents reach agent_listen`,
			`token_ttl "10s": want between 1m and 24h: how long a boot may take to enroll`,
			`borrowers[0].name "Acme": want 1-63 of a-z 0-9 . _ - (starting with a letter or digit)`,
			`borrowers[0].ca "": empty: name the PEM file of the CA its client certificates chain to`,
			`borrowers[1].spki_sha256 "xyz": want 64 lower-case hex digits (SHA-256 of the client key's SubjectPublicKeyInfo)`}},
		{"wrong types", `{` + good + `, "token_ttl": 600, "netboot": {` + nb + `, "mode": "pxe", "dns": "1.1.1.1"}}`, []string{
			`token_ttl 600: duration: want a string like "10m": json: cannot unmarshal number into Go value of type string`,
			`netboot.dns "1.1.1.1": want a list (a string)`,
			`netboot.mode "pxe": want dhcp (ferry hands out the addresses) or proxydhcp (the network's DHCP server does)`}},
		{"proxydhcp with a pool", `{` + good + `, "netboot": {` + nb + `, "mode": "proxydhcp", "prefix": "10.0.0.0/24"}}`, []string{
			`netboot.prefix: set but mode is proxydhcp, which hands out no addresses: want mode dhcp, or remove it`}},
	} {
		path := filepath.Join(dir, "lender.json")
		os.WriteFile(path, []byte(tc.json), 0o644)
		_, err := LoadConfig(path)
		var got []string
		for _, p := range configfile.Problems(err) {
			got = append(got, p.String())
		}
		if err != nil && got == nil {
			t.Errorf("%s: %v is not a list of problems", tc.name, err)
			continue
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
		if len(tc.want) > 1 && !strings.Contains(err.Error(), "\n  "+tc.want[1]) {
			t.Errorf("%s: error text %q lists no problem per line", tc.name, err)
		}
	}
}
