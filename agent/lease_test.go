package agent

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"ferry/api"
	"ferry/pki"
)

// goodAnswer is an enrollment answer the agent accepts.
func goodAnswer(t testing.TB) api.EnrollResponse {
	t.Helper()
	ca, err := pki.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pem := string(ca.CertPEM())
	return api.EnrollResponse{Certificate: pem, CA: pem, BorrowerCA: pem, LeaseID: "L1", ServerID: "s1",
		Gateway: "10.50.1.1",
		Image: api.Image{Kernel: api.Artifact{URL: "https://10.50.2.1/b1/vmlinuz", SHA256: strings.Repeat("a", 64)},
			Initrd: api.Artifact{URL: "https://10.50.2.1/b1/initrd.img", SHA256: strings.Repeat("b", 64)}},
		Root: api.NFSRoot{Server: "10.50.2.2", Path: "/roots/s1"}}
}

func TestEnrollmentAnswerRefusesImageOutsideTLS(t *testing.T) {
	r := goodAnswer(t)
	r.Image.Initrd.URL = "http://10.50.2.1/b1/initrd.img"
	_, err := checkEnrollment(&r, "L1", "s1")
	if err == nil || !strings.Contains(err.Error(), "image.initrd.url") {
		t.Fatalf("plain-HTTP initrd: %v, want a refusal naming image.initrd.url", err)
	}
}

func TestEnrollmentAnswerRefusesAnotherServersLease(t *testing.T) {
	r := goodAnswer(t)
	_, err := checkEnrollment(&r, "L1", "s2")
	if err == nil || !strings.Contains(err.Error(), "server_id") {
		t.Fatalf("answer for s1 to s2: %v", err)
	}
}

func TestEnrollmentAnswerRefusesGatewayName(t *testing.T) {
	r := goodAnswer(t)
	r.Gateway = "gw.example.com:500"
	if _, err := checkEnrollment(&r, "L1", "s1"); err == nil || !strings.Contains(err.Error(), "gateway") {
		t.Fatalf("gateway by name: %v", err)
	}
	r.Gateway = "10.50.1.1:4501"
	if _, err := checkEnrollment(&r, "L1", "s1"); err == nil || !strings.Contains(err.Error(), "port 4501") {
		t.Fatalf("gateway on port 4501: %v", err)
	}
}

func TestEnrollmentAnswerCarriesRootAndImage(t *testing.T) {
	r := goodAnswer(t)
	e, err := checkEnrollment(&r, "L1", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if e.settings.Root.Init != "/sbin/init" || e.settings.Root.State != "tmpfs" || e.settings.Kernel.URL != r.Image.Kernel.URL {
		t.Fatalf("settings = %+v", e.settings)
	}
}

func TestTraceNamesLeaseAndServer(t *testing.T) {
	l, s, err := subjectFromTrace("L0123abcd-s525400500001")
	if err != nil || l != "L0123abcd" || s != "s525400500001" {
		t.Fatalf("got %q %q %v", l, s, err)
	}
	for _, bad := range []string{"", "L1", "L1-", "-s1", "L1-s1/../x", "L 1-s1"} {
		if _, _, err := subjectFromTrace(bad); err == nil {
			t.Errorf("trace %q accepted", bad)
		}
	}
}

func FuzzCheckEnrollment(f *testing.F) {
	good, _ := json.Marshal(goodAnswer(f))
	f.Add(good, "L1-s1")
	f.Add([]byte(`{"certificate_pem":"x","gateway":"::1"}`), "L1-s1")
	pooled := goodAnswer(f)
	pooled.TunnelPool = "10.50.0.0/23"
	withPool, _ := json.Marshal(pooled)
	f.Add(withPool, "L1-s1")
	f.Fuzz(func(t *testing.T, body []byte, trace string) {
		var r api.EnrollResponse
		if json.Unmarshal(body, &r) != nil {
			return
		}
		l, s, err := subjectFromTrace(trace)
		if err != nil {
			return
		}
		if e, err := checkEnrollment(&r, l, s); err == nil && (e.cert == nil || !e.gateway.IsValid()) {
			t.Fatalf("accepted an answer without certificate or gateway: %+v", e)
		} else if err == nil && e.pool.IsValid() && (e.pool.Contains(e.gateway) || !e.pool.Addr().Is4()) {
			t.Fatalf("accepted tunnel_pool %v with gateway %v", e.pool, e.gateway)
		}
	})
}

func TestEnrollmentAnswerCarriesTheTunnelPool(t *testing.T) {
	r := goodAnswer(t)
	r.TunnelPool = "10.52.8.9/24"
	e, err := checkEnrollment(&r, "L1", "s1")
	if err != nil || e.pool.String() != "10.52.8.0/24" {
		t.Fatalf("tunnel_pool 10.52.8.9/24: pool %v, %v; want 10.52.8.0/24", e.pool, err)
	}
	r.TunnelPool = ""
	if e, err := checkEnrollment(&r, "L1", "s1"); err != nil || e.pool.IsValid() {
		t.Fatalf("no tunnel_pool (an older lender or borrower): pool %v, %v; want none, accepted", e.pool, err)
	}
}

func TestEnrollmentAnswerRefusesAPoolThatWouldCutTheTunnel(t *testing.T) {
	for pool, want := range map[string]string{
		"10.50.0.0/16": "holds the gateway (10.50.1.1)", // the gateway is 10.50.1.1
		"0.0.0.0/0":    "holds the gateway",
		"fd00::/64":    "IPv4",
		"10.52.8.0":    "want an IPv4 prefix",
	} {
		r := goodAnswer(t)
		r.TunnelPool = pool
		if _, err := checkEnrollment(&r, "L1", "s1"); err == nil || !strings.Contains(err.Error(), "tunnel_pool") || !strings.Contains(err.Error(), want) {
			t.Errorf("tunnel_pool %q: %v, want a refusal naming tunnel_pool and %q", pool, err, want)
		}
	}
}

func TestURLAddrIsTheLendersAddress(t *testing.T) {
	for u, want := range map[string]string{"https://10.51.0.1:8443/": "10.51.0.1", "https://[fd00::1]/": "fd00::1", "https://lender.example/": "invalid IP", "%": "invalid IP"} {
		if got := urlAddr(u).String(); got != want {
			t.Errorf("urlAddr(%q) = %s, want %s", u, got, want)
		}
	}
}
