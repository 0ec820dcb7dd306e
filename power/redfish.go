package power

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// maxRedfishBody bounds every response we read from a BMC.
const maxRedfishBody = 1 << 20

// Redfish drives a BMC through the DMTF Redfish API:
// ComputerSystem.Reset for On/Off/Reset, the system's PowerState for Status.
type Redfish struct {
	Endpoint *url.URL
	System   string // path of the ComputerSystem; found on first use if empty
	user, pw string
	client   *http.Client
	log      *slog.Logger
}

func newRedfish(o *options, log *slog.Logger) (*Redfish, error) {
	ep, err := o.required("endpoint")
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, o.errorf("endpoint", "%q is not an http(s)://host URL", ep)
	}
	sys := o.get("system", "")
	if sys != "" && !strings.HasPrefix(sys, "/redfish/v1/") {
		return nil, o.errorf("system", "%q does not start with /redfish/v1/", sys)
	}
	pw, err := o.secret(false)
	if err != nil {
		return nil, err
	}
	tc, err := redfishTLS(o)
	if err != nil {
		return nil, err
	}
	return &Redfish{
		Endpoint: u, System: sys, user: o.get("user", ""), pw: pw, log: log,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}},
	}, nil
}

func redfishTLS(o *options) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch v := o.get("insecure", "false"); v {
	case "true":
		tc.InsecureSkipVerify = true // BMCs often have self-signed certificates; the operator opted in
	case "false":
	default:
		return nil, o.errorf("insecure", "%q is not true or false", v)
	}
	if f := o.get("ca_file", ""); f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, o.errorf("ca_file", "%v", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, o.errorf("ca_file", "%s holds no PEM certificate", f)
		}
	}
	return tc, nil
}

func (r *Redfish) On(ctx context.Context) error    { return r.reset(ctx, "on", "On") }
func (r *Redfish) Off(ctx context.Context) error   { return r.reset(ctx, "off", "ForceOff") }
func (r *Redfish) Reset(ctx context.Context) error { return r.reset(ctx, "reset", "ForceRestart") }

// Status maps the system's PowerState (On, Off, PoweringOn, PoweringOff).
func (r *Redfish) Status(ctx context.Context) (State, error) {
	sys, err := r.system(ctx, "status")
	if err != nil {
		return StateUnknown, err
	}
	var s struct{ PowerState string }
	if err := r.do(ctx, "status", http.MethodGet, sys, nil, &s); err != nil {
		return StateUnknown, err
	}
	switch s.PowerState {
	case "On", "PoweringOff":
		return StateOn, nil
	case "Off", "PoweringOn":
		return StateOff, nil
	}
	return StateUnknown, r.errorf("status", "%s: PowerState %q is not On or Off", sys, s.PowerState)
}

func (r *Redfish) reset(ctx context.Context, op, typ string) error {
	sys, err := r.system(ctx, op)
	if err != nil {
		return err
	}
	r.log.Info("power", "driver", "redfish", "system", r.Endpoint.Host+sys, "op", op, "reset_type", typ)
	body := map[string]string{"ResetType": typ}
	return r.do(ctx, op, http.MethodPost, sys+"/Actions/ComputerSystem.Reset", body, nil)
}

// system finds the ComputerSystem when the option did not name it: the
// collection must hold exactly one, else the operator must choose.
func (r *Redfish) system(ctx context.Context, op string) (string, error) {
	if r.System != "" {
		return r.System, nil
	}
	var c struct {
		Members []struct {
			ID string `json:"@odata.id"`
		}
	}
	if err := r.do(ctx, op, http.MethodGet, "/redfish/v1/Systems", nil, &c); err != nil {
		return "", err
	}
	if len(c.Members) != 1 || !strings.HasPrefix(c.Members[0].ID, "/redfish/v1/Systems/") {
		return "", &Error{Driver: "redfish", Op: op, Option: "system",
			Err: fmt.Errorf("%s has %d systems: name one with the system option", r.Endpoint.Host, len(c.Members))}
	}
	r.System = c.Members[0].ID
	return r.System, nil
}

func (r *Redfish) do(ctx context.Context, op, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	u := r.Endpoint.JoinPath(path)
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return r.errorf(op, "%s %s: %v", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.user != "" {
		req.SetBasicAuth(r.user, r.pw)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return r.errorf(op, "%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxRedfishBody+1))
	if err != nil {
		return r.errorf(op, "%s %s: reading answer: %v", method, path, err)
	}
	if len(data) > maxRedfishBody {
		return r.errorf(op, "%s %s: answer larger than %d bytes", method, path, maxRedfishBody)
	}
	if resp.StatusCode/100 != 2 {
		return r.errorf(op, "%s %s: %s: %s", method, path, resp.Status, firstLine(string(data)))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return r.errorf(op, "%s %s: bad JSON: %v", method, path, err)
		}
	}
	return nil
}

func (r *Redfish) errorf(op, format string, a ...any) error {
	return &Error{Driver: "redfish", Op: op, Err: fmt.Errorf("%s: "+format, append([]any{r.Endpoint.Host}, a...)...)}
}
