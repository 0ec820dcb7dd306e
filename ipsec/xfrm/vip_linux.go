package xfrm

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"ferry/ipsec/dataplane"
)

// hostRoutes gives an initiator's virtual IP to the kernel, as strongSwan's
// kernel-netlink does: the address on the device that leads to the
// gateway and, for every remote traffic selector, a route with the virtual
// IP as its source. Without them a locally made packet has no route to
// the remote subnet, or leaves with the device's own address, which the
// out policy (virtual IP -> remote subnet) does not match.
//
// Both are reference counted: after a CHILD_SA rekey the old and the new
// SA share them, and removing the old one must not take them away.
type hostRoutes struct {
	h      *netlink.Handle // NETLINK_ROUTE
	log    *slog.Logger
	addrs  map[netip.Prefix]*heldAddr
	routes map[netip.Prefix]*heldRoute
}

type heldAddr struct{ link, refs int }

// heldRoute is a route this plane put in, with the source it has now.
type heldRoute struct {
	refs int
	src  netip.Addr
	link int
}

func newHostRoutes(h *netlink.Handle, log *slog.Logger) *hostRoutes {
	return &hostRoutes{h: h, log: log, addrs: map[netip.Prefix]*heldAddr{}, routes: map[netip.Prefix]*heldRoute{}}
}

// hold adds sa's virtual IP and routes (no-op without a virtual IP).
func (r *hostRoutes) hold(sa dataplane.ChildSA) error {
	vip := sa.VirtualIP
	if !vip.IsValid() {
		return nil
	}
	rt, err := r.routeTo(sa.Remote.Addr())
	if err != nil {
		return err
	}
	if err := r.holdAddr(vip, rt.LinkIndex); err != nil {
		return err
	}
	for i, ts := range sa.TSRemote {
		if ts.Contains(sa.Remote.Addr()) {
			// Its route would take the outer packets to the gateway too.
			r.log.Warn("xfrm: no route for a selector that holds the gateway", "selector", ts, "gateway", sa.Remote.Addr())
			continue
		}
		if err := r.holdRoute(ts, vip.Addr(), rt); err != nil {
			r.release(dataplane.ChildSA{VirtualIP: vip, TSRemote: sa.TSRemote[:i]})
			return err
		}
	}
	return nil
}

// routeTo is the kernel's route to the gateway: its device and next hop
// carry the inner routes too.
func (r *hostRoutes) routeTo(gw netip.Addr) (netlink.Route, error) {
	rs, err := r.h.RouteGet(ip(gw))
	if err != nil || len(rs) == 0 {
		return netlink.Route{}, fmt.Errorf("xfrm: virtual IP: no route to gateway %s: %v", gw, err)
	}
	return rs[0], nil
}

func (r *hostRoutes) holdAddr(vip netip.Prefix, link int) error {
	if a := r.addrs[vip]; a != nil {
		a.refs++
		return nil
	}
	dev := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: link}}
	err := r.h.AddrAdd(dev, &netlink.Addr{IPNet: ipnet(vip)})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("xfrm: virtual IP %s on ifindex %d: %w", vip, link, err)
	}
	r.addrs[vip] = &heldAddr{link: link, refs: 1}
	return nil
}

// holdRoute routes ts like the gateway, from src. A route held already
// keeps its references; if the gateway gave a new virtual IP (a
// re-connect), it takes the new source so that packets match the new
// SA's policies.
func (r *hostRoutes) holdRoute(ts netip.Prefix, src netip.Addr, via netlink.Route) error {
	if hr := r.routes[ts]; hr != nil {
		if hr.src != src {
			if err := r.h.RouteReplace(r.route(ts, src, via)); err != nil {
				return fmt.Errorf("xfrm: route %s: new source %s: %w", ts, src, err)
			}
			hr.src, hr.link = src, via.LinkIndex
		}
		hr.refs++
		return nil
	}
	rt := r.route(ts, src, via)
	if err := r.h.RouteReplace(rt); err != nil {
		return fmt.Errorf("xfrm: route %s src %s dev %d: %w", ts, src, via.LinkIndex, err)
	}
	r.routes[ts] = &heldRoute{refs: 1, src: src, link: via.LinkIndex}
	return nil
}

func (r *hostRoutes) route(ts netip.Prefix, src netip.Addr, via netlink.Route) *netlink.Route {
	rt := &netlink.Route{Dst: ipnet(ts), Src: ip(src), LinkIndex: via.LinkIndex, Gw: via.Gw}
	if via.Gw == nil {
		rt.Scope = netlink.SCOPE_LINK
	}
	return rt
}

// release drops sa's references; the last one removes route or address.
func (r *hostRoutes) release(sa dataplane.ChildSA) {
	vip := sa.VirtualIP
	if !vip.IsValid() {
		return
	}
	for _, ts := range sa.TSRemote {
		hr := r.routes[ts]
		if hr == nil {
			continue // never routed (it holds the gateway)
		}
		if hr.refs--; hr.refs > 0 {
			continue
		}
		r.delRoute(ts, hr)
	}
	a := r.addrs[vip]
	if a == nil {
		return
	}
	if a.refs--; a.refs > 0 {
		return
	}
	r.delAddr(vip, a)
}

func (r *hostRoutes) delRoute(ts netip.Prefix, hr *heldRoute) {
	delete(r.routes, ts)
	err := r.h.RouteDel(&netlink.Route{Dst: ipnet(ts), Src: ip(hr.src), LinkIndex: hr.link})
	if err != nil && !errors.Is(err, unix.ESRCH) {
		r.log.Warn("xfrm: removing route", "prefix", ts, "err", err)
	}
}

func (r *hostRoutes) delAddr(vip netip.Prefix, a *heldAddr) {
	delete(r.addrs, vip)
	dev := &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: a.link}}
	if err := r.h.AddrDel(dev, &netlink.Addr{IPNet: ipnet(vip)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		r.log.Warn("xfrm: removing virtual IP", "prefix", vip, "err", err)
	}
}

// releaseAll removes every route and address, whatever their counts: the
// end of the lease.
func (r *hostRoutes) releaseAll() {
	for ts, hr := range r.routes {
		r.delRoute(ts, hr)
	}
	for vip, a := range r.addrs {
		r.delAddr(vip, a)
	}
}
