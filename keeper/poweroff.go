package keeper

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// How the keeper asks the root's init to power off. systemd and busybox
// init each take a signal for "power off cleanly":
//
//	systemd      SIGRTMIN+4 (38, as glibc numbers real-time signals)
//	busybox init SIGUSR2 (the lab's root-init.sh traps it too)
//
// Every other init (sysvinit, runit, OpenRC's openrc-init, s6, dinit, ...)
// has its own signals, and the same one means different things: SIGUSR2
// makes sysvinit reopen /run/initctl and nothing more. What every one of
// them ships is a poweroff command that asks its own init in its own way.
// So "auto" (the default) decides when the request comes, from the
// program PID 1 runs then (/proc/1/exe): systemd gets SIGRTMIN+4, busybox
// SIGUSR2, anything else the root's own poweroff (PowerOffCommands, run
// without a shell or any input from the request, for at most
// CommandTimeout); a root without one gets SIGUSR2, and the answer says
// so. It cannot decide at start: in the initramfs PID 1 is still ferry's
// own agent.
const (
	SignalAuto = "auto"
	// SignalCommand always runs the root's poweroff, whatever PID 1 is.
	SignalCommand = "command"
	// sigRTMin is glibc's SIGRTMIN: the kernel's 32 plus the two that
	// glibc's threads library reserves. systemd counts from it.
	sigRTMin   = 34
	sigRTMax   = 64
	sigSystemd = syscall.Signal(sigRTMin + 4)
	sigBusybox = syscall.SIGUSR2
)

// PowerOffCommands are where the root's own power-off command is looked
// for, in this order, inside the root (the keeper is chrooted into it by
// the time a shutdown is asked).
var PowerOffCommands = []string{"/sbin/poweroff", "/usr/sbin/poweroff", "/bin/poweroff", "/usr/bin/poweroff"}

// CommandTimeout bounds the root's poweroff: each asks its init to go
// down and returns (sysvinit's through /run/initctl, runit's, OpenRC's,
// s6's and dinit's through their control sockets), and the borrower's
// request waits for the answer (10 s).
const CommandTimeout = 5 * time.Second

// PowerOff configures the power-off request to the root's init.
type PowerOff struct {
	// Signal is "auto", "command", a name (SIGUSR2, USR2, SIGRTMIN+4,
	// SIGTERM, ...) or a number; see ParsePowerOff.
	Signal string
	// InitPID is the process told; 1 unless a test says otherwise.
	InitPID int
	// Root is where PowerOffCommands are looked for: "/" (the keeper's
	// root is the borrower's) unless a test says otherwise.
	Root string
	// Timeout bounds the command; CommandTimeout when 0.
	Timeout time.Duration
}

// ParsePowerOff checks a --poweroff-signal setting: "auto", "command" or
// a signal as ParseSignal reads it.
func ParsePowerOff(s string) error {
	if s == SignalCommand {
		return nil
	}
	_, err := ParseSignal(s)
	return err
}

// signalNames are the signals an init may take as "power off".
func signalNames() map[string]syscall.Signal {
	return map[string]syscall.Signal{
		"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1,
		"USR2": syscall.SIGUSR2, "TERM": syscall.SIGTERM, "PWR": syscall.SIGPWR, "CONT": syscall.SIGCONT,
	}
}

// ParseSignal reads a power-off signal setting: "auto" (answered with
// 0), a name with or without "SIG", "RTMIN+N" (glibc numbering, as
// systemd documents its signals) or a number from 1 to 64.
func ParseSignal(s string) (syscall.Signal, error) {
	if s == "" || s == SignalAuto {
		return 0, nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if sig, ok := signalNames()[name]; ok {
		return sig, nil
	}
	n, isRT := 0, false
	var err error
	switch {
	case name == "RTMIN":
		n, isRT = sigRTMin, true
	case strings.HasPrefix(name, "RTMIN+"):
		n, err = strconv.Atoi(name[len("RTMIN+"):])
		n, isRT = n+sigRTMin, true
	default:
		n, err = strconv.Atoi(name)
	}
	if err != nil || n < 1 || n > sigRTMax || (isRT && n < sigRTMin) {
		return 0, fmt.Errorf("power-off signal %.40q: want auto, command, a signal name (SIGUSR2, SIGRTMIN+4) or a number 1-%d", s, sigRTMax)
	}
	if sig := syscall.Signal(n); sig == syscall.SIGKILL || sig == syscall.SIGSTOP {
		return 0, fmt.Errorf("power-off signal %.40q: %v cannot be handled by an init", s, sig)
	}
	return syscall.Signal(n), nil
}

// methodFor is how "auto" asks the init whose executable is exe: a
// signal, or 0 for the root's own poweroff command.
func methodFor(exe string) syscall.Signal {
	base := path.Base(strings.TrimSuffix(exe, " (deleted)"))
	switch {
	case strings.HasPrefix(base, "systemd"):
		return sigSystemd
	case strings.HasPrefix(base, "busybox"): // busybox, busybox.static
		return sigBusybox
	}
	return 0
}

// signalName names sig for logs and answers, as ParseSignal reads it.
func signalName(sig syscall.Signal) string {
	if sig >= sigRTMin && sig <= sigRTMax {
		return fmt.Sprintf("SIGRTMIN+%d", int(sig)-sigRTMin)
	}
	for n, s := range signalNames() {
		if s == sig {
			return "SIG" + n
		}
	}
	return strconv.Itoa(int(sig))
}
