// Package kmod finds and loads Linux kernel modules without kmod or depmod.
//
// Distribution kernel packages ship their modules but no modules.dep: depmod
// runs at install time, and an initramfs built from an unpacked package has
// never seen it. kmod therefore reads each module's own .modinfo section
// (name=, depends=, vermagic=) with debug/elf, orders the modules so that
// dependencies load first, and loads them with finit_module(2).
//
// Only plain .ko files are read; compressed modules (.ko.xz, .ko.zst,
// .ko.gz) are recognised and refused with an error that says so.
package kmod
