// Package debtest holds the test of ferry's Debian package (make
// package-test): the .deb that make package builds is installed into a
// clean root with dpkg, and the lender unit's own command line is run in
// it (chroot, in a network namespace of its own).
package debtest
