// Package kmod finds and loads Linux kernel modules without kmod or depmod.
//
// Distribution kernel packages ship their modules but no modules.dep: depmod
// runs at install time, and an initramfs built from an unpacked package has
// never seen it. kmod therefore reads each module's own .modinfo section
// (name=, depends=, vermagic=) with debug/elf, orders the modules so that
// dependencies load first, and loads them with finit_module(2).
//
// Compressed modules (.ko.xz, .ko.zst, .ko.gz) are decompressed in memory
// and loaded with init_module(2). Devices are matched to drivers as udev's
// coldplug does: each device's modalias against the modules' alias
// patterns (modules.alias where depmod wrote one, .modinfo otherwise).
package kmod
