package borrower

import (
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"testing"
)

// FreePorts picks free loopback ports for listeners the tests cannot
// hand a listener on :0: the managers are processes of their own, each
// restarted on the port in its configuration, and the keeper takes an
// address. The ports lie below the kernel's ephemeral range (32768 and
// up by default): one from :0, closed again, could be taken by any
// outgoing connection of the tests running beside these before its
// listener binds it. Between the check and that bind the port is free
// again and a later pick could land on it: the set remembers what it
// handed out, so its listeners never get the same port twice. Exported
// for the package's external tests (the lab).
type FreePorts map[string]bool

// Pick is a free port, as 127.0.0.1:PORT.
func (taken FreePorts) Pick(t *testing.T) string {
	for range 200 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+mathrand.IntN(12000))
		if taken[addr] {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			taken[addr] = true
			return addr
		}
	}
	t.Fatal("no free port in 20000-31999")
	return ""
}
