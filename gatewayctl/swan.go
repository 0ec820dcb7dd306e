package gatewayctl

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/strongswan/govici/vici"

	"ferry/internal/atomicfile"
)

// Swan talks to a running charon through its VICI socket.
type Swan struct {
	sess *vici.Session
	log  *slog.Logger
}

// DialSwan connects to charon's VICI socket at socketPath.
func DialSwan(ctx context.Context, socketPath string, log *slog.Logger) (*Swan, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := vici.NewSession(vici.WithSocketPath(socketPath))
	if err != nil {
		return nil, fmt.Errorf("vici %s: %w", socketPath, err)
	}
	return &Swan{sess: s, log: log}, nil
}

// Close ends the VICI session.
func (s *Swan) Close() error { return s.sess.Close() }

// Load loads (or replaces) c's connection in charon.
func (s *Swan) Load(ctx context.Context, c Conn) error {
	if err := c.validate(); err != nil {
		return err
	}
	ca, pub, err := c.pemFiles()
	if err != nil {
		return err
	}
	m, err := c.tree(string(ca), string(pub)).message()
	if err != nil {
		return err
	}
	if c.VIP.IsValid() {
		// The pool first: a conn naming a pool charon lacks would hand
		// out nothing, and the server could not mount its root.
		if err := s.LoadPool(ctx, c.Name(), netip.PrefixFrom(c.VIP, 32)); err != nil {
			return err
		}
	}
	in := vici.NewMessage()
	if err := in.Set(c.Name(), m); err != nil {
		return err
	}
	if err := s.call(ctx, "load-conn", in); err != nil {
		return fmt.Errorf("load-conn %s: %w", c.Name(), err)
	}
	s.log.Info("strongswan conn loaded", "conn", c.Name(), "lease", c.Lease, "server", c.Server)
	return nil
}

// Unload removes the connection of lease's server and terminates its SAs,
// so a removed key loses its tunnel at once. Unloading a connection that is
// not there is not an error.
func (s *Swan) Unload(ctx context.Context, lease, server string) error {
	if err := validateIDs(lease, server); err != nil {
		return err
	}
	name := Conn{Lease: lease, Server: server}.Name()
	in := vici.NewMessage()
	in.Set("name", name)
	if err := s.call(ctx, "unload-conn", in); err != nil && !strings.Contains(err.Error(), "not found") {
		return fmt.Errorf("unload-conn %s: %w", name, err)
	}
	term := vici.NewMessage()
	term.Set("ike", name)
	term.Set("force", "yes")
	term.Set("timeout", "-1")
	if err := s.call(ctx, "terminate", term); err != nil && !strings.Contains(err.Error(), "no matching SAs") {
		return fmt.Errorf("terminate %s: %w", name, err)
	}
	pool := vici.NewMessage()
	pool.Set("name", name)
	if err := s.call(ctx, "unload-pool", pool); err != nil && !strings.Contains(err.Error(), "not found") {
		return fmt.Errorf("unload-pool %s: %w", name, err)
	}
	s.log.Info("strongswan conn unloaded", "conn", name, "lease", lease, "server", server)
	return nil
}

// Conns lists the names of the connections charon has loaded.
func (s *Swan) Conns(ctx context.Context) ([]string, error) {
	out, err := s.sess.Call(ctx, "get-conns", nil)
	if err != nil {
		return nil, fmt.Errorf("get-conns: %w", err)
	}
	names, _ := out.Get("conns").([]string)
	return names, nil
}

// call runs a command and turns a success=no reply into an error.
func (s *Swan) call(ctx context.Context, cmd string, in *vici.Message) error {
	out, err := s.sess.Call(ctx, cmd, in)
	if err != nil {
		return err
	}
	if out != nil && out.Get("success") == "no" {
		return fmt.Errorf("%v", out.Get("errmsg"))
	}
	return nil
}

// WriteSnippet writes c as a swanctl.conf snippet, dir/NAME.conf, one
// setting a line, with the CA certificate and public key beside it
// (NAME.ca.pem, NAME.pub.pem) and named by absolute path. An operator
// includes it from swanctl.conf or loads it with
// `swanctl --load-conns --file dir/NAME.conf`. It returns the .conf path.
func WriteSnippet(dir string, c Conn) (string, error) {
	if err := c.validate(); err != nil {
		return "", err
	}
	ca, pub, err := c.pemFiles()
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	base := filepath.Join(abs, c.Name())
	if err := checkValue(base); err != nil {
		return "", fmt.Errorf("snippet directory %s: %w", dir, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# ferry: lease %s, server %s\nconnections {\n", c.Lease, c.Server)
	c.tree(base+".ca.pem", base+".pub.pem").writeConf(&b, 1)
	b.WriteString("}\n")
	if c.VIP.IsValid() {
		b.WriteString("pools {\n")
		sect(c.Name(), set("addrs", netip.PrefixFrom(c.VIP, 32).String())).writeConf(&b, 1)
		b.WriteString("}\n")
	}
	for _, f := range []struct {
		p    string
		data []byte
	}{{base + ".ca.pem", ca}, {base + ".pub.pem", pub}, {base + ".conf", []byte(b.String())}} {
		if f.data == nil {
			continue // no public key: the conn names the server's identity
		}
		if err := atomicfile.Write(f.p, f.data, 0o644); err != nil {
			return "", fmt.Errorf("snippet: %w", err)
		}
	}
	return base + ".conf", nil
}

// RemoveSnippet deletes what WriteSnippet wrote for lease's server.
func RemoveSnippet(dir, lease, server string) error {
	if err := validateIDs(lease, server); err != nil {
		return err
	}
	base := filepath.Join(dir, Conn{Lease: lease, Server: server}.Name())
	for _, ext := range []string{".conf", ".ca.pem", ".pub.pem"} {
		if err := os.Remove(base + ext); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("snippet: %w", err)
		}
	}
	return nil
}
