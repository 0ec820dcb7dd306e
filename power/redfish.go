package power

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// maxRedfishBody bounds every response we read from a BMC.
const maxRedfishBody = 1 << 20

// Redfish drives a BMC through the DMTF Redfish API:
// ComputerSystem.Reset for On/Off/Reset, the system's PowerState for Status.
// Where the service offers sessions (the service root's Links.Sessions) each
// operation logs in once (the password crosses the wire once, in the POST
// body), uses the X-Auth-Token and deletes the session at the end; a
// service without them gets HTTP Basic on every request. On sets a
// one-time network boot first (Boot.BootSourceOverrideTarget=Pxe,
// BootSourceOverrideEnabled=Once, with If-Match of the system's ETag),
// and On and Off read PowerState back until it is what was asked. The
// session lives in the driver for one operation: one operation at a time
// (the lender makes a driver per action).
type Redfish struct {
	Endpoint *url.URL
	System   string // path of the ComputerSystem; found on first use if empty
	// BootDev is BootSourceOverrideTarget for On ("Pxe"), or "" to leave
	// the boot override alone.
	BootDev string
	// BootMode is BootSourceOverrideMode sent with it ("UEFI" for
	// firmware=uefi), or "" to leave the mode alone.
	BootMode string
	Poll     time.Duration // between reads of the power state (default 1 s)
	user, pw string
	client   *http.Client
	log      *slog.Logger
	// token and sessionURI are the session of the operation under way;
	// basic says the service offers none, so every request carries the
	// credentials.
	token, sessionURI string
	basic             bool
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
	r := &Redfish{
		Endpoint: u, System: sys, user: o.get("user", ""), pw: pw, log: log, Poll: time.Second,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}},
	}
	switch v := o.get("bootdev", "pxe"); v {
	case "pxe":
		r.BootDev = "Pxe"
	case "none":
	default:
		return nil, o.errorf("bootdev", "%q is not pxe or none", v)
	}
	switch v := o.get("firmware", ""); v {
	case "":
	case "bios":
		r.BootMode = "Legacy"
	case "uefi":
		r.BootMode = "UEFI"
	default:
		return nil, o.errorf("firmware", "%q is not bios or uefi", v)
	}
	return r, nil
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

// On sets the one-time network boot, powers on and waits for PowerState On.
func (r *Redfish) On(ctx context.Context) error {
	return r.session(ctx, "on", func(sys string) error {
		if r.BootDev != "" {
			if err := r.setBoot(ctx, sys); err != nil {
				return err
			}
		}
		if err := r.reset(ctx, "on", sys, "On"); err != nil {
			return err
		}
		return confirm(ctx, "redfish", "on", func(ctx context.Context) (State, error) { return r.status(ctx, "on", sys) }, StateOn, r.Poll)
	})
}

// Off forces the power off and waits for PowerState Off.
func (r *Redfish) Off(ctx context.Context) error {
	return r.session(ctx, "off", func(sys string) error {
		if err := r.reset(ctx, "off", sys, "ForceOff"); err != nil {
			return err
		}
		return confirm(ctx, "redfish", "off", func(ctx context.Context) (State, error) { return r.status(ctx, "off", sys) }, StateOff, r.Poll)
	})
}

func (r *Redfish) Reset(ctx context.Context) error {
	return r.session(ctx, "reset", func(sys string) error { return r.reset(ctx, "reset", sys, "ForceRestart") })
}

// Status maps the system's PowerState (On, Off, PoweringOn, PoweringOff).
func (r *Redfish) Status(ctx context.Context) (State, error) {
	var st State
	err := r.session(ctx, "status", func(sys string) error {
		var err error
		st, err = r.status(ctx, "status", sys)
		return err
	})
	return st, err
}

func (r *Redfish) status(ctx context.Context, op, sys string) (State, error) {
	var s struct{ PowerState string }
	if _, err := r.do(ctx, op, http.MethodGet, sys, nil, nil, &s); err != nil {
		return StateUnknown, err
	}
	switch s.PowerState {
	case "On", "PoweringOff":
		return StateOn, nil
	case "Off", "PoweringOn":
		return StateOff, nil
	}
	return StateUnknown, r.errorf(op, "%s: PowerState %q is not On or Off", sys, s.PowerState)
}

// computerSystem is what the driver reads of a ComputerSystem.
type computerSystem struct {
	ETag string `json:"@odata.etag"`
	Boot struct {
		Targets []string `json:"BootSourceOverrideTarget@Redfish.AllowableValues"`
		Modes   []string `json:"BootSourceOverrideMode@Redfish.AllowableValues"`
	}
	Actions struct {
		Reset struct {
			Target string   `json:"target"`
			Types  []string `json:"ResetType@Redfish.AllowableValues"`
		} `json:"#ComputerSystem.Reset"`
	}
}

func (r *Redfish) get(ctx context.Context, op, sys string) (*computerSystem, error) {
	var cs computerSystem
	h, err := r.do(ctx, op, http.MethodGet, sys, nil, nil, &cs)
	if err != nil {
		return nil, err
	}
	if e := h.Get("ETag"); e != "" {
		cs.ETag = e // the header is the one If-Match is compared with
	}
	return &cs, nil
}

// setBoot PATCHes the one-time boot override with If-Match of the
// system's ETag, once more with a fresh ETag if the system changed between
// (412). Values the system does not allow are refused here, by name.
func (r *Redfish) setBoot(ctx context.Context, sys string) error {
	for try := 0; ; try++ {
		cs, err := r.get(ctx, "on", sys)
		if err != nil {
			return err
		}
		if l := cs.Boot.Targets; l != nil && !slices.Contains(l, r.BootDev) {
			return r.errorf("on", "%s: BootSourceOverrideTarget %s is not among the allowed %v", sys, r.BootDev, l)
		}
		boot := map[string]string{"BootSourceOverrideTarget": r.BootDev, "BootSourceOverrideEnabled": "Once"}
		if r.BootMode != "" {
			if l := cs.Boot.Modes; l != nil && !slices.Contains(l, r.BootMode) {
				return r.errorf("on", "%s: BootSourceOverrideMode %s is not among the allowed %v", sys, r.BootMode, l)
			}
			boot["BootSourceOverrideMode"] = r.BootMode
		}
		hdr := http.Header{}
		if cs.ETag != "" {
			hdr.Set("If-Match", cs.ETag)
		}
		r.log.Info("power", "driver", "redfish", "system", r.Endpoint.Host+sys, "op", "on", "boot_override", r.BootDev+" once", "mode", r.BootMode)
		_, err = r.do(ctx, "on", http.MethodPatch, sys, hdr, map[string]any{"Boot": boot}, nil)
		var se *statusError
		if err != nil && errors.As(err, &se) && se.code == http.StatusPreconditionFailed && try == 0 {
			continue
		}
		return err
	}
}

func (r *Redfish) reset(ctx context.Context, op, sys, typ string) error {
	cs, err := r.get(ctx, op, sys)
	if err != nil {
		return err
	}
	if l := cs.Actions.Reset.Types; l != nil && !slices.Contains(l, typ) {
		return r.errorf(op, "%s: ResetType %s is not among the allowed %v", sys, typ, l)
	}
	target := sys + "/Actions/ComputerSystem.Reset"
	if t := cs.Actions.Reset.Target; strings.HasPrefix(t, "/redfish/v1/") {
		target = t
	}
	r.log.Info("power", "driver", "redfish", "system", r.Endpoint.Host+sys, "op", op, "reset_type", typ)
	_, err = r.do(ctx, op, http.MethodPost, target, nil, map[string]string{"ResetType": typ}, nil)
	return err
}

// session runs fn with the ComputerSystem's path inside a session where
// the service offers one (and credentials were given), deleting the session
// afterwards: BMCs hold few, and a leaked one blocks the next login.
func (r *Redfish) session(ctx context.Context, op string, fn func(sys string) error) error {
	if r.user != "" {
		if err := r.login(ctx, op); err != nil {
			return err
		}
		defer r.logout(op)
	}
	sys, err := r.system(ctx, op)
	if err != nil {
		return err
	}
	return fn(sys)
}

// login opens a session if the service root links to its sessions.
func (r *Redfish) login(ctx context.Context, op string) error {
	var root struct {
		Links struct {
			Sessions struct {
				ID string `json:"@odata.id"`
			}
		}
	}
	if _, err := r.do(ctx, op, http.MethodGet, "/redfish/v1/", nil, nil, &root); err != nil {
		return err
	}
	uri := root.Links.Sessions.ID
	if !strings.HasPrefix(uri, "/redfish/v1/") {
		r.basic = true // no sessions offered: HTTP Basic on every request
		return nil
	}
	h, err := r.do(ctx, op, http.MethodPost, uri, nil, map[string]string{"UserName": r.user, "Password": r.pw}, nil)
	if err != nil {
		return err
	}
	tok, loc := h.Get("X-Auth-Token"), h.Get("Location")
	if tok == "" {
		return r.errorf(op, "POST %s: no X-Auth-Token in the answer", uri)
	}
	if u, err := url.Parse(loc); err == nil && strings.HasPrefix(u.Path, "/redfish/v1/") {
		r.sessionURI = u.Path
	}
	r.token = tok
	return nil
}

// logout deletes the session, bounded on its own: the operation's context
// may be what ended it.
func (r *Redfish) logout(op string) {
	defer func() { r.token, r.sessionURI, r.basic = "", "", false }()
	if r.token == "" {
		return
	}
	if r.sessionURI == "" {
		r.log.Warn("redfish: session without Location: left to expire", "host", r.Endpoint.Host)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.do(ctx, op, http.MethodDelete, r.sessionURI, nil, nil, nil); err != nil {
		r.log.Warn("redfish: session not deleted", "host", r.Endpoint.Host, "err", err)
	}
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
	if _, err := r.do(ctx, op, http.MethodGet, "/redfish/v1/Systems", nil, nil, &c); err != nil {
		return "", err
	}
	if len(c.Members) != 1 || !strings.HasPrefix(c.Members[0].ID, "/redfish/v1/Systems/") {
		return "", &Error{Driver: "redfish", Op: op, Option: "system",
			Err: fmt.Errorf("%s has %d systems: name one with the system option", r.Endpoint.Host, len(c.Members))}
	}
	r.System = c.Members[0].ID
	return r.System, nil
}

// statusError is an HTTP answer outside 2xx.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func (r *Redfish) do(ctx context.Context, op, method, path string, hdr http.Header, in, out any) (http.Header, error) {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	u := r.Endpoint.JoinPath(path)
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, r.errorf(op, "%s %s: %v", method, path, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-Version", "4.0")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case r.token != "":
		req.Header.Set("X-Auth-Token", r.token)
	case r.basic:
		req.SetBasicAuth(r.user, r.pw)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, r.errorf(op, "%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxRedfishBody+1))
	if err != nil {
		return nil, r.errorf(op, "%s %s: reading answer: %v", method, path, err)
	}
	if len(data) > maxRedfishBody {
		return nil, r.errorf(op, "%s %s: answer larger than %d bytes", method, path, maxRedfishBody)
	}
	if resp.StatusCode/100 != 2 {
		return nil, &Error{Driver: "redfish", Op: op, Err: &statusError{code: resp.StatusCode,
			msg: fmt.Sprintf("%s: %s %s: %s: %s", r.Endpoint.Host, method, path, resp.Status, redfishMessage(data))}}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, r.errorf(op, "%s %s: bad JSON: %v", method, path, err)
		}
	}
	return resp.Header, nil
}

// redfishMessage is the first extended message of a Redfish error body
// (the useful one: "The value X for the property Y is not in the list..."),
// else the body's first line.
func redfishMessage(data []byte) string {
	var e struct {
		Error struct {
			Message string
			Info    []struct{ MessageId, Message string } `json:"@Message.ExtendedInfo"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil {
		if len(e.Error.Info) > 0 {
			return firstLine(e.Error.Info[0].MessageId + ": " + e.Error.Info[0].Message)
		}
		if e.Error.Message != "" {
			return firstLine(e.Error.Message)
		}
	}
	return firstLine(string(data))
}

func (r *Redfish) errorf(op, format string, a ...any) error {
	return &Error{Driver: "redfish", Op: op, Err: fmt.Errorf("%s: "+format, append([]any{r.Endpoint.Host}, a...)...)}
}
