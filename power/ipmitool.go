package power

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// IPMITool drives a BMC through the ipmitool command (IPMI over LAN). The
// password reaches ipmitool through its IPMI_PASSWORD environment variable
// (-E), never through argv, where any local user could read it.
//
// On sets a one-time network boot first (chassis bootdev pxe, with
// options=efiboot for UEFI firmware), then powers on; On and Off read the
// power state back until the BMC reports what was asked.
type IPMITool struct {
	Path, Interface, Host, Port, User string
	// Cipher is ipmitool's -C (the RMCP+ cipher suite ID); "" lets
	// ipmitool discover the best suite, which costs a BMC that cannot
	// list its suites (ipmi_sim) a 10 s timeout on every call.
	Cipher string
	// BootDev is what On sets for the next boot: "pxe" or "" (leave the
	// boot order alone, for sites where the network boots first anyway).
	BootDev string
	// EFI asks the BMC for a UEFI boot of BootDev (options=efiboot).
	EFI      bool
	Poll     time.Duration // between reads of the power state (default 1 s)
	password string
	log      *slog.Logger
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
		Host: host, Port: o.get("port", ""), User: user, password: pw, log: log, Poll: time.Second,
		Cipher: o.get("cipher", ""),
	}
	if c := d.Cipher; c != "" {
		if n, err := strconv.Atoi(c); err != nil || n < 0 || n > 255 || strconv.Itoa(n) != c {
			return nil, o.errorf("cipher", "%q is not a cipher suite ID (0-255)", c)
		}
	}
	switch v := o.get("bootdev", "pxe"); v {
	case "pxe":
		d.BootDev = v
	case "none":
	default:
		return nil, o.errorf("bootdev", "%q is not pxe or none", v)
	}
	switch v := o.get("firmware", "bios"); v {
	case "bios":
	case "uefi":
		d.EFI = true
	default:
		return nil, o.errorf("firmware", "%q is not bios or uefi", v)
	}
	for _, s := range []struct{ k, v string }{{"host", host}, {"user", user}, {"interface", d.Interface}, {"port", d.Port}} {
		if strings.HasPrefix(s.v, "-") {
			return nil, o.errorf(s.k, "%q starts with '-'", s.v)
		}
	}
	return d, nil
}

// On sets the one-time boot device, powers on and waits until the BMC
// reports the chassis on.
func (d *IPMITool) On(ctx context.Context) error {
	if d.BootDev != "" {
		a := []string{"chassis", "bootdev", d.BootDev}
		if d.EFI {
			a = append(a, "options=efiboot")
		}
		if _, err := d.run(ctx, "on", a...); err != nil {
			return err
		}
	}
	if _, err := d.run(ctx, "on", "chassis", "power", "on"); err != nil {
		return err
	}
	return confirm(ctx, "ipmitool", "on", d.Status, StateOn, d.Poll)
}

// Off powers off hard and waits until the BMC reports the chassis off.
func (d *IPMITool) Off(ctx context.Context) error {
	if _, err := d.run(ctx, "off", "chassis", "power", "off"); err != nil {
		return err
	}
	return confirm(ctx, "ipmitool", "off", d.Status, StateOff, d.Poll)
}

// Reset power-cycles: off, then on after the BMC's pause of at least a
// second, so the server starts from its firmware with a clean chassis
// (IPMI's "reset" is a warm reset line some boards do not wire).
func (d *IPMITool) Reset(ctx context.Context) error {
	_, err := d.run(ctx, "reset", "chassis", "power", "cycle")
	return err
}

// Status parses "Chassis Power is on|off".
func (d *IPMITool) Status(ctx context.Context) (State, error) {
	out, err := d.run(ctx, "status", "chassis", "power", "status")
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

func (d *IPMITool) args(cmd []string) []string {
	a := []string{"-I", d.Interface, "-H", d.Host}
	if d.Port != "" {
		a = append(a, "-p", d.Port)
	}
	if d.Cipher != "" {
		a = append(a, "-C", d.Cipher)
	}
	return append(append(a, "-U", d.User, "-E"), cmd...)
}

// run runs one ipmitool command for the driver operation op.
func (d *IPMITool) run(ctx context.Context, op string, command ...string) (string, error) {
	cmd := exec.CommandContext(ctx, d.Path, d.args(command)...)
	cmd.Env = append(os.Environ(), "IPMI_PASSWORD="+d.password)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limited{w: &stdout, n: 64 << 10}, &limited{w: &stderr, n: 4 << 10}
	what := strings.Join(command, " ")
	d.log.Info("power", "driver", "ipmitool", "host", d.Host, "op", op, "command", what)
	if err := cmd.Run(); err != nil {
		return "", &Error{Driver: "ipmitool", Op: op, Err: fmt.Errorf("host %s: %s %s: %w: %s", d.Host, d.Path, what, err, lastLine(stderr.String()))}
	}
	return stdout.String(), nil
}

// lastLine is ipmitool's error: it prints warnings ("Unable to Get
// Channel Cipher Suites") before the line that says why it failed.
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return firstLine(s)
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
