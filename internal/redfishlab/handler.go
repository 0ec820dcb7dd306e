package redfishlab

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// maxBody bounds a request body: a PATCH of Boot or a login is a few
// hundred bytes.
const maxBody = 64 << 10

// odata is a link to a resource.
type odata struct {
	ID string `json:"@odata.id"`
}

// Handler serves the service. Every answer is JSON with OData-Version 4.0.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	sys := s.systemPath()
	mux.HandleFunc("GET /redfish", s.versions)
	mux.HandleFunc("GET /redfish/{$}", s.versions)
	mux.HandleFunc("GET /redfish/v1", s.root)
	mux.HandleFunc("GET /redfish/v1/{$}", s.root)
	mux.HandleFunc("POST /redfish/v1/SessionService/Sessions", s.login)
	mux.HandleFunc("GET /redfish/v1/SessionService", s.auth(s.sessionService))
	mux.HandleFunc("GET /redfish/v1/SessionService/Sessions", s.auth(s.sessionList))
	mux.HandleFunc("GET /redfish/v1/SessionService/Sessions/{id}", s.auth(s.session))
	mux.HandleFunc("DELETE /redfish/v1/SessionService/Sessions/{id}", s.auth(s.logout))
	mux.HandleFunc("GET /redfish/v1/Systems", s.auth(s.systems))
	mux.HandleFunc("GET "+sys, s.auth(s.system))
	mux.HandleFunc("PATCH "+sys, s.auth(s.patchSystem))
	mux.HandleFunc("POST "+sys+"/Actions/ComputerSystem.Reset", s.auth(s.reset))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		w.Header().Set("OData-Version", "4.0")
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		mux.ServeHTTP(&notFound{ResponseWriter: w}, r)
	})
}

// notFound turns the mux's plain-text 404 and 405 into Redfish errors.
type notFound struct {
	http.ResponseWriter
	hijacked bool
}

func (n *notFound) WriteHeader(code int) {
	if (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) && n.Header().Get("Content-Type") != "application/json; charset=utf-8" {
		n.hijacked = true
		id := map[int]string{http.StatusNotFound: "ResourceMissingAtURI", http.StatusMethodNotAllowed: "OperationNotAllowed"}[code]
		writeError(n.ResponseWriter, code, id, http.StatusText(code))
		return
	}
	n.ResponseWriter.WriteHeader(code)
}

func (n *notFound) Write(b []byte) (int, error) {
	if n.hijacked {
		return len(b), nil
	}
	return n.ResponseWriter.Write(b)
}

func (s *Service) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="ferry redfishlab"`)
			writeError(w, http.StatusUnauthorized, "NoValidSession", "No valid session or credentials were given.")
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// writeError answers with the Redfish error body: a general error holding
// one message of the Base registry.
func writeError(w http.ResponseWriter, code int, messageID, text string, args ...string) {
	if args == nil {
		args = []string{}
	}
	writeJSON(w, code, map[string]any{"error": map[string]any{
		"code":    "Base.1.8.GeneralError",
		"message": "A general error has occurred. See ExtendedInfo for more information.",
		"@Message.ExtendedInfo": []any{map[string]any{
			"@odata.type": "#Message.v1_1_1.Message", "MessageId": "Base.1.8." + messageID,
			"Message": text, "MessageArgs": args, "Severity": "Warning", "MessageSeverity": "Warning",
			"Resolution": "Correct the request and resubmit it."}},
	}})
}

func (s *Service) versions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"v1": "/redfish/v1/"})
}

func (s *Service) root(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot", "@odata.id": "/redfish/v1/",
		"Id": "RootService", "Name": "Root Service", "RedfishVersion": "1.6.0", "UUID": s.uuid,
		"Systems":        odata{"/redfish/v1/Systems"},
		"SessionService": odata{"/redfish/v1/SessionService"},
		"Links":          map[string]any{"Sessions": odata{"/redfish/v1/SessionService/Sessions"}},
	})
}

func (s *Service) sessionService(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.type": "#SessionService.v1_1_8.SessionService", "@odata.id": "/redfish/v1/SessionService",
		"Id": "SessionService", "Name": "Session Service", "ServiceEnabled": true, "SessionTimeout": 600,
		"Status":   map[string]string{"State": "Enabled", "Health": "OK"},
		"Sessions": odata{"/redfish/v1/SessionService/Sessions"},
	})
}

func sessionPath(id string) string { return "/redfish/v1/SessionService/Sessions/" + id }

func (s *Service) login(w http.ResponseWriter, r *http.Request) {
	var c struct{ UserName, Password string }
	if err := decode(r, &c); err != nil {
		writeError(w, http.StatusBadRequest, "MalformedJSON", "The request body cannot be parsed: "+err.Error())
		return
	}
	if c.UserName == "" || c.Password == "" {
		writeError(w, http.StatusBadRequest, "PropertyMissing", "UserName and Password are required.", "UserName")
		return
	}
	if !s.credentials(c.UserName, c.Password) {
		writeError(w, http.StatusUnauthorized, "NoValidSession", "The credentials are not valid.")
		return
	}
	id, tok := randomHex(8), randomHex(24)
	s.mu.Lock()
	s.sessions[id] = tok
	s.mu.Unlock()
	w.Header().Set("Location", sessionPath(id))
	w.Header().Set("X-Auth-Token", tok)
	writeJSON(w, http.StatusCreated, s.sessionBody(id))
}

func (s *Service) sessionBody(id string) map[string]any {
	return map[string]any{"@odata.type": "#Session.v1_3_0.Session", "@odata.id": sessionPath(id),
		"Id": id, "Name": "User Session", "UserName": s.cfg.User}
}

func (s *Service) sessionList(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.sessions))
	for id := range s.sessions {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	slices.Sort(ids)
	writeJSON(w, http.StatusOK, collection("#SessionCollection.SessionCollection", "/redfish/v1/SessionService/Sessions",
		"Session Collection", ids, sessionPath))
}

func (s *Service) session(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	_, ok := s.sessions[id]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "ResourceMissingAtURI", "No session "+id+".", sessionPath(id))
		return
	}
	writeJSON(w, http.StatusOK, s.sessionBody(id))
}

func (s *Service) logout(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	_, ok := s.sessions[id]
	delete(s.sessions, id)
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "ResourceMissingAtURI", "No session "+id+".", sessionPath(id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func collection(typ, id, name string, members []string, path func(string) string) map[string]any {
	m := make([]odata, len(members))
	for i, x := range members {
		m[i] = odata{path(x)}
	}
	return map[string]any{"@odata.type": typ, "@odata.id": id, "Name": name,
		"Members@odata.count": len(m), "Members": m}
}

func (s *Service) systems(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, collection("#ComputerSystemCollection.ComputerSystemCollection", "/redfish/v1/Systems",
		"Computer System Collection", []string{s.cfg.SystemID}, func(id string) string { return "/redfish/v1/Systems/" + id }))
}

func (s *Service) system(w http.ResponseWriter, r *http.Request) {
	st, err := s.cfg.Machine.PowerState(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "InternalError", "Reading the power state failed: "+err.Error())
		return
	}
	s.mu.Lock()
	body, etag := s.systemBody(st), s.etag()
	s.mu.Unlock()
	w.Header().Set("ETag", etag)
	writeJSON(w, http.StatusOK, body)
}

func (s *Service) systemBody(power string) map[string]any {
	sys := s.systemPath()
	return map[string]any{
		"@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem", "@odata.id": sys, "@odata.etag": s.etag(),
		"Id": s.cfg.SystemID, "Name": "ferry lab guest", "SystemType": "Virtual", "UUID": s.uuid,
		"Manufacturer": "QEMU", "Model": "Standard PC (i440FX + PIIX, 1996)",
		"PowerState": power,
		"Status":     map[string]string{"State": "Enabled", "Health": "OK"},
		"Boot": map[string]any{
			"BootSourceOverrideTarget":                          s.boot.Target,
			"BootSourceOverrideTarget@Redfish.AllowableValues":  BootTargets,
			"BootSourceOverrideEnabled":                         s.boot.Enabled,
			"BootSourceOverrideEnabled@Redfish.AllowableValues": BootEnabled,
			"BootSourceOverrideMode":                            s.boot.Mode,
			"BootSourceOverrideMode@Redfish.AllowableValues":    BootModes,
		},
		"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
			"target": sys + "/Actions/ComputerSystem.Reset", "ResetType@Redfish.AllowableValues": ResetTypes}},
	}
}

// decode reads one JSON object, refusing trailing data.
func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("data after the JSON object")
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// matches reports whether an If-Match header names etag ("*" names any).
func matches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || t == etag || "W/"+t == etag {
			return true
		}
	}
	return false
}
