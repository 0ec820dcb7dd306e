package vmlab

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BMCGuest is the QEMU a lab BMC switches: no disk, no kernel, paused
// (-S) so it costs no CPU, with QEMU's external BMC interface wired to
// IPMIPort (ipmi-bmc-extern on an ISA BT interface) when that is set and a
// QMP socket for the test to look at. Power on starts the process, power
// off ends it: what the BMC reports is whether the guest really exists.
//
// Unlike QEMU (the lab's builder) it has no -no-reboot: a BMC's reset
// must reset the guest, not end QEMU.
type BMCGuest struct {
	Dir      string
	IPMIPort int // ipmi_sim's VM serial port (lan.conf "serial 15 ... codec VM"); 0: none
	// Daemonize: QEMU detaches once up (for ipmi_sim's chassis control,
	// which must not wait for it); else it stays the starter's child.
	Daemonize bool
}

// QMP is the guest's QMP socket; PidFile is where QEMU writes its pid.
func (g BMCGuest) QMP() string     { return filepath.Join(g.Dir, "qmp.sock") }
func (g BMCGuest) PidFile() string { return filepath.Join(g.Dir, "qemu.pid") }

// Argv is QEMU's command line; the pid file is how a daemonized guest is
// found.
func (g BMCGuest) Argv() []string {
	a := []string{"qemu-system-x86_64", "-name", "ferry-bmc-guest", "-machine", "pc", "-accel", "tcg", "-m", "64",
		"-nodefaults", "-display", "none", "-S", "-pidfile", g.PidFile(),
		"-qmp", "unix:" + g.QMP() + ",server=on,wait=off"}
	if g.Daemonize {
		a = append(a, "-daemonize")
	}
	if g.IPMIPort != 0 {
		a = append(a, "-chardev", "socket,id=ipmi0,host=127.0.0.1,port="+strconv.Itoa(g.IPMIPort)+",reconnect=10",
			"-device", "ipmi-bmc-extern,chardev=ipmi0,id=bmc0", "-device", "isa-ipmi-bt,bmc=bmc0")
	}
	return a
}

// Pid is the running guest's pid, or 0 when there is none.
func (g BMCGuest) Pid() int {
	b, err := os.ReadFile(g.PidFile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return 0
	}
	return pid
}

// End ends a guest left running (test cleanup).
func (g BMCGuest) End() {
	if g.Pid() != 0 {
		EndPidFile(g.PidFile())
	}
}

// freePort finds a free loopback port of network ("tcp" or "udp").
func freePort(t testing.TB, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// IPMISim is OpenIPMI's ipmi_sim as the guest's BMC: IPMI over LAN on
// 127.0.0.1:LANPort for ipmitool, QEMU's external BMC interface on a TCP
// port, and a chassis control program (lan.conf "chassis_control") that
// starts and ends the guest on power on/off/cycle and keeps the boot
// device the BMC was asked for (in BootFile).
type IPMISim struct {
	*Proc
	Guest    BMCGuest
	LANPort  int
	User     string
	PassFile string // the password, for ipmitool -f / the driver's password_file
	BootFile string
}

// StartIPMISim writes the simulator's configuration into dir and starts it.
func StartIPMISim(t testing.TB, dir string) *IPMISim {
	t.Helper()
	s := &IPMISim{Guest: BMCGuest{Dir: dir, IPMIPort: freePort(t, "tcp"), Daemonize: true}, LANPort: freePort(t, "udp"), User: "ferry",
		PassFile: filepath.Join(dir, "bmc-password"), BootFile: filepath.Join(dir, "boot")}
	pw := fmt.Sprintf("lab-%d", time.Now().UnixNano()%1e9)
	ctl := filepath.Join(dir, "chassis-control")
	files := map[string]string{
		s.PassFile: pw + "\n",
		// ipmi_sim_cmd(5): one BMC at IPMB 0x20, enabled.
		filepath.Join(dir, "bmc.emu"): "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n",
		// ipmi_lan(5). RMCP+ (lanplus) with the admin user; no anonymous user.
		filepath.Join(dir, "lan.conf"): fmt.Sprintf(`name "ferrylab"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    allowed_auths_callback md5
    allowed_auths_user md5
    allowed_auths_operator md5
    allowed_auths_admin md5
    guid a123456789abcdefa123456789abcdef
  endlan
  serial 15 127.0.0.1 %d codec VM
  chassis_control "%s"
  user 2 true "%s" "%s" admin 10 md5
`, s.LANPort, s.Guest.IPMIPort, ctl, s.User, pw),
		ctl: chassisControl(s.Guest, s.BootFile),
	}
	for p, body := range files {
		mode := os.FileMode(0o600)
		if p == ctl {
			mode = 0o700
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(dir, "sim-state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Guest.End) // registered first: runs after ipmi_sim has ended
	s.Proc = Start(t, "ipmi_sim", filepath.Join(dir, "ipmi_sim.log"), "ipmi_sim", "-c", filepath.Join(dir, "lan.conf"),
		"-f", filepath.Join(dir, "bmc.emu"), "-s", state, "-n")
	if !waitFor(10*time.Second, func() bool {
		out, _ := Run("ss", "-Hlun", fmt.Sprintf("sport = :%d", s.LANPort))
		return strings.TrimSpace(out) != "" || !s.Running()
	}) || !s.Running() {
		t.Fatalf("ipmi_sim did not listen on 127.0.0.1:%d: %s", s.LANPort, tailFile(s.Log, 1500))
	}
	return s
}

// chassisControl is the program ipmi_sim runs for chassis control
// (ipmi_sim_chassiscontrol's interface, without the device argument
// ipmi_sim 2.0.33 does not pass: get PARM... prints "parm:value"; set
// PARM VALUE... prints nothing on success).
// power 1 starts the guest, power 0 ends it (SIGTERM, then SIGKILL),
// reset 1 does both; boot keeps the device asked for.
func chassisControl(g BMCGuest, bootFile string) string {
	q := make([]string, len(g.Argv()))
	for i, a := range g.Argv() {
		q[i] = "'" + a + "'"
	}
	return `#!/bin/sh
pidfile='` + g.PidFile() + `'
bootfile='` + bootFile + `'
running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
start() { running || ` + strings.Join(q, " ") + ` </dev/null >/dev/null 2>&1; }
stop() {
	running || return 0
	pid=$(cat "$pidfile"); kill "$pid"
	for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
	kill -9 "$pid" 2>/dev/null; rm -f "$pidfile"; return 0
}
op=$1; shift
case $op in
get)
	for p in "$@"; do
		case $p in
		power) if running; then echo power:1; else echo power:0; fi;;
		boot) if [ -s "$bootfile" ]; then echo "boot:$(cat "$bootfile")"; else echo boot:default; fi;;
		*) echo "Invalid parameter: $p"; exit 1;;
		esac
	done;;
set)
	while [ $# -ge 2 ]; do
		case $1 in
		power) if [ "$2" = 1 ]; then start || { echo "guest did not start"; exit 1; }; else stop; fi;;
		reset) stop; start || { echo "guest did not start"; exit 1; };;
		boot) echo "$2" > "$bootfile";;
		identify) shift;;
		*) echo "Invalid parameter: $1"; exit 1;;
		esac
		shift 2
	done;;
*) echo "Unknown operation: $op"; exit 1;;
esac
`
}
