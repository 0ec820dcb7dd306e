package kexec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// bzplan lays out an x86-64 bzImage for kexec_load(2) the way the boot
// protocol's 64-bit entry wants it (Documentation/arch/x86/boot.rst,
// "64-bit Boot Protocol"): the protected-mode code as it is in the file,
// still compressed, at an address aligned to kernel_alignment with
// init_size bytes of room to decompress itself in; the zero page
// (boot_params) with the new kernel's setup header, the initrd and the
// command line; entered at load address + 0x200 with %rsi pointing at
// the zero page.
//
// This is what kexec_file_load does in the kernel, without its two
// SHA-256 passes over every segment (at load, and again in purgatory
// before the jump), and what u-root's kexec_load path avoids only by
// decompressing the kernel in Go first (seconds under TCG). The planning
// is pure and portable so that it is tested and fuzzed anywhere; the
// syscall is in bzload_linux.go.

// memRange is [Start, End) of physical memory.
type memRange struct{ Start, End uint64 }

func (r memRange) size() uint64 { return r.End - r.Start }

// Setup header fields written or read here, beyond those of bzimage.go.
const (
	offJump            = 0x200 // 2-byte jump; byte 0x201 gives the header's end
	offTypeOfLoader    = 0x210
	offCode32Start     = 0x214
	offRamdiskImage    = 0x218
	offRamdiskSize     = 0x21c
	offCmdLinePtr      = 0x228
	offInitrdAddrMax   = 0x22c
	offKernelAlignment = 0x230
	offSetupData       = 0x250
	offPrefAddress     = 0x258
	offInitSize        = 0x260

	// boot_params outside the setup header.
	bpTbootAddr       = 0x058
	bpExtRamdiskImage = 0x0c0
	bpExtRamdiskSize  = 0x0c4
	bpExtCmdLinePtr   = 0x0c8
	bpCCBlobAddress   = 0x13c
	bpEFIInfo         = 0x1c0 // 32 bytes
	bpE820Entries     = 0x1e8
	bpSentinel        = 0x1ef
	bpHdrEnd          = 0x290 // the setup header and its padding end here
	bootParamsSize    = 4096

	entry64Offset  = 0x200     // startup_64 of the compressed kernel
	minLoadAddr    = 0x1000000 // LOAD_PHYSICAL_ADDR of x86-64 kernels
	below4G        = 1 << 32   // 32-bit pointers of the zero page
	lowMemEnd      = 0x100000  // below 1 MiB: firmware, purgatory
	e820MaxEntries = 128       // E820_MAX_ENTRIES_ZEROPAGE
	maxKernelSize  = 256 << 20 // bound on a bzImage read into memory
	pageSize       = 4096
	loaderUnknown  = 0xff   // type_of_loader: "undefined", as kexec-tools
	protocol64     = 0x020c // 2.12: xloadflags and the 64-bit entry
	maxInitSize    = 1 << 30
)

// bzLayout says where each part goes and how to enter.
type bzLayout struct {
	Kernel  memRange // protected-mode code, then room up to init_size
	Initrd  memRange // empty without an initrd
	Cmdline memRange
	Params  memRange // the zero page
	Entry   uint64   // Kernel.Start + 0x200
	// Code is the protected-mode part of the file (what Kernel holds).
	Code []byte
	// BootParams is the zero page to load at Params.
	BootParams []byte
}

// planBzImage places kernel (the whole bzImage file), an initrd of
// initrdLen bytes and cmdline in ram (usable RAM not yet taken, e.g. by
// the purgatory), and builds the zero page from oldParams, the running
// kernel's own (/sys/kernel/boot_params/data: its firmware's e820 map
// and screen info), with the new kernel's setup header. It refuses what
// it cannot place or what the 64-bit entry does not support, naming it;
// the caller then uses kexec_file_load.
func planBzImage(kernel []byte, initrdLen int, cmdline string, oldParams []byte, ram []memRange) (*bzLayout, error) {
	if len(kernel) > maxKernelSize {
		return nil, fmt.Errorf("bzImage is %d bytes, more than %d", len(kernel), maxKernelSize)
	}
	bz, err := ParseBzImage(bytes.NewReader(kernel))
	if err != nil {
		return nil, err
	}
	if bz.Protocol < protocol64 || bz.XLoadFlags&xlfKernel64 == 0 || bz.LoadFlags&loadedHigh == 0 {
		return nil, fmt.Errorf("bzImage lacks the 64-bit entry point (protocol %s, loadflags %#02x, xloadflags %#04x)",
			bz.ProtocolString(), bz.LoadFlags, bz.XLoadFlags)
	}
	if !bz.Relocatable {
		return nil, errors.New("bzImage is not relocatable (relocatable_kernel is 0)")
	}
	if err := bz.CheckCmdline(cmdline); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	setupEnd := (bz.SetupSects + 1) * 512
	if setupEnd >= len(kernel) {
		return nil, fmt.Errorf("bzImage has no protected-mode code after its %d setup bytes", setupEnd)
	}
	hdrEnd := offJump + 2 + int(kernel[offJump+1])
	if hdrEnd > bpHdrEnd || hdrEnd < offInitSize+4 {
		return nil, fmt.Errorf("setup header ends at %#x (byte %#x at offset %#x), want %#x..%#x", hdrEnd, kernel[offJump+1], offJump+1, offInitSize+4, bpHdrEnd)
	}
	if len(oldParams) != bootParamsSize {
		return nil, fmt.Errorf("running kernel's boot_params is %d bytes, want %d", len(oldParams), bootParamsSize)
	}
	if n := oldParams[bpE820Entries]; n == 0 || n > e820MaxEntries {
		return nil, fmt.Errorf("running kernel's boot_params has %d e820 entries (want 1..%d)", n, e820MaxEntries)
	}

	align := uint64(le.Uint32(kernel[offKernelAlignment:]))
	if align < pageSize || align&(align-1) != 0 {
		return nil, fmt.Errorf("kernel_alignment %#x at offset %#x is not a power of two >= 4 KiB", align, offKernelAlignment)
	}
	initSize := uint64(le.Uint32(kernel[offInitSize:]))
	code := kernel[setupEnd:]
	if initSize > maxInitSize {
		return nil, fmt.Errorf("init_size %#x at offset %#x is over 1 GiB", initSize, offInitSize)
	}
	kernelSize := alignUp(max(initSize, uint64(len(code))), pageSize)
	lowest := max(le.Uint64(kernel[offPrefAddress:]), minLoadAddr)

	free := slices.Clone(ram)
	l := &bzLayout{Code: code}
	// The kernel low and aligned, so that the decompressor works in
	// [load, load+init_size) and need not move; the initrd high, as
	// kexec_file_load and kexec-tools put it, away from that window.
	if l.Kernel, err = take(&free, kernelSize, align, lowest, below4G, false); err != nil {
		return nil, fmt.Errorf("no room for the kernel (%d bytes to decompress in, aligned to %#x): %w", kernelSize, align, err)
	}
	initrdMax := uint64(below4G)
	if bz.Protocol >= 0x0203 {
		initrdMax = min(initrdMax, uint64(le.Uint32(kernel[offInitrdAddrMax:]))+1)
	}
	if initrdLen > 0 {
		if l.Initrd, err = take(&free, alignUp(uint64(initrdLen), pageSize), pageSize, lowMemEnd, initrdMax, true); err != nil {
			return nil, fmt.Errorf("no room for the %d-byte initrd below %#x: %w", initrdLen, initrdMax, err)
		}
		l.Initrd.End = l.Initrd.Start + uint64(initrdLen)
	}
	if l.Cmdline, err = take(&free, alignUp(uint64(len(cmdline)+1), pageSize), pageSize, lowMemEnd, below4G, false); err != nil {
		return nil, fmt.Errorf("no room for the command line: %w", err)
	}
	if l.Params, err = take(&free, bootParamsSize, pageSize, lowMemEnd, below4G, false); err != nil {
		return nil, fmt.Errorf("no room for the zero page: %w", err)
	}
	l.Entry = l.Kernel.Start + entry64Offset
	l.BootParams = zeroPage(kernel[:hdrEnd], oldParams, l)
	return l, nil
}

// zeroPage is oldParams with the new kernel's setup header (hdr: the
// file's first hdrEnd bytes) and this load's addresses. What described
// the running kernel's own boot is cleared: its EFI handover (this path
// is for firmware without EFI), tboot, the SEV blob, setup_data.
func zeroPage(hdr, oldParams []byte, l *bzLayout) []byte {
	le := binary.LittleEndian
	bp := slices.Clone(oldParams)
	clear(bp[offSetupSects:bpHdrEnd])
	copy(bp[offSetupSects:], hdr[offSetupSects:])
	clear(bp[bpEFIInfo : bpEFIInfo+32])
	clear(bp[bpTbootAddr : bpTbootAddr+8])
	le.PutUint32(bp[bpCCBlobAddress:], 0)
	bp[bpSentinel] = 0
	bp[offTypeOfLoader] = loaderUnknown
	le.PutUint32(bp[offCode32Start:], uint32(l.Kernel.Start))
	le.PutUint64(bp[offSetupData:], 0)
	initrdLen := l.Initrd.size()
	le.PutUint32(bp[offRamdiskImage:], uint32(l.Initrd.Start))
	le.PutUint32(bp[offRamdiskSize:], uint32(initrdLen))
	le.PutUint32(bp[bpExtRamdiskImage:], uint32(l.Initrd.Start>>32))
	le.PutUint32(bp[bpExtRamdiskSize:], uint32(initrdLen>>32))
	le.PutUint32(bp[offCmdLinePtr:], uint32(l.Cmdline.Start))
	le.PutUint32(bp[bpExtCmdLinePtr:], uint32(l.Cmdline.Start>>32))
	return bp
}

// take removes size bytes aligned to align from free, within [lo, hi):
// the lowest fit, or the highest when high is set.
func take(free *[]memRange, size, align, lo, hi uint64, high bool) (memRange, error) {
	best, bestI := memRange{}, -1
	for i, r := range *free {
		s, e := max(r.Start, lo), min(r.End, hi)
		if e <= s || e-s < size {
			continue
		}
		var at uint64
		if high {
			at = alignDown(e-size, align)
			if at < s {
				continue
			}
		} else {
			at = alignUp(s, align)
			if at+size > e || at < s {
				continue
			}
		}
		if bestI < 0 || (high && at > best.Start) || (!high && at < best.Start) {
			best, bestI = memRange{at, at + size}, i
		}
	}
	if bestI < 0 {
		return memRange{}, fmt.Errorf("no free RAM of %#x bytes aligned to %#x in [%#x, %#x)", size, align, lo, hi)
	}
	r := (*free)[bestI]
	var rest []memRange
	if r.Start < best.Start {
		rest = append(rest, memRange{r.Start, best.Start})
	}
	if best.End < r.End {
		rest = append(rest, memRange{best.End, r.End})
	}
	*free = slices.Replace(*free, bestI, bestI+1, rest...)
	return best, nil
}

// reserve removes [r.Start, r.End) from free, which must hold it whole.
func reserve(free *[]memRange, r memRange) error {
	for i, f := range *free {
		if f.Start <= r.Start && r.End <= f.End {
			var rest []memRange
			if f.Start < r.Start {
				rest = append(rest, memRange{f.Start, r.Start})
			}
			if r.End < f.End {
				rest = append(rest, memRange{r.End, f.End})
			}
			*free = slices.Replace(*free, i, i+1, rest...)
			return nil
		}
	}
	return fmt.Errorf("[%#x, %#x) is not in free RAM", r.Start, r.End)
}

// pageAligned shrinks each range inward to whole pages and drops what is
// left empty.
func pageAligned(rs []memRange) []memRange {
	var out []memRange
	for _, r := range rs {
		s, e := alignUp(r.Start, pageSize), alignDown(r.End, pageSize)
		if s < e {
			out = append(out, memRange{s, e})
		}
	}
	slices.SortFunc(out, func(a, b memRange) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	return out
}

func alignUp(v, a uint64) uint64   { return (v + a - 1) &^ (a - 1) }
func alignDown(v, a uint64) uint64 { return v &^ (a - 1) }
