package vmlab

import (
	"bufio"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// The lines a stalled NetworkManager root printed (make check, 6 Dec
// 2026) must stop the wait for ready; the lines of a healthy boot must not.
func TestStallLinesMatch(t *testing.T) {
	for _, l := range []string{
		"[   56.573620] watchdog: BUG: soft lockup - CPU#0 stuck for 45s! [kworker/u4:5:230]",
		"[   32.064330] rcu: INFO: rcu_preempt self-detected stall on CPU",
		"[   32.064330] rcu: INFO: rcu_sched detected stalls on CPUs/tasks:",
	} {
		if !reStall.MatchString(l) {
			t.Errorf("not taken for a stall: %q", l)
		}
	}
	for _, l := range []string{
		"ferry-root: ready (systemd) networkmanager eth0 nm_state=unmanaged addr=10.50.0.100",
		"[    7.706158] systemd[1]: Failed to find module 'autofs4'",
	} {
		if reStall.MatchString(l) {
			t.Errorf("taken for a stall: %q", l)
		}
	}
}

// hmp speaks QMP as QEMU answers it: greeting, handshake, events before
// the answer; it returns the monitor's text and names the command that
// QEMU refused.
func TestHMPOverQMP(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(`{"QMP": {"version": {}, "capabilities": ["oob"]}}` + "\n"))
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				var m struct {
					Execute   string
					Arguments struct {
						CommandLine string `json:"command-line"`
					}
				}
				json.Unmarshal(sc.Bytes(), &m)
				switch {
				case m.Execute == "qmp_capabilities":
					c.Write([]byte(`{"return": {}}` + "\n"))
				case strings.HasPrefix(m.Arguments.CommandLine, "info registers"):
					got <- m.Arguments.CommandLine
					c.Write([]byte(`{"event": "RTC_CHANGE", "data": {}}` + "\n" + `{"return": "CPU#0\r\nRIP=ffffffff81000000\r\n"}` + "\n"))
				default:
					got <- m.Arguments.CommandLine
					c.Write([]byte(`{"error": {"class": "GenericError", "desc": "unknown key"}}` + "\n"))
				}
			}
			c.Close()
		}
	}()
	vm := &VM{QMP: sock}
	out, err := vm.hmp("info registers -a")
	if err != nil || !strings.Contains(out, "RIP=ffffffff81000000") {
		t.Fatalf("info registers: %q, %v", out, err)
	}
	if c := <-got; c != "info registers -a" {
		t.Errorf("QEMU got %q", c)
	}
	if _, err := vm.hmp("sendkey alt-sysrq-q"); err == nil || !strings.Contains(err.Error(), "sendkey alt-sysrq-q: unknown key") {
		t.Errorf("refused command: %v", err)
	}
}
