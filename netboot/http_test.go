package netboot

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"ferry/internal/syncbuf"
)

// fetch GETs base+path from h and returns status and body.
func fetch(t testing.TB, h http.Handler, url string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	return rec.Code, rec.Body.String()
}

var fileURL = regexp.MustCompile(`http://10\.42\.0\.1:8080(/f/[A-Za-z0-9_-]+)`)

// script fetches mac's script and returns it with its kernel and initrd paths.
func script(t *testing.T, s *Server, mac net.HardwareAddr) (string, string, string) {
	t.Helper()
	code, body := fetch(t, s.Handler(), strings.TrimPrefix(s.scriptURL(mac, netip.Addr{}), s.cfg.HTTPBase))
	if code != http.StatusOK {
		t.Fatalf("script for %s: status %d: %s", mac, code, body)
	}
	m := fileURL.FindAllStringSubmatch(body, -1)
	if len(m) != 2 {
		t.Fatalf("script has %d file URLs, want 2:\n%s", len(m), body)
	}
	return body, m[0][1], m[1][1]
}

func TestScriptPutsBootParametersOnKernelLine(t *testing.T) {
	s := newTestServer(t, ModeDHCP, testPolicy(t), nil)
	body, _, _ := script(t, s, macKnown)
	if !strings.HasPrefix(body, "#!ipxe\n") {
		t.Fatalf("script does not start with #!ipxe:\n%s", body)
	}
	if !regexp.MustCompile(`(?m)^kernel http://\S+ initrd=initrd.img ` + regexp.QuoteMeta(testCmdline) + `$`).MatchString(body) {
		t.Fatalf("kernel line lacks the command line:\n%s", body)
	}
	if !strings.Contains(body, "\nboot\n") {
		t.Fatalf("script does not boot:\n%s", body)
	}
}

func TestScriptURLsServeKernelAndInitrd(t *testing.T) {
	s := newTestServer(t, ModeDHCP, testPolicy(t), nil)
	_, k, i := script(t, s, macKnown)
	if code, body := fetch(t, s.Handler(), k); code != 200 || body != "KERNEL-BYTES" {
		t.Fatalf("kernel: %d %q", code, body)
	}
	if code, body := fetch(t, s.Handler(), i); code != 200 || len(body) != 70000 {
		t.Fatalf("initrd: %d, %d bytes", code, len(body))
	}
}

func TestScriptRefusedAndLoggedForUnknownMAC(t *testing.T) {
	var log syncbuf.Buffer
	s := newTestServer(t, ModeDHCP, testPolicy(t), &log)
	code, _ := fetch(t, s.Handler(), strings.TrimPrefix(s.scriptURL(macUnknown, netip.Addr{}), s.cfg.HTTPBase))
	if code != http.StatusNotFound {
		t.Fatalf("status %d, want 404", code)
	}
	if !strings.Contains(log.String(), "mac="+macUnknown.String()) || !strings.Contains(log.String(), "unknown machine") {
		t.Fatalf("refusal not logged with the MAC:\n%s", log.String())
	}
}

func TestTamperedFileURLRefused(t *testing.T) {
	s := newTestServer(t, ModeDHCP, testPolicy(t), nil)
	_, k, _ := script(t, s, macKnown)
	b := []byte(k)
	last := len(b) - 3
	b[last] = map[bool]byte{true: 'B', false: 'A'}[b[last] == 'A']
	if code, body := fetch(t, s.Handler(), string(b)); code != http.StatusNotFound || strings.Contains(body, "KERNEL") {
		t.Fatalf("tampered URL: %d %q", code, body)
	}
}

func TestFileURLExpires(t *testing.T) {
	s := newTestServer(t, ModeDHCP, testPolicy(t), nil)
	c := &clock{t: time.Now()}
	s.now = c.now
	_, k, _ := script(t, s, macKnown)
	c.t = c.t.Add(s.cfg.URLLifetime + time.Second)
	if code, _ := fetch(t, s.Handler(), k); code != http.StatusNotFound {
		t.Fatalf("expired URL: status %d, want 404", code)
	}
}

func TestServerIsNoFileServer(t *testing.T) {
	s := newTestServer(t, ModeDHCP, testPolicy(t), nil)
	for _, p := range []string{"/", "/f/", "/ipxe/", "/etc/passwd", "/f/../../etc/passwd", "/f/AAAA"} {
		// 404, or a redirect to the cleaned path (which is 404 too)
		if code, _ := fetch(t, s.Handler(), p); code != http.StatusNotFound && code/100 != 3 {
			t.Errorf("%s: status %d, want 404", p, code)
		}
	}
}

func TestScriptRefusesCommandLineThatEscapesTheLine(t *testing.T) {
	for _, bad := range []string{"a\nshell", "a\rb", "x=${net0/mac}", strings.Repeat("a", maxCmdline+1)} {
		p := testPolicy(t)
		p.Spec.Cmdline = bad
		s := newTestServer(t, ModeDHCP, p, nil)
		code, body := fetch(t, s.Handler(), strings.TrimPrefix(s.scriptURL(macKnown, netip.Addr{}), s.cfg.HTTPBase))
		if code == http.StatusOK {
			t.Errorf("cmdline %.20q: script served:\n%s", bad, body)
		}
	}
}

func TestEachScriptIsANewBoot(t *testing.T) {
	calls := 0
	p := testPolicy(t)
	counting := policyFunc(func(ctx context.Context, f Fetch) (*BootSpec, error) {
		calls++
		return p.Boot(ctx, f)
	})
	s := newTestServer(t, ModeDHCP, counting, nil)
	_, k1, _ := script(t, s, macKnown)
	_, k2, _ := script(t, s, macKnown)
	if calls != 2 || k1 == k2 {
		t.Fatalf("two scripts: %d policy calls, same kernel URL %v", calls, k1 == k2)
	}
	if s.boots.len() != 2 {
		t.Fatalf("boot table holds %d, want 2", s.boots.len())
	}
}

func TestBootTableIsBounded(t *testing.T) {
	b := newBootTable(3)
	now := time.Now()
	var ids [][16]byte
	for range 5 {
		ids = append(ids, b.add(&boot{mac: macKnown, expires: now.Add(time.Hour)}, now))
	}
	if b.len() != 3 {
		t.Fatalf("table holds %d, want 3", b.len())
	}
	if _, ok := b.get(ids[0], now); ok {
		t.Fatal("oldest boot not evicted")
	}
	if _, ok := b.get(ids[4], now); !ok {
		t.Fatal("newest boot evicted")
	}
}

func TestArtifactFromOpen(t *testing.T) {
	p := testPolicy(t)
	p.Spec.Kernel = Artifact{Open: func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader("FROM-STORE")), nil
	}}
	s := newTestServer(t, ModeDHCP, p, nil)
	_, k, _ := script(t, s, macKnown)
	if code, body := fetch(t, s.Handler(), k); code != 200 || body != "FROM-STORE" {
		t.Fatalf("kernel: %d %q", code, body)
	}
}

// policyFunc admits everyone and boots through f.
type policyFunc func(ctx context.Context, f Fetch) (*BootSpec, error)

func (f policyFunc) Admit(ctx context.Context, mac net.HardwareAddr) error { return nil }
func (f policyFunc) Boot(ctx context.Context, fe Fetch) (*BootSpec, error) {
	return f(ctx, fe)
}

// The policy learns, per script request, the address the DHCP answer
// leased with the URL and the address the request came from; a refusal
// wrapping ErrRefused is a 403.
func TestScriptRequestTellsThePolicyTheLeaseAndTheSource(t *testing.T) {
	p := testPolicy(t)
	var got []Fetch
	s := newTestServer(t, ModeDHCP, policyFunc(func(ctx context.Context, f Fetch) (*BootSpec, error) {
		got = append(got, f)
		if f.From != f.Leased {
			return nil, fmt.Errorf("%w: from %v", ErrRefused, f.From)
		}
		return p.Boot(ctx, f)
	}), nil)
	offer := mustReply(t, s, discover(t, ipxe(macKnown)), portDHCP)
	path := strings.TrimPrefix(offer.BootFileNameOption(), s.cfg.HTTPBase)
	for _, tc := range []struct {
		from string
		code int
	}{{offer.YourIPAddr.String(), http.StatusOK}, {"10.42.0.66", http.StatusForbidden}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.RemoteAddr = tc.from + ":5000"
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != tc.code {
			t.Errorf("script from %s: %d, want %d", tc.from, rec.Code, tc.code)
		}
	}
	leased := netip.MustParseAddr(offer.YourIPAddr.String())
	if len(got) != 2 || got[0].Leased != leased || got[0].From != leased || got[1].From.String() != "10.42.0.66" ||
		got[0].MAC.String() != macKnown.String() {
		t.Fatalf("policy saw %+v, want the lease %v and each source address", got, leased)
	}
}
