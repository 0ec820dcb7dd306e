// Package netnstest gives tests throwaway Linux network namespaces: make
// one, join two with a veth pair, run a function or a command inside one.
// Only tests import it.
//
// Every namespace is named after a caller's prefix, the test process's
// pid and a sequence number, so parallel packages and runs never collide,
// and every one is deleted through t.Cleanup. A test that cannot have
// namespaces (not root, or no iproute2 `ip`) is skipped, not failed.
//
// Do switches only the calling goroutine's thread. Sockets that goroutines
// started elsewhere open, and child processes, do not follow it: a server
// that must live wholly in a namespace runs as its own process through
// Command (`ip netns exec`).
package netnstest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// seq tells apart the namespaces one test process makes.
var seq atomic.Int32

// NS is a named network namespace and an open handle to it.
type NS struct {
	Name   string
	Handle netns.NsHandle
}

// Require skips t unless it may make network namespaces: root, and
// iproute2's ip on PATH.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root for network namespaces (euid %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("needs iproute2's ip for network namespaces: %v", err)
	}
}

// New makes a fresh network namespace named prefix, the pid and a
// sequence number (see /run/netns), deleted at cleanup. It skips t as
// Require does.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	Require(t)
	name := fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), seq.Add(1))
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("netns %s: current namespace: %v", name, err)
	}
	h, err := netns.NewNamed(name) // leaves this thread in the new namespace
	back := netns.Set(orig)
	orig.Close()
	if back == nil {
		runtime.UnlockOSThread() // else the thread dies with this goroutine
	}
	if err != nil {
		t.Fatalf("netns %s: %v", name, err)
	}
	ns := &NS{Name: name, Handle: h}
	t.Cleanup(func() { h.Close(); netns.DeleteNamed(name) })
	if back != nil {
		t.Fatalf("netns %s: back to the test's namespace: %v", name, back)
	}
	return ns
}

// Do runs f on the calling goroutine's thread, locked and switched into
// ns, and switches it back. Sockets f opens stay in ns; goroutines f
// starts do not run there.
func (ns *NS) Do(t testing.TB, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("netns %s: current namespace: %v", ns.Name, err)
	}
	defer orig.Close()
	if err := netns.Set(ns.Handle); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("setns %s: %v", ns.Name, err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			// The thread stays locked and dies with this goroutine.
			t.Errorf("netns %s: back to the test's namespace: %v", ns.Name, err)
			return
		}
		runtime.UnlockOSThread()
	}()
	f()
}

// Command is `ip netns exec NAME args...`: the whole process, every
// thread of it, runs in ns.
func (ns *NS) Command(args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...)
}

// Run runs args in ns (see Command) with stdin, if not empty, as its
// input, and returns its combined output; it fails t if the command does.
func (ns *NS) Run(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	cmd := ns.Command(args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", ns.Name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// End is one end of a veth pair.
type End struct {
	NS   *NS
	Name string           // the link's name in NS
	Addr netip.Prefix     // put on the link when valid
	MAC  net.HardwareAddr // the link's address when set
	MTU  int              // the link's MTU when not zero
	// Down leaves the link, and NS's loopback, down; else both are set up.
	Down bool
}

// Veth joins a.NS and b.NS with a veth pair and configures each end as it
// says. The links go with their namespaces.
func Veth(t testing.TB, a, b End) {
	t.Helper()
	a.NS.Do(t, func() {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a.Name, MTU: a.MTU, HardwareAddr: a.MAC},
			PeerName: b.Name, PeerMTU: uint32(b.MTU), PeerHardwareAddr: b.MAC, PeerNamespace: netlink.NsFd(int(b.NS.Handle))}
		if err := netlink.LinkAdd(v); err != nil {
			t.Fatalf("veth %s (%s) -- %s (%s): %v", a.Name, a.NS.Name, b.Name, b.NS.Name, err)
		}
	})
	for _, e := range []End{a, b} {
		e.NS.Do(t, func() { e.configure(t) })
	}
}

// configure runs in e.NS.
func (e End) configure(t testing.TB) {
	t.Helper()
	l, err := netlink.LinkByName(e.Name)
	if err != nil {
		t.Fatalf("in %s: link %s: %v", e.NS.Name, e.Name, err)
	}
	if e.Addr.IsValid() {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: e.Addr.Addr().AsSlice(), Mask: net.CIDRMask(e.Addr.Bits(), e.Addr.Addr().BitLen())}}
		if err := netlink.AddrAdd(l, a); err != nil {
			t.Fatalf("in %s: address %s on %s: %v", e.NS.Name, e.Addr, e.Name, err)
		}
	}
	if e.Down {
		return
	}
	for _, name := range []string{"lo", e.Name} {
		l, err := netlink.LinkByName(name)
		if err == nil {
			err = netlink.LinkSetUp(l)
		}
		if err != nil {
			t.Fatalf("in %s: link %s up: %v", e.NS.Name, name, err)
		}
	}
}
