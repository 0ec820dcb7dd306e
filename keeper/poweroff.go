package keeper

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"syscall"
)

// How the keeper asks the root's init to power off. Each init has its own
// signal for "power off cleanly":
//
//	systemd      SIGRTMIN+4 (38, as glibc numbers real-time signals)
//	busybox init SIGUSR2 (the lab's root-init.sh traps it too)
//
// "auto" (the default) decides when the request comes, from the program
// PID 1 runs then (/proc/1/exe): systemd gets SIGRTMIN+4, anything else
// SIGUSR2. It cannot decide at start: in the initramfs PID 1 is still
// ferry's own agent.
const (
	SignalAuto = "auto"
	// sigRTMin is glibc's SIGRTMIN: the kernel's 32 plus the two that
	// glibc's threads library reserves. systemd counts from it.
	sigRTMin   = 34
	sigRTMax   = 64
	sigSystemd = syscall.Signal(sigRTMin + 4)
)

// PowerOff configures the power-off request to the root's init.
type PowerOff struct {
	// Signal is "auto", a name (SIGUSR2, USR2, SIGRTMIN+4, SIGTERM, ...)
	// or a number; see ParseSignal.
	Signal string
	// InitPID is the process told; 1 unless a test says otherwise.
	InitPID int
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
		return 0, fmt.Errorf("power-off signal %.40q: want auto, a signal name (SIGUSR2, SIGRTMIN+4) or a number 1-%d", s, sigRTMax)
	}
	if sig := syscall.Signal(n); sig == syscall.SIGKILL || sig == syscall.SIGSTOP {
		return 0, fmt.Errorf("power-off signal %.40q: %v cannot be handled by an init", s, sig)
	}
	return syscall.Signal(n), nil
}

// signalFor is the power-off signal of the init whose executable is exe.
func signalFor(exe string) syscall.Signal {
	if strings.HasPrefix(path.Base(strings.TrimSuffix(exe, " (deleted)")), "systemd") {
		return sigSystemd
	}
	return syscall.SIGUSR2
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
