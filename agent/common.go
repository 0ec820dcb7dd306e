package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"ferry/disks"
	"ferry/kmod"
	"ferry/netcfg"
)

// State is what A hands to B inside the appended segment.
type State struct {
	Trace    string   `json:"trace"`
	IP       string   `json:"ip"`
	Settings Settings `json:"settings"`
	// Lease is set in managed mode; the identity is in TunnelDir.
	Lease *Lease `json:"lease,omitempty"`
}

func (a *Agent) carriedState() *State {
	ip, _ := a.cmd.Get("ip")
	return &State{Trace: a.trace, IP: ip, Settings: *a.settings, Lease: a.lease}
}

// disksReadOnly marks every local disk read-only as soon as the drivers
// that show them are loaded, before anything could write: the lent server's
// disk is the lender's, never the borrower's. Nothing before this phase
// opens a block device.
func (a *Agent) disksReadOnly(ctx context.Context) error {
	marked, err := disks.MarkAllReadOnly(a.log)
	if err != nil {
		return err
	}
	if len(marked) == 0 {
		a.con.printf("ferry: disks read-only: none found")
	} else {
		a.con.printf("ferry: disks read-only: %s", strings.Join(marked, " "))
	}
	return nil
}

// loadModules loads the kernel modules this image carries: A's own in
// /lib/modules, or in B those that A appended under ModuleDir.
func (a *Agent) loadModules(ctx context.Context) error {
	dir := ModuleDir
	if a.settings == nil {
		rel, err := kmod.Release()
		if err != nil {
			return err
		}
		dir = filepath.Join("/lib/modules", rel)
	}
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		a.log.Warn("no modules to load", "dir", dir)
		return nil
	}
	loaded, err := kmod.LoadAll(ctx, dir, a.log)
	if err != nil {
		return err
	}
	a.log.Info("modules loaded", "count", len(loaded))
	if dir == ModuleDir {
		// Loaded modules live in kernel memory: free the RAM the files hold.
		return os.RemoveAll(ModuleDir)
	}
	return nil
}

// networkUp configures the NIC from the kernel's ip= syntax (Debian kernels
// have no IP_PNP, so ferry does what ip= would). B reuses A's setting.
func (a *Agent) networkUp(ctx context.Context) error {
	spec, _ := a.cmd.Get("ip")
	if a.state != nil {
		spec = a.state.IP
	}
	if spec == "" {
		return fmt.Errorf("no ip= on the kernel command line")
	}
	cfg, err := netcfg.ParseIP(spec)
	if err != nil {
		return err
	}
	link, err := netcfg.Up(ctx, cfg, a.log)
	var noCarrier *netcfg.NoCarrierError
	if errors.As(err, &noCarrier) {
		// Some NICs report carrier late or never; the fetch that follows
		// fails with a clearer error if the link is really dead.
		a.log.Warn("no carrier yet, going on", "err", err)
	} else if err != nil {
		return err
	}
	a.mac = link.MAC.String()
	a.log.Info("network up", "link", link.String())
	return nil
}

// uptime is how long the kernel has been running: the boot phase's length.
func uptime() time.Duration {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f, err := strconv.ParseFloat(strings.Fields(string(b) + " 0")[0], 64)
	if err != nil {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}
