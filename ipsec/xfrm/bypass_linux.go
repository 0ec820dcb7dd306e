package xfrm

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// xfrmUserpolicyInfo mirrors struct xfrm_userpolicy_info (linux/xfrm.h):
// selector (56 bytes), lifetime_cfg (64), lifetime_cur (32), then
// priority, index, dir, action, flags, share; 168 bytes with padding.
type xfrmUserpolicyInfo struct {
	sel      [56]byte
	lft      [8]uint64
	curlft   [4]uint64
	priority uint32
	index    uint32
	dir      uint8
	action   uint8
	flags    uint8
	share    uint8
	_        [4]byte
}

const (
	policyIn    = 0  // XFRM_POLICY_IN
	policyOut   = 1  // XFRM_POLICY_OUT
	policyAllow = 0  // XFRM_POLICY_ALLOW
	selFamilyAt = 40 // offset of xfrm_selector.family
)

// bypass sets per-socket ALLOW policies in both directions on fd, so the
// IKE daemon's packets skip the tunnel policies (what strongSwan's
// kernel-netlink bypass_socket does).
func bypass(fd uintptr, family uint16) error {
	for _, dir := range []uint8{policyIn, policyOut} {
		var p xfrmUserpolicyInfo
		*(*uint16)(unsafe.Pointer(&p.sel[selFamilyAt])) = family
		for i := range p.lft[:4] { // soft/hard byte and packet limits
			p.lft[i] = ^uint64(0)
		}
		p.dir, p.action = dir, policyAllow
		b := (*[unsafe.Sizeof(p)]byte)(unsafe.Pointer(&p))[:]
		opt, lvl := unix.IP_XFRM_POLICY, unix.IPPROTO_IP
		if family == unix.AF_INET6 {
			opt, lvl = unix.IPV6_XFRM_POLICY, unix.IPPROTO_IPV6
		}
		if err := unix.SetsockoptString(int(fd), lvl, opt, string(b)); err != nil {
			return fmt.Errorf("setsockopt(%d, IP_XFRM_POLICY, dir %d, ALLOW): %w", fd, dir, err)
		}
	}
	return nil
}
