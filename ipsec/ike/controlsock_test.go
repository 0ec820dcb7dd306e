package ike

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// A gateway's status answer grows with its SAs (about 1 KB each): a
// thousand of them are over a megabyte, and the borrower's image gate
// reads them all. Control must return the whole answer, not a prefix
// that no longer parses.
func TestControlReadsAStatusOfThousandsOfSAs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sas := make([]SAStatus, 5000)
	for i := range sas {
		sas[i] = SAStatus{State: "established", VirtualIP: "10.90.0.1", Pin: strings.Repeat("ab", 32), Since: strings.Repeat("x", 300)}
	}
	want, _ := json.Marshal(sas)
	if len(want) < 2<<20 {
		t.Fatalf("the answer is %d bytes: make it larger than 2 MiB", len(want))
	}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		bufio.NewReader(c).ReadString('\n')
		c.Write(want)
	}()
	got, err := Control(context.Background(), path, "status")
	if err != nil {
		t.Fatal(err)
	}
	var back []SAStatus
	if err := json.Unmarshal(got, &back); err != nil || len(back) != len(sas) {
		t.Fatalf("Control returned %d of %d bytes: %d SAs, %v", len(got), len(want), len(back), err)
	}
}
