// Package kexectest makes kernel images for tests: the setup sectors of a
// bzImage, as kexec.ParseBzImage and the image B catalogue read them. It
// spells the offsets out (it cannot import kexec, whose own tests use it);
// kexec's tests parse what it makes, so the two cannot drift apart.
package kexectest

import "encoding/binary"

// BzImage is the first five setup sectors of a bzImage of boot protocol
// protocol (0x020f is 2.15) with version as its version string, laid out
// as a Debian kernel's are: 4 setup sectors, loaded high, relocatable, a
// 64-bit entry point, loadable above 4 GiB, a 2047-byte command line.
func BzImage(protocol uint16, version string) []byte {
	b := make([]byte, 5*512)
	le := binary.LittleEndian
	b[0x1f1] = 4                    // setup_sects
	le.PutUint16(b[0x1fe:], 0xaa55) // boot_flag
	copy(b[0x202:], "HdrS")         // header
	le.PutUint16(b[0x206:], protocol)
	b[0x211] = 0x01              // loadflags: LOADED_HIGH
	b[0x234] = 1                 // relocatable_kernel
	le.PutUint16(b[0x236:], 0x3) // xloadflags: XLF_KERNEL_64, XLF_CAN_BE_LOADED_ABOVE_4G
	le.PutUint32(b[0x238:], 2047)
	const verAt = 0x300
	le.PutUint16(b[0x20e:], verAt-0x200) // kernel_version, from the end of the boot sector
	copy(b[verAt:], version+"\x00")
	return b
}
