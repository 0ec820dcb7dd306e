package lender

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"ferry/api"
	"ferry/power"
)

// The metrics count leases, enrollments, refusals, phases and power
// actions, and list the inventory by state and pool: on the status
// listener's handler, with HELP and TYPE on every series.
func TestStatusMetricsCountWhatTheLenderDid(t *testing.T) {
	f := newFixture(t, 1)
	f.m.power = func(Server) (PowerDriver, error) { return failingOff{}, nil }
	_, b := leaseAndBoot(t, f)
	f.m.powerSwitch(context.Background(), Server{MAC: b.MAC, Power: "manual"}, false)
	if _, err := enroll(f, b, b.MAC, b.LeaseID+"/"+b.ServerID, t); err != nil {
		t.Fatal(err)
	}
	enroll(f, b, b.MAC, b.LeaseID+"/"+b.ServerID, t) // reused with another key: a conflict
	now := time.Now()
	f.m.metrics.phase(api.PhaseReport{Phase: "fetch-b", Start: now.Add(-3 * time.Second), End: now, Bytes: 1 << 20})
	f.m.metrics.DHCP("answered", "OFFER")
	f.m.metrics.DHCP("ignored", "")
	f.m.metrics.Transfer("tftp", "rom", "served", 70000)
	body := scrape(t, f.m.StatusHandler())
	for _, want := range []string{"ferry_lender_leases_active 1", "ferry_lender_enrollments_total 1",
		`ferry_lender_enrollment_failures_total{reason="conflict"} 1`, `ferry_lender_boot_conflicts_total{reason="second-enrollment"} 1`,
		`ferry_lender_leases{state="active"} 1`, `ferry_lender_servers{pool="p",state="conflict"} 1`,
		`ferry_lender_phase_duration_seconds_bucket{phase="fetch-b",le="5"} 1`, `ferry_lender_phase_duration_seconds_count{phase="fetch-b"} 1`,
		`ferry_lender_phase_bytes_total{phase="fetch-b"} 1.048576e+06`,
		`ferry_lender_dhcp_requests_total{outcome="answered",reply="OFFER"} 1`, `ferry_lender_dhcp_requests_total{outcome="ignored",reply=""} 1`,
		`ferry_lender_netboot_bytes_total{proto="tftp",what="rom"} 70000`,
		`ferry_lender_power_actions_total{action="on",driver="manual"} 1`, `ferry_lender_power_actions_total{action="off",driver="manual"} 1`,
		`ferry_lender_power_errors_total{action="off",driver="manual"} 1`,
		`ferry_build_info{component="lender"`,
		"# HELP ferry_lender_servers ", "# TYPE ferry_lender_phase_duration_seconds histogram"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}

// The exposition passes client_golang's linter and, where installed,
// promtool check metrics (Debian's prometheus package).
func TestStatusMetricsPassTheLinters(t *testing.T) {
	f := newFixture(t, 1)
	leaseAndBoot(t, f)
	f.m.metrics.phase(api.PhaseReport{Phase: "kexec", Start: time.Now(), End: time.Now()})
	problems, err := testutil.GatherAndLint(f.m.metrics.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("no promtool here: client_golang's linter only")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape(t, f.m.StatusHandler()))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// The agent listener faces the PXE segment: it no longer serves /metrics
// (every borrower's figures), and neither does the m2m one.
func TestPXESideServesNoMetrics(t *testing.T) {
	f := newFixture(t, 1)
	for name, h := range map[string]http.Handler{"agent": f.m.AgentHandler(), "m2m": f.m.leaseAPI(func(*http.Request) (owner, error) { return operator, nil })} {
		srv := httptest.NewServer(h)
		resp, err := http.Get(srv.URL + "/metrics")
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || bytes.Contains(body, []byte("ferry_")) {
			t.Errorf("%s listener: GET /metrics = %d %q, want 404 and no series", name, resp.StatusCode, body)
		}
	}
}

// The status page shows servers, leases and errors, with what a server
// or an agent reported escaped, never markup.
func TestStatusPageEscapesWhatServersReport(t *testing.T) {
	f := newFixture(t, 1)
	_, b := leaseAndBoot(t, f)
	now := time.Now()
	if err := f.m.ReportPhase(context.Background(), lenderSubject(b), "", api.PhaseReport{LeaseID: b.LeaseID, ServerID: b.ServerID,
		Phase: "fetch-b", Start: now.Add(-2 * time.Second), End: now, Error: `<script>alert(1)</script>`}); err != nil {
		t.Logf("phase report: %v (the page is checked without it)", err)
	}
	rec := httptest.NewRecorder()
	f.m.StatusHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	page := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, want := range []string{b.MAC, b.LeaseID, "leased", "<h2>Last errors</h2>"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Errorf("a reported error came out as markup:\n%s", page)
	}
	if rec := httptest.NewRecorder(); func() int {
		f.m.StatusHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
		return rec.Code
	}() != http.StatusMethodNotAllowed {
		t.Error("the status page took a POST")
	}
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// failingOff powers on and fails to power off.
type failingOff struct{}

func (failingOff) On(context.Context) error  { return nil }
func (failingOff) Off(context.Context) error { return errors.New("BMC unreachable") }
func (failingOff) Status(context.Context) (power.State, error) {
	return power.StateUnknown, errors.New("BMC unreachable")
}

// A netboot as the metrics see it: a stranger's DISCOVER ignored, the
// lent server's DISCOVER and REQUEST answered, its script and kernel
// served over HTTP with their bytes, a forged file URL refused.
func TestNetbootCountsInMetrics(t *testing.T) {
	p := newPXELab(t, "dhcp")
	stranger, _ := net.ParseMAC("52:54:00:99:99:99")
	d, _ := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithHwAddr(stranger),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")))
	if _, err := p.nb.Answer(context.Background(), d); err == nil {
		t.Fatal("a stranger got an answer")
	}
	addr, path := p.ipxeDHCP(t, p.mac)
	_, script := p.get(path, addr)
	kernel := regexp.MustCompile(`kernel (http://\S+)`).FindStringSubmatch(script)
	if kernel == nil {
		t.Fatalf("script without a kernel URL:\n%s", script)
	}
	u, _ := url.Parse(kernel[1])
	if code, body := p.get(u.Path, addr); code != http.StatusOK || body != "KERNEL" {
		t.Fatalf("kernel: %d %q", code, body)
	}
	p.get("/f/forged", addr)
	body := scrape(t, p.f.m.StatusHandler())
	for _, want := range []string{
		`ferry_lender_dhcp_requests_total{outcome="ignored",reply=""} 1`,
		`ferry_lender_dhcp_requests_total{outcome="answered",reply="OFFER"} 1`,
		`ferry_lender_dhcp_requests_total{outcome="answered",reply="ACK"} 1`,
		`ferry_lender_netboot_transfers_total{outcome="served",proto="http",what="script"} 1`,
		`ferry_lender_netboot_transfers_total{outcome="served",proto="http",what="file"} 1`,
		`ferry_lender_netboot_transfers_total{outcome="refused",proto="http",what="file"} 1`,
		`ferry_lender_netboot_bytes_total{proto="http",what="file"} 6`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
