//go:build linux && (amd64 || arm64)

package kexec

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"ferry/kexec/kexectest"
)

// fakeKernel answers the two load syscalls and records which were made.
type fakeKernel struct {
	fileErr, legacyErr error
	calls              []string
	flags              int
}

func (k *fakeKernel) syscalls() syscalls {
	return syscalls{
		fileLoad: func(kfd, ifd int, cmdline string, flags int) error {
			k.calls, k.flags = append(k.calls, "file"), flags
			return k.fileErr
		},
		legacyLoad: func(kf, rf *os.File, cmdline string) error {
			k.calls = append(k.calls, "legacy")
			return k.legacyErr
		},
	}
}

func images(t *testing.T) (kernel, initrd string) {
	dir := t.TempDir()
	kernel, initrd = filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
	os.WriteFile(kernel, kexectest.BzImage(0x020f, "6.1.0-48-amd64 #1"), 0o644)
	os.WriteFile(initrd, []byte("070701"), 0o644)
	return kernel, initrd
}

func TestLoadUsesKexecFileLoadWhenItWorks(t *testing.T) {
	kernel, initrd := images(t)
	k := &fakeKernel{}
	m, err := load(kernel, initrd, "console=ttyS0", Options{}, k.syscalls())
	if err != nil || m.String() != "kexec_file_load" || strings.Join(k.calls, ",") != "file" || k.flags != 0 {
		t.Fatalf("method %v err %v calls %v flags %d", m, err, k.calls, k.flags)
	}
}

func TestLoadWithoutInitrdPassesNoInitramfsFlag(t *testing.T) {
	kernel, _ := images(t)
	k := &fakeKernel{}
	if _, err := load(kernel, "", "", Options{}, k.syscalls()); err != nil || k.flags != unix.KEXEC_FILE_NO_INITRAMFS {
		t.Fatalf("err %v flags %d", err, k.flags)
	}
}

func TestLoadFallsBackOnlyForErrorsKexecLoadCanFix(t *testing.T) {
	kernel, initrd := images(t)
	for _, errno := range []unix.Errno{unix.ENOSYS, unix.ENOEXEC, unix.EKEYREJECTED, unix.EBADMSG, unix.ENOPKG} {
		k := &fakeKernel{fileErr: errno}
		m, err := load(kernel, initrd, "quiet", Options{}, k.syscalls())
		if err != nil || m.Syscall != LegacyLoad || strings.Join(k.calls, ",") != "file,legacy" {
			t.Errorf("%v: method %v err %v calls %v", errno, m, err, k.calls)
			continue
		}
		want := `kexec_load (fallback: kexec_file_load(kernel="` + kernel + `", initrd="` + initrd + `", cmdline="quiet") = ` + unix.ErrnoName(errno)
		if !strings.HasPrefix(m.String(), want) {
			t.Errorf("method %q, want prefix %q", m, want)
		}
	}
	for _, errno := range []unix.Errno{unix.ENOMEM, unix.EINVAL, unix.EBUSY, unix.ETXTBSY} {
		k := &fakeKernel{fileErr: errno}
		_, err := load(kernel, initrd, "", Options{}, k.syscalls())
		if !errors.Is(err, errno) || len(k.calls) != 1 {
			t.Errorf("%v: err %v calls %v", errno, err, k.calls)
		}
	}
}

func TestLoadReportsLockdownWithoutFallingBack(t *testing.T) {
	kernel, initrd := images(t)
	k := &fakeKernel{fileErr: unix.EPERM}
	_, err := load(kernel, initrd, "quiet", Options{}, k.syscalls())
	want := `kexec refused (EPERM): kernel lockdown or missing CAP_SYS_BOOT: kexec_file_load(kernel="` + kernel
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, unix.EPERM) || len(k.calls) != 1 {
		t.Fatalf("err %v calls %v", err, k.calls)
	}
}

func TestLoadForceFileNeverFallsBack(t *testing.T) {
	kernel, initrd := images(t)
	k := &fakeKernel{fileErr: unix.ENOSYS}
	_, err := load(kernel, initrd, "", Options{ForceFile: true}, k.syscalls())
	if !errors.Is(err, unix.ENOSYS) || strings.Join(k.calls, ",") != "file" {
		t.Fatalf("err %v calls %v", err, k.calls)
	}
}

func TestLoadForceLegacySkipsKexecFileLoad(t *testing.T) {
	kernel, initrd := images(t)
	k := &fakeKernel{}
	m, err := load(kernel, initrd, "", Options{ForceLegacy: true}, k.syscalls())
	if err != nil || m.String() != "kexec_load (forced)" || strings.Join(k.calls, ",") != "legacy" {
		t.Fatalf("method %v err %v calls %v", m, err, k.calls)
	}
}

func TestLoadReportsBothFailuresAfterFallback(t *testing.T) {
	kernel, initrd := images(t)
	k := &fakeKernel{fileErr: unix.ENOSYS, legacyErr: errors.New("parse memory map: no such file")}
	_, err := load(kernel, initrd, "", Options{}, k.syscalls())
	if err == nil || !strings.Contains(err.Error(), "kexec_load(kernel=") || !strings.Contains(err.Error(), "parse memory map") || !strings.Contains(err.Error(), "(after kexec_file_load(") {
		t.Fatalf("got %v", err)
	}
}

func TestLoadRefusesBeforeAnySyscall(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("bzImage checks are x86-only")
	}
	kernel, initrd := images(t)
	notBz := filepath.Join(t.TempDir(), "vmlinuz")
	os.WriteFile(notBz, make([]byte, 4096), 0o644)
	for _, tc := range []struct{ kernel, initrd, cmdline, want string }{
		{notBz, initrd, "", notBz + ": not a bzImage: boot flag 0x0000 at offset 0x1fe"},
		{kernel, initrd, strings.Repeat("x", 2047), "command line is 2047 bytes, the kernel takes at most 2046"},
		{kernel, initrd + ".missing", "", "initrd.img.missing: no such file"},
		{kernel + ".missing", initrd, "", "vmlinuz.missing: no such file"},
	} {
		k := &fakeKernel{}
		_, err := load(tc.kernel, tc.initrd, tc.cmdline, Options{}, k.syscalls())
		if err == nil || !strings.Contains(err.Error(), tc.want) || len(k.calls) != 0 {
			t.Errorf("got %v calls %v, want %q", err, k.calls, tc.want)
		}
	}
}

func TestSyscallErrorExplainsTextBusy(t *testing.T) {
	err := &SyscallError{Call: FileLoad, Kernel: "k", Errno: unix.ETXTBSY}
	if !strings.Contains(err.Error(), "ETXTBSY (text file busy): a process has the file open for writing") {
		t.Errorf("got %v", err)
	}
}

// TestLoadAndUnloadRealKernel runs the real syscalls: in the lab's QEMU
// guest, with FERRY_KERNEL_ROOT pointing at an unpacked kernel package.
func TestLoadAndUnloadRealKernel(t *testing.T) {
	if os.Getenv("FERRY_KEXEC_TEST") != "1" {
		t.Skip("FERRY_KEXEC_TEST=1 not set (needs a kernel with kexec, as root)")
	}
	if _, err := os.Stat(loadedFile); err != nil {
		t.Skipf("kernel without kexec: %v", err)
	}
	matches, _ := filepath.Glob(filepath.Join(os.Getenv("FERRY_KERNEL_ROOT"), "boot/vmlinuz-*"))
	if len(matches) == 0 {
		t.Skip("no boot/vmlinuz-* under FERRY_KERNEL_ROOT")
	}
	m, err := Load(matches[0], "", "console=ttyS0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded with %v", m)
	if loaded, err := Loaded(); err != nil || !loaded {
		t.Fatalf("Loaded() = %v, %v after Load", loaded, err)
	}
	if err := Unload(Options{}); err != nil {
		t.Fatal(err)
	}
	if loaded, _ := Loaded(); loaded {
		t.Fatal("still loaded after Unload")
	}
}

// Under lockdown (Secure Boot) the refusal names the mode and what would
// work, whichever syscall gave the EPERM: kexec_file_load for an unsigned
// image, or kexec_load after a rejected signature.
func TestLoadUnderLockdownSaysSo(t *testing.T) {
	kernel, initrd := images(t)
	for _, k := range []*fakeKernel{{fileErr: unix.EPERM}, {fileErr: unix.EKEYREJECTED, legacyErr: unix.EPERM}} {
		sc := k.syscalls()
		sc.lockdown = func() (string, error) { return "integrity", nil }
		_, err := load(kernel, initrd, "quiet", Options{}, sc)
		var le *LockdownError
		if !errors.As(err, &le) || le.Mode != "integrity" || !errors.Is(err, unix.EPERM) ||
			!strings.HasPrefix(err.Error(), "kexec refused: image A's kernel is locked down [integrity] (Secure Boot)") {
			t.Errorf("calls %v: err %v", k.calls, err)
		}
	}
	k := &fakeKernel{fileErr: unix.EPERM}
	sc := k.syscalls()
	sc.lockdown = func() (string, error) { return "none", nil }
	if _, err := load(kernel, initrd, "quiet", Options{}, sc); !strings.HasPrefix(err.Error(), "kexec refused (EPERM): kernel lockdown or missing CAP_SYS_BOOT") {
		t.Errorf("lockdown none: err %v", err)
	}
}

// On a BIOS machine without lockdown kexec_load goes first (no hashing);
// any failure of it falls back to kexec_file_load, and says why.
func TestLoadTriesKexecLoadFirstWhereItApplies(t *testing.T) {
	kernel, initrd := images(t)
	first := func(k *fakeKernel, mode string, why error) syscalls {
		sc := k.syscalls()
		sc.lockdown = func() (string, error) { return mode, nil }
		sc.legacyFirst = func() error { return why }
		return sc
	}
	k := &fakeKernel{}
	if m, err := load(kernel, initrd, "", Options{}, first(k, "none", nil)); err != nil || m.String() != "kexec_load" || strings.Join(k.calls, ",") != "legacy" {
		t.Errorf("BIOS, no lockdown: method %v err %v calls %v", m, err, k.calls)
	}
	k = &fakeKernel{legacyErr: errors.New("no room for the kernel")}
	m, err := load(kernel, initrd, "", Options{}, first(k, "none", nil))
	if err != nil || m.Syscall != FileLoad || strings.Join(k.calls, ",") != "legacy,file" ||
		!strings.Contains(m.String(), "kexec_file_load (fallback: kexec_load(kernel=") || !strings.Contains(m.String(), "no room for the kernel") {
		t.Errorf("kexec_load failing: method %v err %v calls %v", m, err, k.calls)
	}
	k = &fakeKernel{legacyErr: errors.New("no room"), fileErr: unix.ENOMEM}
	if _, err := load(kernel, initrd, "", Options{}, first(k, "none", nil)); !errors.Is(err, unix.ENOMEM) || !strings.Contains(err.Error(), "(after kexec_load(") {
		t.Errorf("both failing: %v", err)
	}
	for _, tc := range []struct {
		mode string
		why  error
		opt  Options
	}{
		{"integrity", nil, Options{}},
		{"none", errors.New("booted through EFI"), Options{}},
		{"none", nil, Options{ForceFile: true}},
	} {
		k := &fakeKernel{}
		if m, err := load(kernel, initrd, "", tc.opt, first(k, tc.mode, tc.why)); err != nil || m.Syscall != FileLoad || strings.Join(k.calls, ",") != "file" {
			t.Errorf("%+v: method %v err %v calls %v", tc, m, err, k.calls)
		}
	}
}
