package vmlab

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// reStall is what a guest kernel prints when a CPU stops scheduling: a
// soft lockup or an RCU stall. The lines come at KERN_EMERG/KERN_ERR, but
// the registers and call traces after them come at the default level,
// which the lab's "quiet" keeps off the console; StallDump brings them.
var reStall = regexp.MustCompile(`watchdog: BUG: soft lockup - CPU#\d+ stuck|rcu: INFO: rcu_\w+ (?:self-)?detected stall`)

// StallDump records why a stalled guest is stuck, for the run's files:
// QEMU's view of every vCPU's registers (stall-registers.txt: the RIPs
// even when nothing in the guest can print), then, through the guest's
// PS/2 keyboard, SysRq 9 (console log level 9: the traces the watchdog
// prints from now on reach the console), SysRq l (a backtrace of every
// CPU, by NMI) and SysRq w (the blocked tasks). It needs
// sysrq_always_enabled on the guest's command line; the lab's A and B
// have it, and nokaslr, so that a RIP is the same address in every boot
// of the kernel (Debian's System.map is a placeholder: read it against
// the -dbg package or a healthy guest's /proc/kallsyms). It waits for the
// next watchdog report and returns what went wrong talking to QEMU.
func (vm *VM) StallDump() error {
	regs, err := vm.hmp("info registers -a")
	if err == nil {
		err = os.WriteFile(filepath.Join(filepath.Dir(vm.Console.Path), "stall-registers.txt"), []byte(regs), 0o644)
	}
	for _, k := range []string{"alt-sysrq-9", "alt-sysrq-l", "alt-sysrq-w"} {
		if _, e := vm.hmp("sendkey " + k); e != nil && err == nil {
			err = e
		}
		time.Sleep(3 * time.Second) // the serial console prints at 115200 baud under TCG
	}
	// The soft-lockup watchdog reports every 20-30 s; its next report
	// comes with the stuck CPU's registers and call trace.
	time.Sleep(35 * time.Second)
	return err
}

// hmp runs one human monitor command over QMP and returns its output.
func (vm *VM) hmp(cmd string) (string, error) {
	c, err := net.DialTimeout("unix", vm.QMP, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("QMP %s: %w", vm.QMP, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReaderSize(c, 1<<20)
	w := json.NewEncoder(c)
	var ret string
	for _, req := range []map[string]any{
		{"execute": "qmp_capabilities"},
		{"execute": "human-monitor-command", "arguments": map[string]any{"command-line": cmd}},
	} {
		if err := w.Encode(req); err != nil {
			return "", fmt.Errorf("QMP %s: %s: %w", vm.QMP, cmd, err)
		}
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return "", fmt.Errorf("QMP %s: %s: %w", vm.QMP, cmd, err)
			}
			var m struct {
				Return json.RawMessage        `json:"return"`
				Error  *struct{ Desc string } `json:"error"`
			}
			if json.Unmarshal(line, &m) != nil {
				continue
			}
			if m.Error != nil {
				return "", fmt.Errorf("QMP %s: %s: %s", vm.QMP, cmd, m.Error.Desc)
			}
			if m.Return != nil {
				json.Unmarshal(m.Return, &ret) // a string for human-monitor-command, {} for the handshake
				break
			}
		}
	}
	return strings.TrimSpace(ret), nil
}
