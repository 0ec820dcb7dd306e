package kexec

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"ferry/kexec/kexectest"
)

// bz64 is a Debian-like x86-64 bzImage (kexectest's setup sectors with the
// fields placement reads: header end, initrd_addr_max, kernel_alignment,
// pref_address, init_size) and codeLen bytes of protected-mode code.
func bz64(codeLen int) []byte {
	b := kexectest.BzImage(0x020f, "6.1.0-57-amd64 #1")
	le := binary.LittleEndian
	b[offJump+1] = 0x6a // header ends at 0x26c
	le.PutUint32(b[offInitrdAddrMax:], 0x7fffffff)
	le.PutUint32(b[offKernelAlignment:], 0x200000)
	le.PutUint64(b[offPrefAddress:], 0x1000000)
	le.PutUint32(b[offInitSize:], 0x3f98000)
	code := bytes.Repeat([]byte{0xc3}, codeLen)
	return append(b, code...)
}

// params is a running kernel's zero page with an e820 map and EFI info.
func params() []byte {
	p := make([]byte, bootParamsSize)
	p[bpE820Entries] = 3
	for i := range 3 * 20 {
		p[0x2d0+i] = byte(i + 1)
	}
	copy(p[bpEFIInfo:], "EL64-not-for-the-next-kernel")
	p[0x1f1] = 0x55 // the running kernel's own header, to be replaced
	p[bpSentinel] = 0xff
	return p
}

// qemuRAM is a 2 GiB guest's usable RAM, the purgatory's page taken.
func qemuRAM(t *testing.T) []memRange {
	ram := pageAligned([]memRange{{0, 0x9fc00}, {0x100000, 0x7ffe0000}})
	if err := reserve(&ram, memRange{0x3000, 0x5000}); err != nil {
		t.Fatal(err)
	}
	return ram
}

func TestPlanBzImageFollowsThe64BitBootProtocol(t *testing.T) {
	kernel := bz64(8 << 20)
	l, err := planBzImage(kernel, 28<<20, "console=ttyS0 ferry.trace=x", params(), qemuRAM(t))
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if l.Kernel.Start != 0x1000000 || l.Kernel.size() != 0x3f98000 || l.Entry != 0x1000200 {
		t.Errorf("kernel at %#x size %#x entry %#x, want pref_address 0x1000000, init_size, +0x200", l.Kernel.Start, l.Kernel.size(), l.Entry)
	}
	if !bytes.Equal(l.Code, kernel[5*512:]) {
		t.Errorf("code is not the file after its 5 setup sectors")
	}
	if l.Initrd.size() != 28<<20 || l.Initrd.End > 0x80000000 || l.Initrd.Start%pageSize != 0 || l.Initrd.Start < 0x7ffe0000-(29<<20) {
		t.Errorf("initrd at [%#x, %#x): want the top of RAM below initrd_addr_max", l.Initrd.Start, l.Initrd.End)
	}
	parts := []memRange{{0x3000, 0x5000}, l.Kernel, {l.Initrd.Start, alignUp(l.Initrd.End, pageSize)}, l.Cmdline, l.Params}
	for i, a := range parts {
		if a.Start < lowMemEnd && i > 0 {
			t.Errorf("part %d at %#x, below 1 MiB", i, a.Start)
		}
		for _, b := range parts[i+1:] {
			if a.Start < b.End && b.Start < a.End {
				t.Errorf("[%#x, %#x) overlaps [%#x, %#x)", a.Start, a.End, b.Start, b.End)
			}
		}
	}
	bp := l.BootParams
	for _, f := range []struct {
		name      string
		got, want uint64
	}{
		{"type_of_loader", uint64(bp[offTypeOfLoader]), 0xff},
		{"code32_start", uint64(le.Uint32(bp[offCode32Start:])), l.Kernel.Start},
		{"ramdisk_image", uint64(le.Uint32(bp[offRamdiskImage:])), l.Initrd.Start},
		{"ramdisk_size", uint64(le.Uint32(bp[offRamdiskSize:])), 28 << 20},
		{"cmd_line_ptr", uint64(le.Uint32(bp[offCmdLinePtr:])), l.Cmdline.Start},
		{"setup_sects", uint64(bp[offSetupSects]), 4},
		{"init_size", uint64(le.Uint32(bp[offInitSize:])), 0x3f98000},
		{"sentinel", uint64(bp[bpSentinel]), 0},
		{"e820_entries", uint64(bp[bpE820Entries]), 3},
		{"efi_info", le.Uint64(bp[bpEFIInfo:]) | le.Uint64(bp[bpEFIInfo+24:]), 0},
	} {
		if f.got != f.want {
			t.Errorf("zero page %s = %#x, want %#x", f.name, f.got, f.want)
		}
	}
	if !bytes.Equal(bp[0x2d0:0x2d0+60], params()[0x2d0:0x2d0+60]) {
		t.Errorf("the firmware's e820 map was not passed on")
	}
	if string(bp[offHeader:offHeader+4]) != "HdrS" {
		t.Errorf("the new kernel's setup header is not in the zero page")
	}
}

func TestPlanBzImageRefusesWhatItCannotLoad(t *testing.T) {
	good := func() []byte { return bz64(1 << 20) }
	le := binary.LittleEndian
	for _, tc := range []struct {
		name   string
		kernel []byte
		initrd int
		params []byte
		ram    []memRange
		want   string
	}{
		{"no 64-bit entry", func() []byte { k := good(); le.PutUint16(k[offXLoadFlags:], 0); return k }(), 0, params(), nil,
			"lacks the 64-bit entry point (protocol 2.15, loadflags 0x01, xloadflags 0x0000)"},
		{"not relocatable", func() []byte { k := good(); k[offRelocatable] = 0; return k }(), 0, params(), nil, "not relocatable"},
		{"odd alignment", func() []byte { k := good(); le.PutUint32(k[offKernelAlignment:], 0x3000); return k }(), 0, params(), nil,
			"kernel_alignment 0x3000 at offset 0x230 is not a power of two"},
		{"setup only", good()[:5*512], 0, params(), nil, "no protected-mode code after its 2560 setup bytes"},
		{"short header", func() []byte { k := good(); k[offJump+1] = 0x20; return k }(), 0, params(), nil, "setup header ends at 0x222"},
		{"short params", good(), 0, params()[:512], nil, "boot_params is 512 bytes, want 4096"},
		{"no e820", good(), 0, func() []byte { p := params(); p[bpE820Entries] = 0; return p }(), nil, "has 0 e820 entries"},
		{"small RAM", good(), 0, params(), []memRange{{0x100000, 0x4000000}}, "no room for the kernel"},
		{"huge initrd", good(), 2000 << 20, params(), nil, "no room for the 2097152000-byte initrd below 0x80000000"},
	} {
		ram := tc.ram
		if ram == nil {
			ram = qemuRAM(t)
		}
		_, err := planBzImage(tc.kernel, tc.initrd, "", tc.params, ram)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestTakeSplitsFreeRAM(t *testing.T) {
	free := []memRange{{0x1000, 0x10000}, {0x100000, 0x400000}}
	lo, err := take(&free, 0x2000, 0x10000, 0, 1<<32, false)
	if err != nil || lo != (memRange{0x100000, 0x102000}) {
		t.Fatalf("low: %v %v", lo, err)
	}
	hi, err := take(&free, 0x3000, 0x1000, 0, 0x300000, true)
	if err != nil || hi != (memRange{0x2fd000, 0x300000}) {
		t.Fatalf("high: %v %v", hi, err)
	}
	want := []memRange{{0x1000, 0x10000}, {0x102000, 0x2fd000}, {0x300000, 0x400000}}
	if len(free) != len(want) {
		t.Fatalf("free %x, want %x", free, want)
	}
	for i := range want {
		if free[i] != want[i] {
			t.Fatalf("free %x, want %x", free, want)
		}
	}
	if _, err := take(&free, 0x200000, 0x1000, 0, 1<<32, false); err == nil {
		t.Fatalf("took 2 MiB from %x", free)
	}
}

// FuzzPlanBzImage: any header bytes either are refused or give parts
// inside free RAM that do not overlap; never a panic.
func FuzzPlanBzImage(f *testing.F) {
	f.Add(bz64(4096)[0x1f1:0x270], uint32(1<<20), uint64(0x7ffe0000))
	f.Fuzz(func(t *testing.T, hdr []byte, initrd uint32, ramEnd uint64) {
		kernel := bz64(4096)
		copy(kernel[0x1f1:0x270], hdr)
		ram := pageAligned([]memRange{{0x100000, 0x100000 + ramEnd%(1<<34)}})
		l, err := planBzImage(kernel, int(initrd%(1<<31)), "quiet", params(), ram)
		if err != nil {
			return
		}
		parts := []memRange{l.Kernel, {l.Initrd.Start, alignUp(l.Initrd.End, pageSize)}, l.Cmdline, l.Params}
		for i, a := range parts {
			if a.size() == 0 {
				continue
			}
			if len(ram) == 0 || a.Start < ram[0].Start || a.End > ram[0].End || a.End > below4G {
				t.Fatalf("part %d [%#x, %#x) outside RAM %x", i, a.Start, a.End, ram)
			}
			for _, b := range parts[i+1:] {
				if b.size() != 0 && a.Start < b.End && b.Start < a.End {
					t.Fatalf("[%#x, %#x) overlaps [%#x, %#x)", a.Start, a.End, b.Start, b.End)
				}
			}
		}
	})
}
