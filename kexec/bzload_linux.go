//go:build linux && amd64

package kexec

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"github.com/u-root/u-root/pkg/boot/linux"
	"github.com/u-root/u-root/pkg/boot/purgatory"
	"golang.org/x/sys/unix"

	"ferry/initrd"
	"ferry/internal/mapfile"
)

// Where the running kernel shows what planBzImage needs.
const (
	bootParamsFile = "/sys/kernel/boot_params/data"
	firmwareMemmap = "/sys/firmware/memmap"
	efiDir         = "/sys/firmware/efi"
	maxSegments    = 16 // KEXEC_SEGMENT_MAX
)

// The parts' layout is initrd's (PatchInPlace, PartsLen): its page must
// be the page the segments are placed in.
var _ = [1]struct{}{}[pageSize-initrd.PageSize]

// kexecSegment is struct kexec_segment of <linux/kexec.h>.
type kexecSegment struct {
	buf   unsafe.Pointer
	bufsz uintptr
	mem   uintptr
	memsz uintptr
}

// loadLegacy is kexec_load: of the bzImage as it is where bzLoadable
// allows, else through u-root, which decompresses the kernel first and
// copies the running kernel's boot_params (EFI pointers included).
func loadLegacy(kernel, ramfs *os.File, cmdline string) error {
	if bzLoadable() == nil {
		return loadBzImage64(kernel, ramfs, cmdline)
	}
	return linux.KexecLoad(kernel, ramfs, cmdline, nil, nil)
}

// loadParts is kexec_load of the bzImage with an initrd in parts.
func loadParts(kernel *os.File, parts [][]byte, cmdline string) error {
	if err := bzLoadable(); err != nil {
		return err
	}
	return loadBzImage64Parts(kernel, parts, cmdline)
}

// legacyFirst: kexec_load goes first where the bzImage path applies.
func legacyFirst() error { return bzLoadable() }

// bzLoadable says why the 64-bit bzImage kexec_load path does not apply
// on this machine, or nil: it hands the new kernel no EFI, so it is for
// machines that booted without it.
func bzLoadable() error {
	if _, err := os.Stat(efiDir); err == nil {
		return fmt.Errorf("%s exists: the machine booted through EFI, which only kexec_file_load passes on", efiDir)
	}
	return nil
}

// loadBzImage64 loads kernel (a bzImage with the 64-bit entry) and ramfs
// with kexec_load, placed by planBzImage, entered through u-root's 64-bit
// purgatory (it sets %rsi to the zero page and jumps). Both files are
// mapped, not read: the kernel copies them from the page cache once.
func loadBzImage64(kernel, ramfs *os.File, cmdline string) error {
	var parts [][]byte
	if ramfs != nil {
		rd, err := mapfile.Map(ramfs, 1<<40)
		if err != nil {
			return err
		}
		defer mapfile.Unmap(rd)
		parts = [][]byte{rd}
	}
	return loadBzImage64Parts(kernel, parts, cmdline)
}

// loadBzImage64Parts is loadBzImage64 with the initrd made of parts, each
// on a page boundary after the one before (initrd.PatchInPlace): one
// kexec segment each, adjacent, one initrd range for the new kernel.
func loadBzImage64Parts(kernel *os.File, parts [][]byte, cmdline string) error {
	kb, err := mapfile.Map(kernel, maxKernelSize)
	if err != nil {
		return err
	}
	defer mapfile.Unmap(kb)
	params, err := os.ReadFile(bootParamsFile)
	if err != nil {
		return err
	}
	ram, err := readRAM(firmwareMemmap)
	if err != nil {
		return err
	}
	purg, purgAt, err := purgatoryCode()
	if err != nil {
		return err
	}
	purgRange := memRange{purgAt, purgAt + alignUp(uint64(len(purg)), pageSize)}
	if err := reserve(&ram, purgRange); err != nil {
		return fmt.Errorf("purgatory at %#x: %w", purgAt, err)
	}
	l, err := planBzImage(kb, int(initrd.PartsLen(parts)), cmdline, params, ram)
	if err != nil {
		return err
	}
	// The purgatory jumps to the quadword at +8 with %rsi from +16.
	binary.LittleEndian.PutUint64(purg[8:], l.Entry)
	binary.LittleEndian.PutUint64(purg[16:], l.Params.Start)
	cl := []byte(cmdline + "\x00")
	segs := []kexecSegment{
		segment(purg, purgRange),
		segment(l.Code, l.Kernel),
		segment(cl, l.Cmdline),
		segment(l.BootParams, l.Params),
	}
	at := l.Initrd.Start
	for _, p := range parts {
		if len(p) > 0 {
			segs = append(segs, segment(p, memRange{at, at + uint64(len(p))}))
		}
		at += alignUp(uint64(len(p)), pageSize)
	}
	if len(segs) > maxSegments {
		return fmt.Errorf("kexec_load takes at most %d segments, this load has %d", maxSegments, len(segs))
	}
	_, _, errno := unix.Syscall6(unix.SYS_KEXEC_LOAD, uintptr(purgAt), uintptr(len(segs)),
		uintptr(unsafe.Pointer(&segs[0])), 0, 0, 0)
	runtime.KeepAlive(purg)
	runtime.KeepAlive(l)
	runtime.KeepAlive(cl)
	runtime.KeepAlive(parts)
	if errno != 0 {
		return fmt.Errorf("kexec_load(kernel %#x+%#x, initrd %#x+%#x, entry %#x) = %s: %w",
			l.Kernel.Start, l.Kernel.size(), l.Initrd.Start, l.Initrd.size(), l.Entry, unix.ErrnoName(errno), errno)
	}
	return nil
}

// segment is b at r, r rounded up to whole pages (the kernel zeroes the
// rest).
func segment(b []byte, r memRange) kexecSegment {
	return kexecSegment{
		buf:   unsafe.Pointer(unsafe.SliceData(b)),
		bufsz: uintptr(len(b)),
		mem:   uintptr(r.Start),
		memsz: uintptr(alignUp(r.End, pageSize) - r.Start),
	}
}

// purgatoryCode is a copy of u-root's 64-bit purgatory's one loadable
// segment and the address it runs at.
func purgatoryCode() ([]byte, uint64, error) {
	p, ok := purgatory.Purgatories["default"]
	if !ok {
		return nil, 0, errors.New("u-root has no \"default\" purgatory")
	}
	f, err := elf.NewFile(bytes.NewReader(p.Code))
	if err != nil {
		return nil, 0, fmt.Errorf("purgatory: %w", err)
	}
	if len(f.Progs) != 1 || f.Progs[0].Type != elf.PT_LOAD || f.Progs[0].Filesz < 24 {
		return nil, 0, errors.New("purgatory: want one loadable segment of at least 24 bytes")
	}
	pr := f.Progs[0]
	b := make([]byte, pr.Filesz)
	if _, err := pr.ReadAt(b, 0); err != nil {
		return nil, 0, fmt.Errorf("purgatory: %w", err)
	}
	if f.Entry != pr.Paddr || pr.Paddr%pageSize != 0 {
		return nil, 0, fmt.Errorf("purgatory: entry %#x, segment at %#x", f.Entry, pr.Paddr)
	}
	return b, pr.Paddr, nil
}

// readRAM reads the firmware's memory map (dir/N/{start,end,type}, end
// inclusive) and returns its "System RAM" ranges in whole pages.
func readRAM(dir string) ([]memRange, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ram []memRange
	for _, e := range ents {
		read := func(name string) (string, error) {
			b, err := os.ReadFile(filepath.Join(dir, e.Name(), name))
			return strings.TrimSpace(string(b)), err
		}
		typ, err := read("type")
		if err != nil {
			return nil, err
		}
		if typ != "System RAM" {
			continue
		}
		var se [2]uint64
		for i, name := range []string{"start", "end"} {
			s, err := read(name)
			if err != nil {
				return nil, err
			}
			if se[i], err = strconv.ParseUint(s, 0, 64); err != nil {
				return nil, fmt.Errorf("%s/%s/%s: %w", dir, e.Name(), name, err)
			}
		}
		if se[1] < se[0] {
			return nil, fmt.Errorf("%s/%s: end %#x before start %#x", dir, e.Name(), se[1], se[0])
		}
		ram = append(ram, memRange{se[0], se[1] + 1})
	}
	ram = pageAligned(ram)
	if len(ram) == 0 {
		return nil, fmt.Errorf("%s lists no System RAM", dir)
	}
	return ram, nil
}
