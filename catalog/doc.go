// Package catalog is the borrower's image B catalogue: for each named image,
// a checked kernel (an x86 bzImage), a checked initramfs, B's kernel command
// line, their SHA-256 digests and sizes, and optionally a bundle of the
// kernel modules B needs for the transfer that initrd(B) lacks, which the
// agent appends to initrd(B) as one uncompressed newc segment.
//
// Dir keeps the catalogue as files: one directory per image holding the
// copied kernel, initrd, module bundle and a JSON manifest. Every change is
// atomic: an image is assembled in a temporary directory and renamed into
// place, and removed by renaming it away first, so a reader sees a whole
// image or none. Callers that want another store use the Catalog interface.
package catalog
