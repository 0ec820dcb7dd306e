package gatewayctl

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/strongswan/govici/vici"
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
