// Package initrd reads, checks, builds and patches Linux initramfs images.
//
// An initramfs is any number of concatenated segments, each a newc cpio
// archive, either uncompressed or compressed with gzip, bzip2, lzma, xz,
// zstd or lz4 (legacy format), with zero padding allowed between segments.
// The kernel unpacks the segments in order, so a later segment can add or
// override files. Scan walks such a file the way the kernel's
// unpack_to_rootfs does and reports, with file name, segment number and
// byte offset, anything the kernel would refuse.
//
// Patch appends one segment to an image without decompressing or rewriting
// the original bytes; Build writes a small deterministic image from scratch.
// Every input is treated as untrusted: names, sizes and decompressed lengths
// are bounded and every refusal is an error naming where it happened.
package initrd
