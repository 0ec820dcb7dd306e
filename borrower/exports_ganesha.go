package borrower

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"ferry/internal/atomicfile"
)

// ganeshaExports is nfs-ganesha: ferry's exports are one generated file
// that ganesha's configuration includes (%include "FILE"), replaced
// atomically, and ganesha rereads its exports on SIGHUP (nfs-ganesha 2.8
// and later add, update and remove exports that way: "reread_exports";
// Debian 12 ships 4.3). The file holds nothing but ferry's exports, so
// rewriting it whole from the store removes stale ones too.
type ganeshaExports struct {
	file, pidFile string
	lock          *os.File // flock held for the process's life: one borrower per file
	mu            sync.Mutex
	applied       string // the content ganesha was last told to read; "" after a start
}

func (g *ganeshaExports) Set(ctx context.Context, want []Export) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	text := ganeshaConf(want)
	old, err := os.ReadFile(g.file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("ganesha exports %s: %w", g.file, err)
	}
	if string(old) != text {
		if err := atomicfile.Write(g.file, []byte(text), 0o644); err != nil {
			return fmt.Errorf("ganesha exports: %w", err)
		}
	}
	// A borrower that restarts signals once even if the file is as it
	// was: the previous one may have died between the write and the signal.
	if g.applied == text {
		return nil
	}
	if err := g.reload(); err != nil {
		return err
	}
	g.applied = text
	return nil
}

// reload sends SIGHUP to the ganesha.nfsd whose pid is in pidFile; a pid
// file naming another program (stale after a reboot) is an error, not a
// signal to whatever holds that pid now.
func (g *ganeshaExports) reload() error {
	data, err := os.ReadFile(g.pidFile)
	if err != nil {
		return fmt.Errorf("ganesha pid file: %w (is ganesha.nfsd running?)", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("ganesha pid file %s: %.40q is not a pid", g.pidFile, data)
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return fmt.Errorf("ganesha pid file %s: pid %d: %w (ganesha.nfsd not running?)", g.pidFile, pid, err)
	}
	if c := strings.TrimSpace(string(comm)); c != "ganesha.nfsd" {
		return fmt.Errorf("ganesha pid file %s: pid %d is %q, not ganesha.nfsd", g.pidFile, pid, c)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("ganesha pid %d: SIGHUP: %w", pid, err)
	}
	return nil
}

// ganeshaConf renders the exports, sorted by id, each reachable by its
// one client alone: the export's own Access_Type is None, its CLIENT
// block grants read-write to the server's tunnel address, and root stays
// root only there (a lent server's root must own its root file system).
func ganeshaConf(want []Export) string {
	want = append([]Export(nil), want...)
	sort.Slice(want, func(i, j int) bool { return want[i].ID < want[j].ID })
	var b bytes.Buffer
	b.WriteString("# ferry: one export per lent server, written by ferry borrower; do not edit\n")
	for _, e := range want {
		fmt.Fprintf(&b, "EXPORT {\n\tExport_Id = %d;\n\tPath = \"%s\";\n\tPseudo = \"%s\";\n", e.ID, e.Path, e.Pseudo)
		b.WriteString("\tAccess_Type = None;\n\tSquash = Root_Squash;\n\tSecType = sys;\n\tProtocols = 4;\n\tTransports = TCP;\n\tFSAL { Name = VFS; }\n")
		fmt.Fprintf(&b, "\tCLIENT { Clients = %s; Access_Type = RW; Squash = No_Root_Squash; }\n}\n", e.Client)
	}
	return b.String()
}

// ownFile takes an exclusive flock on path (created 0600) and keeps it
// until the process ends; another process holding it is an error that
// says so.
func ownFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if err == unix.EWOULDBLOCK {
			return nil, fmt.Errorf("%s is held by another borrower: each needs its own exports file (and its own tunnel_pool and export ids)", path)
		}
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	return f, nil
}
