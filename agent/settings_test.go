package agent

import (
	"strings"
	"testing"
)

const goodSettings = `{
 "kernel": {"url": "vmlinuz-b", "sha256": "` + zeros + `"},
 "initrd": {"url": "initrd-b.img", "sha256": "` + zeros + `"},
 "cmdline": "console=ttyS0 quiet",
 "root": {"server": "10.9.0.1", "path": "/"}
}`

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"

func TestParseSettingsFillsDefaults(t *testing.T) {
	s, err := ParseSettings([]byte(goodSettings), "t.json")
	if err != nil {
		t.Fatal(err)
	}
	if s.Root.NFSVersion != "4.1" || s.Root.Init != "/sbin/init" || s.Root.State != "tmpfs" {
		t.Fatalf("defaults not applied: %+v", s.Root)
	}
}

func TestParseSettingsRefusesBadInput(t *testing.T) {
	for _, c := range []struct{ name, doc, want string }{
		{"unknown field", strings.Replace(goodSettings, `"cmdline"`, `"cmdlin"`, 1), "unknown field"},
		{"short digest", strings.Replace(goodSettings, zeros, "abc", 1), "kernel.sha256"},
		{"hostname server", strings.Replace(goodSettings, "10.9.0.1", "nfs.example", 1), "root.server"},
		{"relative path", strings.Replace(goodSettings, `"path": "/"`, `"path": "x"`, 1), "root.path"},
		{"bad state", strings.Replace(goodSettings, `"path": "/"`, `"path": "/", "state": "disk"`, 1), "root.state"},
		{"not json", "{", "t.json"},
		{"huge", strings.Repeat(" ", maxSettings+1), "more than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseSettings([]byte(c.doc), "t.json")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, c.want)
			}
			if !strings.Contains(err.Error(), "t.json") {
				t.Fatalf("err = %v does not name the source", err)
			}
		})
	}
}

func TestCmdlineLastOccurrenceWins(t *testing.T) {
	c, err := ParseCmdline(`console=ttyS0 rdinit=/init ferry.source="http://a b" rdinit=/ferry/bin/init quiet`)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Get("rdinit"); v != "/ferry/bin/init" {
		t.Fatalf("rdinit = %q", v)
	}
	if v, _ := c.Get("ferry.source"); v != "http://a b" {
		t.Fatalf("quoted value = %q", v)
	}
	if _, ok := c.Get("quiet"); !ok {
		t.Fatal("flag without value not found")
	}
}

func TestBCmdlinePutsRdinitLast(t *testing.T) {
	got := bCmdline(" console=ttyS0 rdinit=/init ", "t1")
	want := "console=ttyS0 rdinit=/init rdinit=/ferry/bin/init ferry.trace=t1"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func FuzzParseSettings(f *testing.F) {
	f.Add([]byte(goodSettings))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseSettings(b, "fuzz")
	})
}
