package vmlab

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"ferry/power"
)

// QEMU describes one x86-64 guest; Start boots it. The zero values are the
// lab's defaults: TCG (FERRY_ACCEL overrides), 1 GiB, 2 VCPUs, PXE boot
// from a virtio NIC on a tap, one raw virtio disk, console and QMP in Dir.
type QEMU struct {
	Name   string
	Dir    string   // console.log and qmp.sock go here
	NetNS  string   // run inside this network namespace (ip netns exec) when set
	Tap    string   // the tap device the NIC uses
	MAC    string   // the NIC's address
	Disk   string   // a raw disk image, attached as virtio
	Kernel string   // -kernel (with Initrd, Append) instead of PXE when set
	Initrd string   //
	Append string   //
	Paused bool     // -S: the guest waits for QMP cont (the lender's power on)
	MemMB  int      // default 1024
	SMP    int      // default 2
	Accel  string   // default $FERRY_ACCEL or tcg,thread=multi
	Extra  []string // more QEMU arguments
	// Timeout bounds QEMU's life (coreutils timeout), as a last resort
	// behind the test's cleanup; default 2 h.
	Timeout time.Duration

	// Firmware is FirmwareBIOS (the default, SeaBIOS) or FirmwareUEFI
	// (OVMF, with its variable store copied into Dir per run).
	Firmware string
	// NoNICROM leaves out the NIC's option ROM (QEMU's own iPXE): the
	// firmware's PXE client boots, as on a server whose NIC has no iPXE.
	NoNICROM bool
}

// The firmware a guest boots with (QEMU.Firmware, FERRY_FIRMWARE).
const (
	FirmwareBIOS = "bios"
	FirmwareUEFI = "uefi"
)

// OVMF's firmware and its variable store template (Debian's ovmf, the 4 MB
// build without Secure Boot). QEMU's virtio-net under OVMF uses its own
// iPXE EFI driver ROM (ipxe-qemu's efi-virtio.rom) for the NIC; the PXE
// client is OVMF's, so the lender's DHCP sees architecture 7.
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// VM is a running guest.
type VM struct {
	*Proc
	Console *Console
	QMP     string // the QMP socket
	log     *slog.Logger
}

// Args is QEMU's command line for q.
func (q QEMU) Args() []string {
	accel := q.Accel
	if accel == "" {
		accel = os.Getenv("FERRY_ACCEL")
	}
	if accel == "" {
		accel = "tcg,thread=multi"
	}
	mem, smp := q.MemMB, q.SMP
	if mem == 0 {
		mem = 1024
	}
	if smp == 0 {
		smp = 2
	}
	timeout := q.Timeout
	if timeout == 0 {
		timeout = 2 * time.Hour
	}
	var a []string
	if q.NetNS != "" {
		a = append(a, "ip", "netns", "exec", q.NetNS)
	}
	a = append(a, "timeout", strconv.Itoa(int(timeout.Seconds())), "qemu-system-x86_64", "-name", q.Name,
		"-accel", accel, "-cpu", "max", "-m", strconv.Itoa(mem), "-smp", strconv.Itoa(smp),
		"-display", "none", "-vga", "none", "-monitor", "none", "-no-reboot",
		"-qmp", "unix:"+filepath.Join(q.Dir, "qmp.sock")+",server=on,wait=off",
		"-chardev", "file,id=con0,path="+filepath.Join(q.Dir, "console.log"), "-serial", "chardev:con0")
	if q.Paused {
		a = append(a, "-S")
	}
	if q.Firmware == FirmwareUEFI {
		a = append(a, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+filepath.Join(q.Dir, "OVMF_VARS.fd"))
	}
	nic := "virtio-net-pci,netdev=n0,mac=" + q.MAC
	if q.NoNICROM {
		nic += ",romfile="
	}
	if q.Kernel != "" {
		a = append(a, "-kernel", q.Kernel, "-initrd", q.Initrd, "-append", q.Append)
	} else if q.Firmware == FirmwareUEFI {
		nic += ",bootindex=1" // OVMF takes its boot order from bootindex, not -boot
	} else {
		a = append(a, "-boot", "n")
	}
	if q.Tap != "" {
		a = append(a, "-netdev", "tap,id=n0,ifname="+q.Tap+",script=no,downscript=no", "-device", nic)
	}
	if q.Disk != "" {
		a = append(a, "-drive", "file="+q.Disk+",format=raw,if=virtio")
	}
	return append(a, q.Extra...)
}

// Start boots q and waits for its QMP socket. At cleanup QEMU is ended
// like every Proc.
func (q QEMU) Start(t testing.TB) *VM {
	t.Helper()
	con := filepath.Join(q.Dir, "console.log")
	if err := os.WriteFile(con, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	switch q.Firmware {
	case "", FirmwareBIOS:
	case FirmwareUEFI:
		// Each run its own variable store: OVMF writes its boot entries there.
		if out, err := Run("cp", OVMFVars, filepath.Join(q.Dir, "OVMF_VARS.fd")); err != nil {
			t.Fatalf("OVMF variable store (Debian's ovmf, scripts/ci-deps.sh): %v %s", err, out)
		}
	default:
		t.Fatalf("QEMU %s: firmware %q: want %s or %s", q.Name, q.Firmware, FirmwareBIOS, FirmwareUEFI)
	}
	p := Start(t, "qemu "+q.Name, filepath.Join(q.Dir, "qemu.log"), q.Args()...)
	vm := &VM{Proc: p, Console: &Console{Path: con}, QMP: filepath.Join(q.Dir, "qmp.sock"), log: slog.Default()}
	made := func() bool { _, err := os.Stat(vm.QMP); return err == nil }
	if !waitFor(10*time.Second, func() bool { return made() || !p.Running() }) || !made() {
		b, _ := os.ReadFile(p.Log)
		t.Fatalf("QEMU %s made no QMP socket %s: %s", q.Name, vm.QMP, b)
	}
	return vm
}

// qmp is ferry's QMP power driver, with Off meaning cmd (stop or quit).
func (vm *VM) qmp(off string) (power.Driver, error) {
	return power.New("qmp", map[string]string{"socket": vm.QMP, "off": off}, vm.log)
}

// Freeze stops the guest's VCPUs (QMP stop): to the guest no time passes,
// to its peers it is gone.
func (vm *VM) Freeze(ctx context.Context) error { return vm.vcpus(ctx, "freeze", power.Driver.Off) }

// Thaw resumes a frozen guest (QMP cont).
func (vm *VM) Thaw(ctx context.Context) error { return vm.vcpus(ctx, "thaw", power.Driver.On) }

// vcpus runs op (Off: stop, On: cont) on the QMP driver; errors say what.
func (vm *VM) vcpus(ctx context.Context, what string, op func(power.Driver, context.Context) error) error {
	d, err := vm.qmp("stop")
	if err == nil {
		err = op(d, ctx)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, vm.Name, err)
	}
	return nil
}

// Quit ends QEMU over QMP (quit).
func (vm *VM) Quit(ctx context.Context) error {
	d, err := vm.qmp("quit")
	if err != nil {
		return err
	}
	return d.Off(ctx)
}

// Status is the guest's power state as QMP reports it.
func (vm *VM) Status(ctx context.Context) (power.State, error) {
	d, err := vm.qmp("stop")
	if err != nil {
		return "", err
	}
	return d.Status(ctx)
}
