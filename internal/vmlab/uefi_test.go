package vmlab

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestUEFIChain boots the lent server with OVMF instead of SeaBIOS: OVMF's
// own PXE client asks the lender's DHCP as architecture 7, fetches iPXE's
// EFI build over TFTP, iPXE fetches its script, image A enrolls, kexecs B
// under UEFI, and the root comes up over the tunnel; then the return.
// FERRY_LAB=1 runs it (root, QEMU, OVMF, nfs-ganesha; minutes under TCG);
// run it under flock /tmp/ferry-qemu.lock. FERRY_BIN names the ferry
// binary (else it is built), FERRY_CACHE the kernel cache.
func TestUEFIChain(t *testing.T) {
	requireLab(t, "ganesha.nfsd", "tcpdump", "nft", "curl")
	for _, f := range []string{OVMFCode, OVMFVars, "/usr/lib/ipxe/ipxe.efi", "/usr/lib/ipxe/qemu/efi-virtio.rom"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v (Debian's ovmf, ipxe and ipxe-qemu: scripts/ci-deps.sh)", err)
		}
	}
	repo := Repo(t)
	ferry := labFerry(t, repo)
	lab := filepath.Join(repo, "build", "uefi-lab")
	t0 := time.Now()
	im := BuildImages(t, repo, ferry, lab)
	t.Logf("images built in %s", time.Since(t0).Round(time.Second))
	for _, v := range []struct {
		name  string
		noROM bool
	}{{"nic-rom", false}, {"firmware-pxe", true}} {
		t.Run(v.name, func(t *testing.T) { uefiChain(t, ferry, im, filepath.Join(lab, "run-"+v.name), v.noROM) })
	}
	if !t.Failed() {
		t.Logf("UEFI chain runs passed in %s", time.Since(t0).Round(time.Second))
	}
}

// uefiChain is one run: with noROM, OVMF's own PXE client asks (as
// architecture 7) and gets ipxe.efi over TFTP; without, QEMU's iPXE EFI
// ROM is the NIC's driver and asks as iPXE straight away.
func uefiChain(t *testing.T, ferry string, im Images, dir string, noROM bool) {
	os.RemoveAll(dir)
	keepOnFailure(t, dir, "FERRY_LAB_KEEP")
	c := NewChain(t, ChainConfig{Ferry: ferry, Images: im, Dir: dir, DataPlane: "kernel", Firmware: FirmwareUEFI,
		NoNICROM: noROM, ReadyTimeout: 20 * time.Minute})
	ready := c.Request()
	con := c.VM.Console.Text()
	lenderLog, _ := os.ReadFile(c.path("lender.log"))
	// iPXE's banner names its build: "EFI" among the features only in the
	// EFI one. The firmware's own PXE client fetched ipxe.efi over TFTP.
	if m := regexp.MustCompile(`Features: [^\n]*`).FindString(con); !strings.Contains(m, "EFI") {
		c.Fail("iPXE is not its EFI build: %q", m)
	}
	served := regexp.MustCompile(`tftp served.*ipxe\.efi`).Match(lenderLog)
	if noROM && !served {
		c.Fail("the lender never served ipxe.efi over TFTP: OVMF's PXE client did not ask as x64 UEFI")
	}
	if !noROM && served {
		c.Fail("ipxe.efi went over TFTP though the NIC's iPXE ROM should have asked for its script")
	}
	for _, m := range []string{"method=kexec_file_load firmware=uefi", "ferry-root: ready"} {
		if !strings.Contains(con, m) {
			c.Fail("console lacks %q", m)
		}
	}
	t.Logf("UEFI (%s): lease request -> root ready %s", map[bool]string{false: "QEMU's iPXE ROM", true: "OVMF PXE, ipxe.efi by TFTP"}[noROM],
		ready.Round(time.Second))
	t1 := time.Now()
	show, err := c.Return(context.Background())
	if err != nil {
		c.Fail("return: %v\n%s", err, show)
	}
	t.Logf("return -> guest off %s", time.Since(t1).Round(time.Second))
}
