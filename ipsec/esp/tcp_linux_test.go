package esp

import (
	"bufio"
	"errors"
	"ferry/internal/netnstest"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// pattern is a known, non-repeating-at-small-periods byte stream.
type pattern struct{ i uint64 }

func (p *pattern) Read(b []byte) (int, error) {
	for k := range b {
		x := p.i * 0x9e3779b97f4a7c15
		b[k] = byte(x >> 56)
		p.i++
	}
	return len(b), nil
}

// listen opens a TCP listener on addr inside ns.
func listen(t testing.TB, ns *netnstest.NS, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	var err error
	ns.Do(t, func() { l, err = net.Listen("tcp4", addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func dial(t testing.TB, ns *netnstest.NS, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = net.DialTimeout("tcp4", addr, 5*time.Second) })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// transfer sends n pattern bytes from a dialer in src to a listener in dst
// and returns an error unless every byte arrived intact.
func transfer(t testing.TB, l net.Listener, c net.Conn, n int64) error {
	got := make(chan error, 1)
	go func() {
		s, err := l.Accept()
		if err != nil {
			got <- err
			return
		}
		defer s.Close()
		got <- compare(bufio.NewReaderSize(s, 1<<16), n)
	}()
	_, err := io.Copy(c, io.LimitReader(&pattern{}, n))
	c.Close()
	if err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	return <-got
}

func compare(r io.Reader, n int64) error {
	want, buf := &pattern{}, make([]byte, 1<<16)
	exp := make([]byte, 1<<16)
	var off int64
	for {
		k, err := r.Read(buf)
		want.Read(exp[:k])
		for i := 0; i < k; i++ {
			if buf[i] != exp[i] {
				return fmt.Errorf("byte %d is %#x, want %#x", off+int64(i), buf[i], exp[i])
			}
		}
		off += int64(k)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("after %d bytes: %w", off, err)
		}
	}
	if off != n {
		return fmt.Errorf("received %d bytes, want %d", off, n)
	}
	return nil
}

func TestTCPThroughUserspaceESPArrivesByteForByte(t *testing.T) {
	a, b := topology(t, 1500)
	l := listen(t, b.ns, "10.32.2.1:5001")
	c := dial(t, a.ns, "10.32.2.1:5001")
	const n = 20 << 20
	if err := transfer(t, l, c, n); err != nil {
		t.Fatal(err)
	}
	sa, sb := a.plane.Stats(), b.plane.Stats()
	if sa.TxBytes < n || sb.RxBytes < n {
		t.Errorf("payload did not go through ESP: a %+v, b %+v", sa, sb)
	}
	if sb.DropAuth+sb.DropNoSA+sb.DropMalformed+sb.DropPolicy+sa.DropAuth != 0 {
		t.Errorf("unexpected drops: a %+v, b %+v", sa, sb)
	}
	t.Logf("a: %+v", sa)
	t.Logf("b: %+v", sb)
}
