package keeper

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The control channel is a socket pair between B's PID 1 and the keeper,
// one command or event a line:
//
//	keeper -> pid 1   "tunnel up VIP PLANE" the first IKE SA is established; PLANE
//	                                        is the ESP data plane, kernel or user
//	keeper -> pid 1   "tunnel failed: WHY"  an attempt failed; the keeper retries
//	pid 1 -> keeper   "chroot DIR"          move into the new root, now
//	keeper -> pid 1   "chrooted DIR" or "error: WHY"
//
// PID 1 closes its end before it switches root; the keeper then stops
// reading and keeps running. Nothing on the channel is trusted beyond its
// shape: lines are bounded and unknown commands are answered with an error.
const maxControlLine = 4096

// serveControl answers PID 1's commands until it closes the channel.
func (k *Keeper) serveControl(ctx context.Context, c io.ReadWriter) {
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 0, 256), maxControlLine)
	for sc.Scan() && ctx.Err() == nil {
		fmt.Fprintln(c, k.command(sc.Text()))
	}
	k.log.Info("control channel closed", "err", sc.Err())
}

func (k *Keeper) command(line string) string {
	dir, err := parseChroot(line)
	if err != nil {
		return "error: " + err.Error()
	}
	// The supervisor takes hold of the root first: once PID 1 has the
	// answer, switch_root moves the root away from dir.
	if err := k.opt.Parent.Chroot(dir); err != nil {
		return "error: " + err.Error()
	}
	if err := chroot(dir); err != nil {
		return "error: " + err.Error()
	}
	k.log.Info("moved into the new root", "dir", dir)
	return "chrooted " + dir
}

// parseChroot reads "chroot DIR", the one command there is: DIR absolute,
// clean, without control characters.
func parseChroot(line string) (string, error) {
	cmd, dir, _ := strings.Cut(strings.TrimSpace(line), " ")
	if cmd != "chroot" {
		return "", fmt.Errorf("unknown command %.40q", cmd)
	}
	if !strings.HasPrefix(dir, "/") || filepath.Clean(dir) != dir {
		return "", fmt.Errorf("chroot %.80q: not an absolute, clean path", dir)
	}
	if strings.ContainsFunc(dir, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", fmt.Errorf("chroot %.80q: control character in the path", dir)
	}
	return dir, nil
}

// chroot moves the whole process (Go's threads share one fs context) into
// dir. Everything the keeper needs afterwards is in memory or already
// open: its binary stays mapped, the TUN and sockets stay open.
func chroot(dir string) error {
	if err := unix.Chroot(dir); err != nil {
		return fmt.Errorf("chroot(%q) = %w", dir, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir(\"/\") in %s = %w", dir, err)
	}
	return nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
