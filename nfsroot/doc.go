// Package nfsroot turns the borrower's NFS export into the lent server's
// root file system: it builds the kernel's NFS mount options (there is no
// mount.nfs helper, no resolver and no statd in an initramfs), mounts the
// export with bounded retries, places ferry's state directory at the same
// path inside the new root (on a tmpfs by default, so keys stay in RAM),
// and switches root like util-linux's switch_root: move /dev, /proc, /sys
// and /run, delete the initramfs without crossing mounts, and exec the
// borrower's init.
//
// Option building and path resolution are portable and pure; everything
// that mounts, deletes or execs lives in _linux.go files.
package nfsroot
