package lender

import (
	"context"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestNetbootStepsAreRecordedAsPhases: what the lender's netboot sees of
// a lent server's boot (iPXE's DHCP, the script, the kernel and initrd
// downloads with their bytes) shows among the server's phases, before
// anything the agent reports: the timeline before image A runs.
func TestNetbootStepsAreRecordedAsPhases(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	l, err := f.m.RequestLease(ctx, leaseReq("key-00000077", 1))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd")
	os.WriteFile(kernel, make([]byte, 3000), 0o644)
	os.WriteFile(initrd, make([]byte, 5000), 0o644)
	srv, err := netbootServer(f.m, NetbootConfig{Interface: "lo", ServerIP: "10.54.4.1", Mode: "dhcp",
		PoolFirst: "10.54.4.100", PoolLast: "10.54.4.150", Prefix: "10.54.4.0/24", KernelA: kernel, InitrdA: initrd})
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC(macOf(0))
	ipxe := dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE"))
	disc, _ := dhcpv4.NewDiscovery(mac, ipxe)
	offer, err := srv.Answer(ctx, disc)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := dhcpv4.NewRequestFromOffer(offer, ipxe)
	ack, err := srv.Answer(ctx, req)
	if err != nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("no ACK: %v %v", ack, err)
	}
	get := func(url string) string {
		r := httptest.NewRequest("GET", url, nil)
		r.RemoteAddr = ack.YourIPAddr.String() + ":4000"
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, r)
		b, _ := io.ReadAll(w.Result().Body)
		return string(b)
	}
	script := get(strings.TrimPrefix(ack.BootFileNameOption(), "http://10.54.4.1:8080"))
	urls := regexp.MustCompile(`/f/[^ \n]+`).FindAllString(script, -1)
	if len(urls) != 2 {
		t.Fatalf("script names %d files:\n%s", len(urls), script)
	}
	for _, u := range urls {
		get(u)
	}
	got, err := f.m.Lease(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	bytes := map[string]int64{}
	for _, p := range got.Servers[0].Phases {
		seen = append(seen, p.Phase)
		bytes[p.Phase] = p.Bytes
		if p.End.Before(p.Start) || p.Error != "" {
			t.Errorf("phase %+v", p)
		}
	}
	want := []string{"pxe-dhcp-ipxe", "pxe-script", "pxe-kernel", "pxe-initrd"}
	if strings.Join(seen, " ") != strings.Join(want, " ") || bytes["pxe-kernel"] != 3000 || bytes["pxe-initrd"] != 5000 {
		t.Fatalf("phases %v (bytes %v), want %v with the kernel's 3000 and the initrd's 5000 bytes", seen, bytes, want)
	}
}
