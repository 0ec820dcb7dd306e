// Package rootprep prepares and retires the per-server NFS roots of a
// borrower: Prepare copies a template directory into Roots/NAME, and at the
// lease's return Archive packs a root into a tar.zst file and removes it, or
// Delete removes it.
//
// The copy keeps what a root file system needs: modes (setuid included),
// owners, symlinks (copied as they are, never followed: an absolute target
// is meant for the lent server's view of its root), hard links, device
// nodes, FIFOs, extended attributes where the destination takes them, and
// times. File data is reflinked (FICLONE) when source and destination share
// a file system that supports it, else copied with copy_file_range, else
// read and written. Like cp -x, it does not descend into other file systems
// mounted inside the template. Sockets are refused: they are a running
// program's, never part of a template.
//
// The trees are not trusted: a root is written by its lent server, a
// template by whoever keeps it, possibly while rootprep reads them. Both
// are walked through directory handles, entries opened relative to them
// with O_NOFOLLOW and checked by fstat to be what was looked at, files
// opened O_PATH first so a device swapped in is never opened (see
// at_linux.go): a symlink or a replaced entry makes the copy or archive
// fail, naming it, and nothing outside the tree is read or written.
//
// Every operation is atomic for its readers: a root is built in a hidden
// temporary directory and renamed into place, an archive likewise, and a
// root is renamed away before it is deleted. Prepare, Archive and Delete
// only ever touch names directly under Roots.
package rootprep
