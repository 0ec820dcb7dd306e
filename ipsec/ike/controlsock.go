package ike

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

// ServeControl answers one-line commands on the unix socket at path
// (mode 0600): "status" returns the SAs as JSON, "down" deletes them and
// calls down (which ends the daemon). It returns when ctx ends.
func (d *Daemon) ServeControl(ctx context.Context, path string, down func()) error {
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("ike: status socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("ike: status socket: %w", err)
	}
	go func() { <-ctx.Done(); l.Close(); os.Remove(path) }()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("ike: status socket %s: %w", path, err)
		}
		d.control(ctx, c, down)
	}
}

func (d *Daemon) control(ctx context.Context, c net.Conn, down func()) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, 64)).ReadString('\n')
	if err != nil {
		return
	}
	switch strings.TrimSpace(line) {
	case "status":
		json.NewEncoder(c).Encode(d.Status())
	case "down":
		d.DeleteAll(ctx)
		io.WriteString(c, "ok\n")
		if down != nil {
			down()
		}
	default:
		io.WriteString(c, "error: unknown command (status, down)\n")
	}
}

// MaxControlAnswer bounds what Control reads: a status answer is about
// 1 KB per SA, so 64 MiB holds the 65,536 SAs a borrower accepts. (It was
// 1 MiB, which a gateway of about a thousand SAs outgrew: the borrower's
// image gate then read a truncated list and refused image B to everyone.)
const MaxControlAnswer = 64 << 20

// Control sends cmd to the daemon listening at path and returns its
// answer, refusing one over MaxControlAnswer bytes.
func Control(ctx context.Context, path, cmd string) ([]byte, error) {
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("ike: no daemon at %s: %w", path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(c, MaxControlAnswer+1))
	if err == nil && len(out) > MaxControlAnswer {
		return nil, fmt.Errorf("ike: %s answered %q with more than %d bytes", path, cmd, MaxControlAnswer)
	}
	if err == nil && strings.HasPrefix(string(out), "error:") {
		err = errors.New(strings.TrimSpace(string(out)))
	}
	return out, err
}
