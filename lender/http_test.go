package lender

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"ferry/api"
)

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
