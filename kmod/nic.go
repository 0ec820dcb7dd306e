package kmod

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// NIC drivers for an image that must bring up whatever network card a
// lent server has, chosen without a list of module names: by class (every
// Ethernet driver the kernel has, plus the virtual machines' NICs, which
// live outside drivers/net/ethernet), or by the PCI IDs of the cards a
// fleet is known to have. The agent loads only those whose device is
// present (coldplug), so carrying more costs bytes, not boot time.

// virtualNICs are paravirtual and hypervisor NIC drivers outside
// drivers/net/ethernet.
var virtualNICs = []string{"virtio_net", "vmxnet3", "hv_netvsc", "xen_netfront"}

// NICClasses names the classes NICModules knows.
func NICClasses() []string { return []string{"ethernet", "virtual"} }

// NICModules names the modules of class under the tree: "ethernet" is
// every module under kernel/drivers/net/ethernet plus the virtual NICs;
// "virtual" is the virtual NICs alone.
func (t *Tree) NICModules(class string) ([]string, error) {
	var out []string
	switch class {
	case "ethernet":
		for n, m := range t.ix.files {
			if strings.HasPrefix(m.Rel, "kernel/drivers/net/ethernet/") {
				out = append(out, n)
			}
		}
	case "virtual":
	default:
		return nil, fmt.Errorf("kmod: NIC class %q: want one of %v", class, NICClasses())
	}
	for _, n := range virtualNICs {
		if t.Has(n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// PCIModaliases are the modaliases a network card with PCI vendor:device
// id (hex, "8086:100e") shows in sysfs, with subsystem IDs zero and the
// network controller class (02): what the drivers' pci: aliases match. A
// virtio card (vendor 1af4) also shows the virtio device its bus driver
// creates, which the NIC driver itself (virtio_net) matches.
func PCIModaliases(id string) ([]string, error) {
	v, d, ok := strings.Cut(id, ":")
	vendor, err1 := strconv.ParseUint(v, 16, 16)
	device, err2 := strconv.ParseUint(d, 16, 16)
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("kmod: PCI id %q: want VVVV:DDDD in hex", id)
	}
	out := []string{fmt.Sprintf("pci:v%08Xd%08Xsv%08Xsd%08Xbc02sc00i00", vendor, device, 0, 0)}
	if vendor == 0x1af4 {
		// Transitional ids 1000-103f carry the virtio id in the subsystem
		// (1 for a NIC), modern ones are 1040 + the virtio id.
		vid := uint64(1)
		if device >= 0x1040 {
			vid = device - 0x1040
		}
		out = append(out, fmt.Sprintf("virtio:d%08Xv%08X", vid, vendor))
	}
	return out, nil
}
