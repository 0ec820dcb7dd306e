package redfishlab

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// machine is an in-memory Machine.
type machine struct {
	mu     sync.Mutex
	state  string
	resets []string
}

func (m *machine) PowerState(ctx context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state, nil
}

func (m *machine) Reset(ctx context.Context, typ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resets = append(m.resets, typ)
	m.state = map[string]string{"On": "On", "ForceRestart": "On", "PowerCycle": "On", "ForceOff": "Off", "GracefulShutdown": "Off"}[typ]
	return nil
}

func newTestService(t *testing.T, cfg Config) (*Service, *machine, *httptest.Server) {
	m := &machine{state: "Off"}
	cfg.User, cfg.Password, cfg.Machine = "admin", "pw", m
	s := New(cfg)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, m, srv
}

// call makes one request with the session token (or none) and decodes
// the JSON answer.
func call(t *testing.T, srv *httptest.Server, method, path, token string, hdr map[string]string, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %s: %d, not JSON: %q", method, path, resp.StatusCode, b)
		}
	}
	return resp, m
}

func messageID(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	info, _ := e["@Message.ExtendedInfo"].([]any)
	if len(info) == 0 {
		return ""
	}
	id, _ := info[0].(map[string]any)["MessageId"].(string)
	return id
}

func login(t *testing.T, srv *httptest.Server) (token, location string) {
	t.Helper()
	resp, _ := call(t, srv, "POST", "/redfish/v1/SessionService/Sessions", "", nil, `{"UserName":"admin","Password":"pw"}`)
	if resp.StatusCode != 201 || resp.Header.Get("X-Auth-Token") == "" || !strings.HasPrefix(resp.Header.Get("Location"), "/redfish/v1/SessionService/Sessions/") {
		t.Fatalf("login: %d token %q location %q", resp.StatusCode, resp.Header.Get("X-Auth-Token"), resp.Header.Get("Location"))
	}
	return resp.Header.Get("X-Auth-Token"), resp.Header.Get("Location")
}

func TestServiceRootIsOpenAndTheRestNeedsASession(t *testing.T) {
	s, _, srv := newTestService(t, Config{})
	resp, root := call(t, srv, "GET", "/redfish/v1/", "", nil, "")
	if resp.StatusCode != 200 || root["Links"].(map[string]any)["Sessions"].(map[string]any)["@odata.id"] != "/redfish/v1/SessionService/Sessions" ||
		resp.Header.Get("OData-Version") != "4.0" {
		t.Fatalf("service root: %d %v", resp.StatusCode, root)
	}
	if resp, m := call(t, srv, "GET", "/redfish/v1/Systems", "", nil, ""); resp.StatusCode != 401 || messageID(m) != "Base.1.8.NoValidSession" {
		t.Fatalf("no session: %d %v", resp.StatusCode, m)
	}
	if resp, _ := call(t, srv, "POST", "/redfish/v1/SessionService/Sessions", "", nil, `{"UserName":"admin","Password":"nope"}`); resp.StatusCode != 401 {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	tok, loc := login(t, srv)
	if resp, c := call(t, srv, "GET", "/redfish/v1/Systems", tok, nil, ""); resp.StatusCode != 200 || c["Members@odata.count"].(float64) != 1 {
		t.Fatalf("systems: %d %v", resp.StatusCode, c)
	}
	if resp, _ := call(t, srv, "DELETE", loc, tok, nil, ""); resp.StatusCode != 204 || s.Sessions() != 0 {
		t.Fatalf("logout: %d, %d sessions", resp.StatusCode, s.Sessions())
	}
	if resp, _ := call(t, srv, "GET", "/redfish/v1/Systems", tok, nil, ""); resp.StatusCode != 401 {
		t.Fatalf("deleted session still works: %d", resp.StatusCode)
	}
	if resp, m := call(t, srv, "GET", "/redfish/v1/Chassis", "", nil, ""); resp.StatusCode != 404 || messageID(m) != "Base.1.8.ResourceMissingAtURI" {
		t.Fatalf("unknown resource: %d %v", resp.StatusCode, m)
	}
}

func TestPatchBootWithETag(t *testing.T) {
	s, _, srv := newTestService(t, Config{RequireIfMatch: true})
	tok, _ := login(t, srv)
	resp, sys := call(t, srv, "GET", "/redfish/v1/Systems/1", tok, nil, "")
	etag := resp.Header.Get("ETag")
	if etag == "" || sys["@odata.etag"] != etag {
		t.Fatalf("ETag %q, @odata.etag %v", etag, sys["@odata.etag"])
	}
	boot := `{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once"}}`
	if resp, m := call(t, srv, "PATCH", "/redfish/v1/Systems/1", tok, nil, boot); resp.StatusCode != 428 {
		t.Fatalf("PATCH without If-Match: %d %v", resp.StatusCode, m)
	}
	if resp, m := call(t, srv, "PATCH", "/redfish/v1/Systems/1", tok, map[string]string{"If-Match": `W/"999"`}, boot); resp.StatusCode != 412 || messageID(m) != "Base.1.8.PreconditionFailed" {
		t.Fatalf("PATCH with a stale ETag: %d %v", resp.StatusCode, m)
	}
	for body, id := range map[string]string{
		`{"Boot":{"BootSourceOverrideTarget":"Floppy"}}`: "Base.1.8.PropertyValueNotInList",
		`{"Boot":{"BootNext":"0001"}}`:                   "Base.1.8.PropertyUnknown",
		`{"PowerState":"On"}`:                            "Base.1.8.PropertyNotWritable",
		`{"Boot":`:                                       "Base.1.8.MalformedJSON",
	} {
		if resp, m := call(t, srv, "PATCH", "/redfish/v1/Systems/1", tok, map[string]string{"If-Match": etag}, body); resp.StatusCode != 400 || messageID(m) != id {
			t.Errorf("PATCH %s: %d %s, want 400 %s", body, resp.StatusCode, messageID(m), id)
		}
	}
	resp, sys = call(t, srv, "PATCH", "/redfish/v1/Systems/1", tok, map[string]string{"If-Match": etag}, boot)
	b := sys["Boot"].(map[string]any)
	if resp.StatusCode != 200 || b["BootSourceOverrideTarget"] != "Pxe" || b["BootSourceOverrideEnabled"] != "Once" || resp.Header.Get("ETag") == etag {
		t.Fatalf("PATCH: %d %v, ETag %q (was %q)", resp.StatusCode, b, resp.Header.Get("ETag"), etag)
	}
	// The power-on consumes Once; the target stays.
	if resp, _ := call(t, srv, "POST", "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", tok, nil, `{"ResetType":"On"}`); resp.StatusCode != 204 {
		t.Fatalf("reset: %d", resp.StatusCode)
	}
	_, sys = call(t, srv, "GET", "/redfish/v1/Systems/1", tok, nil, "")
	b = sys["Boot"].(map[string]any)
	if sys["PowerState"] != "On" || b["BootSourceOverrideEnabled"] != "Disabled" || b["BootSourceOverrideTarget"] != "Pxe" {
		t.Fatalf("after power-on: %v %v", sys["PowerState"], b)
	}
	if got := s.Boots(); len(got) != 1 || got[0] != (Boot{Target: "Pxe", Enabled: "Once", Mode: "Legacy"}) {
		t.Fatalf("boots %+v", got)
	}
}

func TestResetTypes(t *testing.T) {
	_, m, srv := newTestService(t, Config{})
	tok, _ := login(t, srv)
	for body, want := range map[string]int{`{"ResetType":"Nmi"}`: 400, `{}`: 400, `{"ResetType":"ForceOff","Delay":3}`: 400, `{"ResetType":"ForceOff"}`: 204} {
		if resp, mm := call(t, srv, "POST", "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", tok, nil, body); resp.StatusCode != want {
			t.Errorf("%s: %d %v, want %d", body, resp.StatusCode, mm, want)
		}
	}
	if len(m.resets) != 1 || m.resets[0] != "ForceOff" {
		t.Fatalf("machine got %v", m.resets)
	}
}
