// Package kexec loads a Linux kernel and initramfs into memory and reboots
// into it without going through firmware, as the "kexec" phase of a ferry
// transfer does to start image B.
//
// Load tries kexec_file_load(2) first: the kernel parses and places the
// bzImage itself. It falls back to kexec_load(2), with u-root's userspace
// bzImage loader and purgatory, only for failures that path can fix: a
// kernel built without KEXEC_FILE, or a file loader that rejects the image's
// format or signature. Under kernel lockdown both syscalls fail with EPERM,
// so there is no fallback for that.
//
// The bzImage header parser and the command line helpers are portable and
// tested on any machine; the syscalls live in _linux.go files.
package kexec
