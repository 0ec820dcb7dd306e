package keeper

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// signalInit sends the power-off signal to the init (PID 1 by default),
// choosing it from /proc/PID/exe when the setting is "auto".
func (p PowerOff) signalInit() (syscall.Signal, int, error) {
	pid := p.InitPID
	if pid == 0 {
		pid = 1
	}
	sig, err := ParseSignal(p.Signal)
	if err != nil {
		return 0, pid, err
	}
	if sig == 0 {
		exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
		if err != nil {
			return 0, pid, fmt.Errorf("power-off signal auto: which init runs as pid %d: %w", pid, err)
		}
		sig = signalFor(exe)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return sig, pid, fmt.Errorf("kill(%d, %s) = %w", pid, signalName(sig), err)
	}
	return sig, pid, nil
}
