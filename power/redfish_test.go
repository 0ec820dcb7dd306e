package power

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"ferry/internal/redfishlab"
)

// fakeMachine is the machine behind the lab Redfish service: Redfish
// power states, switched by the reset types, and the resets it got.
type fakeMachine struct {
	mu     sync.Mutex
	state  string
	resets []string
}

func (m *fakeMachine) PowerState(ctx context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state, nil
}

func (m *fakeMachine) Reset(ctx context.Context, typ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resets = append(m.resets, typ)
	switch typ {
	case "On", "ForceRestart", "PowerCycle":
		m.state = "On"
	case "ForceOff", "GracefulShutdown":
		m.state = "Off"
	}
	return nil
}

// newLabBMC serves redfishlab over TLS with a fake machine and returns the
// driver options, trusting the server's certificate through ca_file. A
// request with HTTP Basic credentials fails the test: the driver must
// use the session the service offers.
func newLabBMC(t *testing.T, cfg redfishlab.Config) (*redfishlab.Service, *fakeMachine, map[string]string) {
	m := &fakeMachine{state: "Off"}
	cfg.User, cfg.Password, cfg.Machine = "admin", "bmc-pw", m
	svc := redfishlab.New(cfg)
	h := svc.Handler()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := r.BasicAuth(); ok {
			t.Errorf("%s %s with HTTP Basic credentials though the service offers sessions", r.Method, r.URL.Path)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "bmc-ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	t.Setenv("FERRY_TEST_BMC_PW", "bmc-pw")
	return svc, m, map[string]string{"endpoint": srv.URL, "user": "admin", "password_env": "FERRY_TEST_BMC_PW", "ca_file": ca}
}

func TestRedfishResetTypesAndPowerState(t *testing.T) {
	svc, m, opts := newLabBMC(t, redfishlab.Config{})
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
	if got := strings.Join(m.resets, ","); got != "On,ForceOff,ForceRestart" {
		t.Fatalf("ResetTypes %s", got)
	}
	if n := svc.Sessions(); n != 0 {
		t.Fatalf("%d sessions left open", n)
	}
	logins, logouts := 0, 0
	for _, r := range svc.Requests() {
		if r == "POST /redfish/v1/SessionService/Sessions" {
			logins++
		}
		if strings.HasPrefix(r, "DELETE /redfish/v1/SessionService/Sessions/") {
			logouts++
		}
	}
	if logins != 6 || logouts != 6 {
		t.Fatalf("%d logins, %d logouts for 6 operations:\n%s", logins, logouts, strings.Join(svc.Requests(), "\n"))
	}
}

// On sets Pxe once (with the UEFI mode for firmware=uefi) under If-Match of
// the system's ETag before the power-on that consumes it.
func TestRedfishOnSetsOneTimeNetworkBoot(t *testing.T) {
	svc, _, opts := newLabBMC(t, redfishlab.Config{RequireIfMatch: true})
	opts["firmware"] = "uefi"
	d, err := New("redfish", opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.On(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []redfishlab.Boot{{Target: "Pxe", Enabled: "Once", Mode: "UEFI"}}
	if got := svc.Boots(); !slices.Equal(got, want) {
		t.Fatalf("power-on booted with %+v, want %+v", got, want)
	}
	if im := svc.IfMatch(); len(im) != 1 || im[0] != `W/"1"` {
		t.Fatalf("If-Match %q, want the ETag W/\"1\"", im)
	}
	opts["bootdev"] = "none"
	d, _ = New("redfish", opts, nil)
	if err := d.On(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(svc.IfMatch()); n != 1 {
		t.Fatalf("bootdev=none PATCHed Boot (%d PATCHes)", n)
	}
}

func TestRedfishRefusesUntrustedCertificateByDefault(t *testing.T) {
	_, _, opts := newLabBMC(t, redfishlab.Config{})
	delete(opts, "ca_file")
	d, _ := New("redfish", opts, nil)
	if err := d.On(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("self-signed BMC accepted without insecure=true: %v", err)
	}
}

func TestRedfishErrorNamesStatusPathAndMessage(t *testing.T) {
	_, _, opts := newLabBMC(t, redfishlab.Config{})
	t.Setenv("FERRY_TEST_BMC_PW", "wrong")
	d, _ := New("redfish", opts, nil)
	err := d.Off(context.Background())
	if err == nil || !strings.Contains(err.Error(), "POST /redfish/v1/SessionService/Sessions: 401 Unauthorized: Base.1.8.NoValidSession") {
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
