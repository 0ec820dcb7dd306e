package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"ferry/ipsec/ike"
	"ferry/keeper"
	"ferry/nfsroot"
)

// tunnelB starts the tunnel keeper in the initramfs, before the root is
// mounted through the tunnel, and waits until it reports the tunnel up.
// It re-opens IKEv2 with the certificate A enrolled, read from TunnelDir.
// From here on B's phases are reported to the lender (on the lender's
// network, as in A), the borrower sees them through the lease it reads.
func (a *Agent) tunnelB(ctx context.Context) error {
	id, err := ike.LoadState(TunnelDir)
	if err != nil {
		return err
	}
	plane, err := a.dataPlane()
	if err != nil {
		return err
	}
	ctl, err := a.startTunnelKeeper(plane)
	if err != nil {
		return err
	}
	a.keeperCtl = ctl
	vip, plane, err := waitTunnel(ctl, a.log)
	if err != nil {
		return err
	}
	a.con.printf("ferry: tunnel up gateway=%s vip=%s (keeper) via %s", id.Gateway, vip, plane.Describe())
	a.rep.connect(ctx, a.lease, tls.Certificate{Certificate: [][]byte{id.Certs[0].Raw}, PrivateKey: id.Key, Leaf: id.Certs[0]})
	return nil
}

// waitTunnel reads the keeper's events until the tunnel is up, for at
// most tunnelWait, and returns the virtual IP and the data plane the
// keeper reported; failed attempts are logged (the keeper retries).
func waitTunnel(ctl net.Conn, log *slog.Logger) (string, keeper.DataPlane, error) {
	deadline := time.Now().Add(tunnelWait)
	last := "no attempt finished"
	for time.Now().Before(deadline) {
		line, err := readLine(ctl, time.Until(deadline)+keeper.ConnectTimeout)
		if err != nil {
			return "", "", fmt.Errorf("keeper: waiting for the tunnel (%s): %w", last, err)
		}
		if up, ok := strings.CutPrefix(line, "tunnel up "); ok {
			return parseTunnelUp(up)
		}
		last = line
		log.Warn("keeper: tunnel attempt failed", "event", line)
	}
	return "", "", fmt.Errorf("keeper: tunnel not up within %s: %s", tunnelWait, last)
}

// parseTunnelUp reads the rest of the keeper's "tunnel up VIP PLANE".
func parseTunnelUp(s string) (string, keeper.DataPlane, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return "", "", fmt.Errorf("keeper event %q: want \"tunnel up VIP PLANE\"", "tunnel up "+s)
	}
	p, err := keeper.ParseDataPlane(f[1])
	if err != nil || p == keeper.DataPlaneAuto {
		return "", "", fmt.Errorf("keeper event %q: plane %q: want kernel or user", "tunnel up "+s, f[1])
	}
	return f[0], p, nil
}

// startTunnelKeeper runs "@ferry keeper" with the tunnel state and one end
// of a socket pair as its control channel (fd 3).
func (a *Agent) startTunnelKeeper(plane keeper.DataPlane) (net.Conn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair for the keeper: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "keeper-control"), os.NewFile(uintptr(fds[1]), "keeper-control")
	defer theirs.Close()
	cmd := exec.Command(BinPath, "keeper", "--trace", a.trace, "--listen", keeperListen,
		"--tunnel", TunnelDir, "--control-fd", "3", "--dataplane", string(plane))
	cmd.Args = append(cmd.Args, a.keeperDiskArgs()...)
	if a.lease != nil {
		// The keeper renews the one-time certificate at the lender when the
		// lease is extended: URL and CA pin come from A's appended state.
		cmd.Args = append(cmd.Args, "--lender", a.lease.LenderURL, "--lender-ca-pin", a.lease.CAPin)
	}
	cmd.Args[0] = "@ferry"
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = a.con.w, a.con.w
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		ours.Close()
		return nil, fmt.Errorf("start keeper %s: %w", BinPath, err)
	}
	a.log.Info("keeper started", "pid", cmd.Process.Pid)
	if err := nfsroot.SpareKeeper("/run", cmd.Process.Pid); err != nil {
		a.log.Warn("keeper not spared from a sysvinit root's sendsigs: it may be killed before the root is read-only", "err", err)
	}
	// The borrower's init inherits the keeper as its child.
	cmd.Process.Release()
	c, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		return nil, fmt.Errorf("keeper control channel: %w", err)
	}
	return c, nil
}

// keeperIntoRoot tells the running keeper to chroot into the mounted
// root, so that it does not depend on the initramfs, which switch_root
// deletes. The channel is closed afterwards: the keeper runs on alone.
func (a *Agent) keeperIntoRoot(ctx context.Context) error {
	defer a.keeperCtl.Close()
	if _, err := fmt.Fprintf(a.keeperCtl, "chroot %s\n", NewRoot); err != nil {
		return fmt.Errorf("keeper control: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		line, err := readLine(a.keeperCtl, time.Until(deadline))
		if err != nil {
			return fmt.Errorf("keeper: chroot %s: %w", NewRoot, err)
		}
		// A keeper its supervisor restarted before the chroot reports its
		// tunnel again: not the answer.
		if strings.HasPrefix(line, "tunnel ") {
			a.log.Info("keeper event while moving it into the root", "event", line)
			continue
		}
		if line != "chrooted "+NewRoot {
			return fmt.Errorf("keeper: chroot %s: %s", NewRoot, line)
		}
		return nil
	}
}

// readLine reads one line from the keeper within d, byte by byte so that
// nothing after the line is consumed.
func readLine(c net.Conn, d time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	var b strings.Builder
	var ch [1]byte
	for b.Len() < 4096 {
		if _, err := io.ReadFull(c, ch[:]); err != nil {
			return "", err
		}
		if ch[0] == '\n' {
			return b.String(), nil
		}
		b.WriteByte(ch[0])
	}
	return "", fmt.Errorf("line over 4096 bytes")
}
