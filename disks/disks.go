// Package disks keeps the lent server's local disks untouched: it marks
// every real block device (whole disks and their partitions) read-only in
// the kernel, so that nothing ferry or the borrower's early boot does can
// write to the lender's disks, even by mistake.
//
// Devices are opened O_RDONLY only; the read-only flag is set with the
// BLKROSET ioctl and checked with BLKROGET.
package disks

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Device is a block device found under /sys/block.
type Device struct {
	Name string // kernel name, e.g. "sda1" or "cciss!c0d0p1"
	Dev  string // "MAJOR:MINOR" from sysfs
}

// Node is the /dev path of the device: sysfs writes '/' as '!'.
func (d Device) Node(devDir string) string {
	return filepath.Join(devDir, strings.ReplaceAll(d.Name, "!", "/"))
}

// skipped reports whether a whole-disk name belongs to a virtual device
// that cannot hold the lender's data (RAM disks, loop devices on files in
// RAM, compressed swap in RAM, network block devices).
func skipped(name string) bool {
	for _, p := range []string{"ram", "loop", "zram", "nbd"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// Candidates lists the block devices under sysBlock (normally /sys/block)
// that MarkAllReadOnly protects: every whole device except ram*, loop*,
// zram* and nbd*, followed by its partitions, sorted by name.
func Candidates(sysBlock string) ([]Device, error) {
	ents, err := os.ReadDir(sysBlock)
	if err != nil {
		return nil, fmt.Errorf("list block devices: %w", err)
	}
	var out []Device
	for _, e := range ents {
		name := e.Name()
		if skipped(name) {
			continue
		}
		dir := filepath.Join(sysBlock, name)
		dev, err := readDev(dir)
		if err != nil {
			return nil, err
		}
		out = append(out, Device{Name: name, Dev: dev})
		parts, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("list partitions of %s: %w", name, err)
		}
		var ps []Device
		for _, p := range parts {
			if !strings.HasPrefix(p.Name(), name) {
				continue
			}
			pdir := filepath.Join(dir, p.Name())
			if _, err := os.Stat(filepath.Join(pdir, "partition")); err != nil {
				continue
			}
			pdev, err := readDev(pdir)
			if err != nil {
				return nil, err
			}
			ps = append(ps, Device{Name: p.Name(), Dev: pdev})
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
		out = append(out, ps...)
	}
	return out, nil
}

func readDev(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "dev"))
	if err != nil {
		return "", fmt.Errorf("device number of %s: %w", filepath.Base(dir), err)
	}
	return strings.TrimSpace(string(b)), nil
}
