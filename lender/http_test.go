package lender

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"ferry/api"
)

func TestMetricsCountLeasesEnrollmentsAndRefusals(t *testing.T) {
	f := newFixture(t, 1)
	_, b := leaseAndBoot(t, f)
	if _, err := enroll(f, b, b.MAC, b.LeaseID+"/"+b.ServerID, t); err != nil {
		t.Fatal(err)
	}
	enroll(f, b, b.MAC, b.LeaseID+"/"+b.ServerID, t) // reused with another key: a conflict
	srv := httptest.NewServer(f.m.AgentHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + api.PathMetric)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"ferry_lender_leases_active 1", "ferry_lender_enrollments_total 1",
		`ferry_lender_enrollment_failures_total{reason="conflict"} 1`, `ferry_lender_boot_conflicts_total{reason="second-enrollment"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

func TestPhaseReportWithoutClientCertIsRefused(t *testing.T) {
	f := newFixture(t, 1)
	srv := httptest.NewServer(f.m.AgentHandler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+api.PathPhase, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("phase report without a certificate: %s, want 401", resp.Status)
	}
}
