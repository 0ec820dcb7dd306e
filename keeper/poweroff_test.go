package keeper

import (
	"syscall"
	"testing"
)

func TestParseSignalReadsInitConventions(t *testing.T) {
	for in, want := range map[string]syscall.Signal{
		"auto": 0, "": 0, "SIGUSR2": syscall.SIGUSR2, "usr2": syscall.SIGUSR2, "SIGRTMIN+4": 38,
		"RTMIN": 34, "SIGTERM": syscall.SIGTERM, "12": syscall.SIGUSR2, "SIGPWR": syscall.SIGPWR,
	} {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestParseSignalRefusesWhatNoInitCanHandle(t *testing.T) {
	for _, in := range []string{"SIGKILL", "9", "19", "0", "65", "RTMIN+31", "RTMIN+-3", "SIGFOO", "RTMIN+x"} {
		if sig, err := ParseSignal(in); err == nil {
			t.Errorf("ParseSignal(%q) = %v, want an error", in, sig)
		}
	}
}

func TestAutoAsksSystemdAndBusyboxBySignalAnyOtherInitByCommand(t *testing.T) {
	for exe, want := range map[string]syscall.Signal{
		"/usr/lib/systemd/systemd": 38, "/lib/systemd/systemd (deleted)": 38,
		"/bin/busybox": syscall.SIGUSR2, "/usr/bin/busybox.static": syscall.SIGUSR2,
		// sysvinit, runit, openrc-init, s6-svscan, dinit: the root's poweroff.
		"/sbin/init": 0, "/usr/sbin/runit": 0, "/sbin/openrc-init": 0, "/usr/bin/s6-svscan": 0, "/sbin/dinit": 0,
	} {
		if got := methodFor(exe); got != want {
			t.Errorf("methodFor(%q) = %v, want %v", exe, got, want)
		}
	}
}

func TestParsePowerOffTakesCommandAndSignals(t *testing.T) {
	for _, in := range []string{"auto", "command", "SIGUSR2", "RTMIN+4"} {
		if err := ParsePowerOff(in); err != nil {
			t.Errorf("ParsePowerOff(%q) = %v", in, err)
		}
	}
	for _, in := range []string{"Command", "/sbin/poweroff", "SIGKILL"} {
		if err := ParsePowerOff(in); err == nil {
			t.Errorf("ParsePowerOff(%q) took it", in)
		}
	}
}

func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"auto", "SIGRTMIN+4", "usr2", "38", "RTMIN+-1", "SIGKILL"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := ParseSignal(s)
		if err != nil {
			return
		}
		if sig < 0 || sig > sigRTMax || sig == syscall.SIGKILL || sig == syscall.SIGSTOP {
			t.Fatalf("ParseSignal(%q) = %d, out of range", s, sig)
		}
		if sig != 0 {
			back, err := ParseSignal(signalName(sig))
			if err != nil || back != sig {
				t.Fatalf("ParseSignal(signalName(%d)=%q) = %v, %v", sig, signalName(sig), back, err)
			}
		}
	})
}
