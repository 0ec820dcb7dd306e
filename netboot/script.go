package netboot

import (
	"fmt"
	"strings"
)

// maxCmdline is the x86 kernel's COMMAND_LINE_SIZE.
const maxCmdline = 2048

// checkCmdline refuses command lines that would break out of the iPXE
// script line or be expanded by iPXE's ${setting} syntax.
func checkCmdline(s string) error {
	if len(s) > maxCmdline {
		return fmt.Errorf("kernel command line: %d bytes, more than %d", len(s), maxCmdline)
	}
	if i := strings.IndexAny(s, "\x00\r\n"); i >= 0 {
		return fmt.Errorf("kernel command line: control character %q at offset %d", s[i], i)
	}
	if i := strings.Index(s, "${"); i >= 0 {
		return fmt.Errorf("kernel command line: iPXE would expand \"${\" at offset %d", i)
	}
	return nil
}

// ipxeScript is the per-boot script: fetch kernel and initrd by their
// sealed URLs, boot with the policy's command line. initrd= lets EFI
// kernels find the initrd that iPXE registered under that name.
func ipxeScript(kernelURL, initrdURL, cmdline string) string {
	var b strings.Builder
	b.WriteString("#!ipxe\n")
	fmt.Fprintf(&b, "kernel %s initrd=initrd.img %s\n", kernelURL, cmdline)
	fmt.Fprintf(&b, "initrd --name initrd.img %s\n", initrdURL)
	b.WriteString("boot\n")
	return b.String()
}
