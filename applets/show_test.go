package applets

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"ferry/lender"
)

// showSite is a lender with one server whose lease failed at power on
// (its QMP socket is missing): every show and events command has a
// server, a lease, errors and a history to print.
func showSite(t *testing.T) (dir, mac, lease string) {
	dir, m := runningLender(t, 5*time.Minute)
	mac = "52:54:00:aa:00:05"
	if code, _, errb := run("ferry", "lender", "server", "add", "--dir", dir, "--mac", mac, "--power", "qmp",
		"--power-opt", "socket="+filepath.Join(dir, "no-qemu.qmp")); code != 0 {
		t.Fatal(errb)
	}
	l, err := m.RequestLease(context.Background(), testLeaseRequest("k"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the power-error in the server's history", func() bool {
		ev, _ := m.ServerEvents(context.Background(), mac)
		return len(ev) == 4 && ev[3].What == "booting -> power-error"
	})
	return dir, mac, l.ID
}

var (
	rfc3339 = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	spaces  = regexp.MustCompile(`  +`)
)

// TestShowOutput pins what the show and events commands print and the
// order of their checks (arguments, then -o, then the manager), byte for
// byte but for times, the lease ID, the state directory and the width of
// the gaps between columns (times are as long as the local zone makes
// them).
func TestShowOutput(t *testing.T) {
	dir, mac, lease := showSite(t)
	const perr = `power on 52:54:00:aa:00:05 via qmp: power qmp on (option "socket"): dial unix DIR/no-qemu.qmp: connect: no such file or directory`
	for _, c := range []struct {
		argv      []string
		code      int
		out, errb string
	}{
		{[]string{"server", "show", mac}, 0, `server 52:54:00:aa:00:05  id s525400aa0005  pool default  power qmp  state power-error
lease LEASE  phase power-error
last error (TIME): ` + perr + `

TIME  KIND  MAC  LEASE  WHAT  ERROR
TIME  state  52:54:00:aa:00:05  -  added to pool default, power qmp  -
TIME  state  52:54:00:aa:00:05  LEASE  leased to default (pool default): booting  -
TIME  power  52:54:00:aa:00:05  LEASE  power on via qmp: failed  ` + perr + `
TIME  state  52:54:00:aa:00:05  LEASE  booting -> power-error  ` + perr + `
`, ""},
		{[]string{"server", "show", mac, "-o", "wide", "--no-headers", "--events", "2"}, 0, `server 52:54:00:aa:00:05  id s525400aa0005  pool default  power qmp  state power-error
lease LEASE  phase power-error
last error (TIME): ` + perr + `

TIME  power  lender  52:54:00:aa:00:05  LEASE  power on via qmp: failed  ` + perr + `
TIME  state  lender  52:54:00:aa:00:05  LEASE  booting -> power-error  ` + perr + `
`, ""},
		{[]string{"server", "events", mac}, 0, `TIME  KIND  MAC  LEASE  WHAT  ERROR
TIME  state  52:54:00:aa:00:05  -  added to pool default, power qmp  -
TIME  state  52:54:00:aa:00:05  LEASE  leased to default (pool default): booting  -
TIME  power  52:54:00:aa:00:05  LEASE  power on via qmp: failed  ` + perr + `
TIME  state  52:54:00:aa:00:05  LEASE  booting -> power-error  ` + perr + `
`, ""},
		{[]string{"lease", "show", lease}, 0, `lease LEASE  borrower default  state active  created TIME  expires TIME

LEASE  BORROWER  STATE  EXPIRES  MAC  PHASE  ERROR
LEASE  default  active  TIME  52:54:00:aa:00:05  power-error  ` + perr + `

TIME  KIND  MAC  LEASE  WHAT  ERROR
TIME  state  52:54:00:aa:00:05  LEASE  leased to default (pool default): booting  -
TIME  power  52:54:00:aa:00:05  LEASE  power on via qmp: failed  ` + perr + `
TIME  state  52:54:00:aa:00:05  LEASE  booting -> power-error  ` + perr + `
`, ""},
		{[]string{"lease", "show", lease, "-o", "wide", "--events", "1"}, 0, `lease LEASE  borrower default  state active  created TIME  expires TIME

LEASE  BORROWER  STATE  EXPIRES  SERVER  MAC  PHASE  SPKI_SHA256  ERROR
LEASE  default  active  TIME  s525400aa0005  52:54:00:aa:00:05  power-error  -  ` + perr + `

TIME  KIND  SOURCE  MAC  LEASE  WHAT  ERROR
TIME  state  lender  52:54:00:aa:00:05  LEASE  booting -> power-error  ` + perr + `
`, ""},
		{[]string{"lease", "events", lease, "--no-headers"}, 0, `TIME  state  52:54:00:aa:00:05  LEASE  leased to default (pool default): booting  -
TIME  power  52:54:00:aa:00:05  LEASE  power on via qmp: failed  ` + perr + `
TIME  state  52:54:00:aa:00:05  LEASE  booting -> power-error  ` + perr + `
`, ""},
		{[]string{"server", "show"}, 2, "", "lender: want one MAC, got 0 arguments (see 'lender --help')\n"},
		{[]string{"server", "show", mac, "-o", "yaml"}, 2, "", "lender: -o \"yaml\": want table, wide or json (see 'lender --help')\n"},
		{[]string{"lease", "show", "nosuchlease"}, 1, "", "lender: lease: no lease \"nosuchlease\"\n"},
		{[]string{"lease", "show", "nosuchlease", "-o", "yaml"}, 2, "", "lender: -o \"yaml\": want table, wide or json (see 'lender --help')\n"},
		{[]string{"server", "events", mac, mac}, 2, "", "lender: want one MAC, got 2 arguments (see 'lender --help')\n"},
		{[]string{"lease", "events"}, 2, "", "lender: want one lease ID, got 0 arguments (see 'lender --help')\n"},
	} {
		code, out, errb := run(append([]string{"ferry", "lender", c.argv[0], c.argv[1], "--dir", dir}, c.argv[2:]...)...)
		norm := func(s string) string {
			s = rfc3339.ReplaceAllString(s, "TIME")
			s = strings.ReplaceAll(s, lease, "LEASE")
			return spaces.ReplaceAllString(strings.ReplaceAll(s, dir, "DIR"), "  ")
		}
		if code != c.code || norm(out) != c.out || norm(errb) != c.errb {
			t.Errorf("lender %s: exit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr: %q, want %q", strings.Join(c.argv, " "),
				code, c.code, norm(out), c.out, norm(errb), c.errb)
		}
	}
}

// TestBorrowerShowChecksBeforeAsking: lease show refuses a wrong call
// before it asks the borrower manager (there is none here).
func TestBorrowerShowChecksBeforeAsking(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		argv []string
		errb string
	}{
		{[]string{"--dir", ""}, "borrower: --dir is required (see 'borrower --help')\n"},
		{nil, "borrower: want one lease ID, got 0 arguments (see 'borrower --help')\n"},
		{[]string{"a", "b"}, "borrower: want one lease ID, got 2 arguments (see 'borrower --help')\n"},
		{[]string{"a", "-o", "yaml"}, "borrower: -o \"yaml\": want table, wide or json (see 'borrower --help')\n"},
	} {
		code, out, errb := run(append([]string{"ferry", "borrower", "lease", "show", "--dir", dir}, c.argv...)...)
		if code != 2 || out != "" || errb != c.errb {
			t.Errorf("borrower lease show %v: exit %d, stdout %q, stderr %q; want 2 and %q", c.argv, code, out, errb, c.errb)
		}
	}
}

// TestServerRemoveAndClearOutput pins what server remove and clear print
// and the order of their checks.
func TestServerRemoveAndClearOutput(t *testing.T) {
	dir, mac, _ := showSite(t)
	const spare, other = "52:54:00:aa:00:06", "52:54:00:aa:00:07"
	for _, m := range []string{spare, other} {
		if code, _, errb := run("ferry", "lender", "server", "add", "--dir", dir, "--mac", m, "--power", "manual",
			"--power-opt", "confirm_file="+filepath.Join(dir, "confirm")); code != 0 {
			t.Fatal(errb)
		}
	}
	for _, c := range []struct {
		argv      []string
		code      int
		out, errb string
	}{
		{[]string{"clear"}, 2, "", "lender: want one MAC, got 0 arguments (see 'lender --help')\n"},
		{[]string{"remove", mac, "-o", "yaml"}, 2, "", "lender: -o \"yaml\": want table, wide or json (see 'lender --help')\n"},
		{[]string{"remove", "52:54:00:aa:00:99", "-o", "yaml"}, 2, "", "lender: -o \"yaml\": want table, wide or json (see 'lender --help')\n"},
		{[]string{"clear", spare}, 1, "", "lender: mac: 52:54:00:aa:00:06 is not lent\n"},
		{[]string{"clear", mac, "-o", "json"}, 0, "{\n  \"id\": \"s525400aa0005\",\n  \"mac\": \"52:54:00:aa:00:05\",\n  \"phase\": \"booting\"\n}\n", ""},
		{[]string{"remove", spare, "-o", "json"}, 0, "{\n  \"mac\": \"52:54:00:aa:00:06\",\n  \"removed\": \"true\"\n}\n", ""},
		{[]string{"remove", other}, 0, "removed 52:54:00:aa:00:07\n", ""},
		{[]string{"remove", spare}, 1, "", "lender: mac: 52:54:00:aa:00:06 is not in the inventory\n"},
	} {
		code, out, errb := run(append([]string{"ferry", "lender", "server", c.argv[0], "--dir", dir}, c.argv[1:]...)...)
		if code != c.code || out != c.out || errb != c.errb {
			t.Errorf("lender server %s: exit %d, want %d\nstdout %q\n  want %q\nstderr %q\n  want %q", strings.Join(c.argv, " "),
				code, c.code, out, c.out, errb, c.errb)
		}
	}
	// The new boot fails at power on again; clear it once more, as a table.
	eventually(t, "power-error after the clear", func() bool {
		var ss []lender.Server
		jsonOut(t, 0, &ss, "ferry", "lender", "server", "list", "--dir", dir, "-o", "json")
		return len(ss) == 1 && ss[0].State == "power-error"
	})
	if code, out, errb := run("ferry", "lender", "server", "clear", "--dir", dir, mac); code != 0 || out != "cleared 52:54:00:aa:00:05 (s525400aa0005): phase booting\n" {
		t.Errorf("lender server clear: exit %d, stdout %q, stderr %q", code, out, errb)
	}
}
