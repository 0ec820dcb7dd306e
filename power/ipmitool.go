package power

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
)

// IPMITool drives a BMC through the ipmitool command (IPMI over LAN). The
// password reaches ipmitool through its IPMI_PASSWORD environment variable
// (-E), never through argv, where any local user could read it.
type IPMITool struct {
	Path, Interface, Host, Port, User string
	password                          string
	log                               *slog.Logger
}

func newIPMITool(o *options, log *slog.Logger) (*IPMITool, error) {
	host, err := o.required("host")
	if err != nil {
		return nil, err
	}
	user, err := o.required("user")
	if err != nil {
		return nil, err
	}
	pw, err := o.secret(true)
	if err != nil {
		return nil, err
	}
	d := &IPMITool{
		Path: o.get("path", "ipmitool"), Interface: o.get("interface", "lanplus"),
		Host: host, Port: o.get("port", ""), User: user, password: pw, log: log,
	}
	for _, s := range []struct{ k, v string }{{"host", host}, {"user", user}, {"interface", d.Interface}, {"port", d.Port}} {
		if strings.HasPrefix(s.v, "-") {
			return nil, o.errorf(s.k, "%q starts with '-'", s.v)
		}
	}
	return d, nil
}

func (d *IPMITool) On(ctx context.Context) error    { return d.power(ctx, "on") }
func (d *IPMITool) Off(ctx context.Context) error   { return d.power(ctx, "off") }
func (d *IPMITool) Reset(ctx context.Context) error { return d.power(ctx, "reset") }

// Status parses "Chassis Power is on|off".
func (d *IPMITool) Status(ctx context.Context) (State, error) {
	out, err := d.run(ctx, "status")
	if err != nil {
		return StateUnknown, err
	}
	s := strings.ToLower(strings.TrimSpace(out))
	switch {
	case strings.HasSuffix(s, " is on"):
		return StateOn, nil
	case strings.HasSuffix(s, " is off"):
		return StateOff, nil
	}
	return StateUnknown, &Error{Driver: "ipmitool", Op: "status", Err: fmt.Errorf("host %s: unexpected answer %q", d.Host, firstLine(out))}
}

func (d *IPMITool) power(ctx context.Context, verb string) error {
	_, err := d.run(ctx, verb)
	return err
}

func (d *IPMITool) args(verb string) []string {
	a := []string{"-I", d.Interface, "-H", d.Host}
	if d.Port != "" {
		a = append(a, "-p", d.Port)
	}
	return append(a, "-U", d.User, "-E", "chassis", "power", verb)
}

func (d *IPMITool) run(ctx context.Context, verb string) (string, error) {
	cmd := exec.CommandContext(ctx, d.Path, d.args(verb)...)
	cmd.Env = append(os.Environ(), "IPMI_PASSWORD="+d.password)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limited{w: &stdout, n: 64 << 10}, &limited{w: &stderr, n: 4 << 10}
	d.log.Info("power", "driver", "ipmitool", "host", d.Host, "op", verb)
	if err := cmd.Run(); err != nil {
		return "", &Error{Driver: "ipmitool", Op: verb, Err: fmt.Errorf("host %s: %s: %w: %s", d.Host, d.Path, err, firstLine(stderr.String()))}
	}
	return stdout.String(), nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// limited keeps at most n bytes and drops the rest without failing the
// writer, so a chatty child cannot grow our memory.
type limited struct {
	w interface{ Write([]byte) (int, error) }
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	k := min(len(p), l.n)
	if k > 0 {
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
