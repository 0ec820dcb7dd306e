package power

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeBMC is a Redfish endpoint with one system that checks every request
// the driver makes and records the resets.
type fakeBMC struct {
	t      *testing.T
	mu     sync.Mutex
	power  string
	resets []string
}

func (b *fakeBMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "bmc-pw" {
		http.Error(w, `{"error":"auth"}`, http.StatusUnauthorized)
		return
	}
	switch {
	case r.Method == "GET" && r.URL.Path == "/redfish/v1/Systems":
		w.Write([]byte(`{"Members":[{"@odata.id":"/redfish/v1/Systems/node7"}]}`))
	case r.Method == "GET" && r.URL.Path == "/redfish/v1/Systems/node7":
		json.NewEncoder(w).Encode(map[string]string{"PowerState": b.power})
	case r.Method == "POST" && r.URL.Path == "/redfish/v1/Systems/node7/Actions/ComputerSystem.Reset":
		b.reset(w, r)
	default:
		b.t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
	}
}

func (b *fakeBMC) reset(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		b.t.Errorf("reset Content-Type %q", ct)
	}
	var body struct{ ResetType string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		b.t.Errorf("reset body: %v", err)
	}
	b.resets = append(b.resets, body.ResetType)
	switch body.ResetType {
	case "On", "ForceRestart":
		b.power = "On"
	case "ForceOff":
		b.power = "Off"
	}
	w.WriteHeader(http.StatusNoContent)
}

func newFakeBMC(t *testing.T) (*fakeBMC, map[string]string) {
	bmc := &fakeBMC{t: t, power: "Off"}
	srv := httptest.NewTLSServer(bmc)
	t.Cleanup(srv.Close)
	t.Setenv("FERRY_TEST_BMC_PW", "bmc-pw")
	return bmc, map[string]string{"endpoint": srv.URL, "user": "admin", "password_env": "FERRY_TEST_BMC_PW", "insecure": "true"}
}

func TestRedfishResetTypesAndPowerState(t *testing.T) {
	bmc, opts := newFakeBMC(t)
	d, err := New("redfish", opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	steps := []struct {
		op   func(context.Context) error
		want State
	}{{d.On, StateOn}, {d.Off, StateOff}, {d.Reset, StateOn}}
	for i, s := range steps {
		if err := s.op(ctx); err != nil {
			t.Fatal(err)
		}
		if st, err := d.Status(ctx); err != nil || st != s.want {
			t.Fatalf("step %d: status %v, %v; want %v", i, st, err, s.want)
		}
	}
	if got := strings.Join(bmc.resets, ","); got != "On,ForceOff,ForceRestart" {
		t.Fatalf("ResetTypes %s", got)
	}
}

func TestRedfishRefusesUntrustedCertificateByDefault(t *testing.T) {
	_, opts := newFakeBMC(t)
	delete(opts, "insecure")
	d, _ := New("redfish", opts, nil)
	if err := d.On(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("self-signed BMC accepted without insecure=true: %v", err)
	}
}

func TestRedfishErrorNamesStatusAndPath(t *testing.T) {
	_, opts := newFakeBMC(t)
	t.Setenv("FERRY_TEST_BMC_PW", "wrong")
	d, _ := New("redfish", opts, nil)
	err := d.Off(context.Background())
	if err == nil || !strings.Contains(err.Error(), "GET /redfish/v1/Systems: 401") {
		t.Fatalf("err = %v", err)
	}
}

func TestRedfishRefusesOversizedAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"PowerState":"` + strings.Repeat("x", maxRedfishBody) + `"}`))
	}))
	defer srv.Close()
	d, _ := New("redfish", map[string]string{"endpoint": srv.URL, "system": "/redfish/v1/Systems/1"}, nil)
	if _, err := d.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v", err)
	}
}
