package kexec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Offsets in the x86 boot sector and setup header
// (Documentation/arch/x86/boot.rst).
const (
	offSetupSects  = 0x1f1
	offBootFlag    = 0x1fe
	offHeader      = 0x202
	offVersion     = 0x206
	offKernelVer   = 0x20e
	offLoadFlags   = 0x211
	offRelocatable = 0x234
	offXLoadFlags  = 0x236
	offCmdlineSize = 0x238
	headerEnd      = 0x268 // end of the fields read here (protocol 2.15)

	bootFlag    = 0xaa55
	headerMagic = "HdrS"
	minProtocol = 0x0206 // first with cmdline_size, which kexec needs
	maxVersion  = 256    // bound on the kernel version string
	loadedHigh  = 0x01   // loadflags: protected-mode code at 0x100000
	xlfKernel64 = 0x01   // xloadflags: has the 64-bit entry point
	xlfAbove4G  = 0x02   // xloadflags: may be loaded above 4 GiB
)

// BzImage is what ferry checks in an x86 kernel's setup header before
// asking the kernel to load it.
type BzImage struct {
	// SetupSects is the number of 512-byte setup sectors after the boot
	// sector (a stored 0 means 4).
	SetupSects int
	// Protocol is the boot protocol version, e.g. 0x020f for 2.15.
	Protocol uint16
	// Version is the kernel version string the header points to, such as
	// "6.1.0-48-amd64 (debian-kernel@lists.debian.org) #1 SMP ...".
	Version string
	// LoadFlags and XLoadFlags are the header's loadflags and xloadflags.
	LoadFlags  uint8
	XLoadFlags uint16
	// Relocatable is the header's relocatable_kernel flag.
	Relocatable bool
	// CmdlineSize is the longest command line the kernel accepts, excluding
	// the terminating NUL.
	CmdlineSize uint32
}

// ParseBzImage reads and validates an x86 bzImage's boot sector and setup
// header. Errors name the field and its offset.
func ParseBzImage(r io.ReaderAt) (*BzImage, error) {
	var h [headerEnd]byte
	n, err := r.ReadAt(h[:], 0)
	if n < offVersion+2 {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("not a bzImage: %d bytes is too short for a setup header (needs %#x)", n, headerEnd)
		}
		return nil, fmt.Errorf("reading setup header: %w", err)
	}
	le := binary.LittleEndian
	if f := le.Uint16(h[offBootFlag:]); f != bootFlag {
		return nil, fmt.Errorf("not a bzImage: boot flag %#04x at offset %#x, want %#04x", f, offBootFlag, bootFlag)
	}
	if m := h[offHeader : offHeader+4]; string(m) != headerMagic {
		return nil, fmt.Errorf("not a bzImage: no %s signature at offset %#x (found %q)", headerMagic, offHeader, m)
	}
	b := &BzImage{Protocol: le.Uint16(h[offVersion:]), SetupSects: int(h[offSetupSects])}
	if b.Protocol < minProtocol {
		return nil, fmt.Errorf("boot protocol %s at offset %#x is too old for kexec (need >= 2.06)", protocolString(b.Protocol), offVersion)
	}
	if n < headerEnd {
		return nil, fmt.Errorf("truncated setup header: %d bytes, protocol %s needs %#x", n, protocolString(b.Protocol), headerEnd)
	}
	if b.SetupSects == 0 {
		b.SetupSects = 4
	}
	b.LoadFlags = h[offLoadFlags]
	b.XLoadFlags = le.Uint16(h[offXLoadFlags:])
	b.Relocatable = h[offRelocatable] != 0
	b.CmdlineSize = le.Uint32(h[offCmdlineSize:])
	if b.CmdlineSize == 0 {
		return nil, fmt.Errorf("cmdline_size at offset %#x is 0", offCmdlineSize)
	}
	if ptr := le.Uint16(h[offKernelVer:]); ptr != 0 {
		v, err := readVersion(r, int64(ptr)+0x200, int64(b.SetupSects+1)*512)
		if err != nil {
			return nil, fmt.Errorf("kernel_version at offset %#x (%#x): %w", offKernelVer, ptr, err)
		}
		b.Version = v
	}
	return b, nil
}

// readVersion reads the NUL-terminated version string at off, which must lie
// inside the setup area [0, setupEnd).
func readVersion(r io.ReaderAt, off, setupEnd int64) (string, error) {
	if off >= setupEnd {
		return "", fmt.Errorf("string at %#x lies outside the %#x byte setup area", off, setupEnd)
	}
	buf := make([]byte, min(maxVersion, setupEnd-off))
	n, err := r.ReadAt(buf, off)
	if n == 0 && err != nil {
		return "", fmt.Errorf("reading string at %#x: %w", off, err)
	}
	buf = buf[:n]
	end := bytes.IndexByte(buf, 0)
	if end < 0 {
		return "", fmt.Errorf("string at %#x has no NUL within %d bytes", off, len(buf))
	}
	s := string(buf[:end])
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return "", fmt.Errorf("string at %#x has byte %#02x at %d", off, s[i], i)
		}
	}
	return s, nil
}

// Release returns the first word of the kernel version string, which is the
// release uname -r reports once the kernel runs ("6.1.0-48-amd64").
func (b *BzImage) Release() string {
	f := strings.Fields(b.Version)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// ProtocolString formats the boot protocol version as "2.15".
func (b *BzImage) ProtocolString() string { return protocolString(b.Protocol) }

func protocolString(v uint16) string { return fmt.Sprintf("%d.%02d", v>>8, v&0xff) }

// CheckCmdline refuses a command line the kernel would not take: the
// kernel counts the terminating NUL against cmdline_size when it loads a
// bzImage with kexec_file_load, so at most CmdlineSize-1 bytes fit.
func (b *BzImage) CheckCmdline(cmdline string) error {
	if max := int(b.CmdlineSize) - 1; len(cmdline) > max {
		return fmt.Errorf("command line is %d bytes, the kernel takes at most %d (cmdline_size %d)", len(cmdline), max, b.CmdlineSize)
	}
	if strings.IndexByte(cmdline, 0) >= 0 {
		return fmt.Errorf("command line has a NUL byte at %d", strings.IndexByte(cmdline, 0))
	}
	return nil
}

// FileLoadable reports why the x86-64 kexec_file_load bzImage loader would
// reject this kernel (it needs protocol 2.12, a protected-mode kernel loaded
// high and the 64-bit entry point), or nil. kexec_load has no such needs
// beyond a relocatable kernel.
func (b *BzImage) FileLoadable() error {
	switch {
	case b.Protocol < 0x020c:
		return fmt.Errorf("boot protocol %s < 2.12", b.ProtocolString())
	case b.LoadFlags&loadedHigh == 0:
		return fmt.Errorf("loadflags %#02x lack LOADED_HIGH", b.LoadFlags)
	case b.XLoadFlags&(xlfKernel64|xlfAbove4G) != xlfKernel64|xlfAbove4G:
		return fmt.Errorf("xloadflags %#04x lack XLF_KERNEL_64|XLF_CAN_BE_LOADED_ABOVE_4G", b.XLoadFlags)
	}
	return nil
}
