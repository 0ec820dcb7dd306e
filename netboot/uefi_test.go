package netboot

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// httpBootClient is what UEFI HTTP boot firmware (edk2's HttpBootDxe)
// sends: vendor class HTTPClient, architecture 16 (x64 UEFI HTTP).
func httpBootClient(mac net.HardwareAddr, arch iana.Arch) []dhcpv4.Modifier {
	return []dhcpv4.Modifier{
		dhcpv4.WithHwAddr(mac),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016:UNDI:003001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(arch)),
	}
}

// efiROMServer is a test server whose TFTP root holds a fake ipxe.efi.
func efiROMServer(t *testing.T, mode Mode) *Server {
	t.Helper()
	cfg := testConfig(mode, nil)
	cfg.TFTPRoot = t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg.TFTPRoot, "ipxe.efi"), []byte("MZ-EFI-IPXE"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, testPolicy(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Each option 93 type a PXE ROM may send, and what it gets: the BIOS
// build, the x86-64 EFI build for both codes firmware uses for x64 UEFI,
// nothing for architectures iPXE has no binary for here.
func TestPXEArchChoosesTheIPXEBuild(t *testing.T) {
	for _, mode := range []Mode{ModeDHCP, ModeProxyDHCP} {
		s := newTestServer(t, mode, testPolicy(t), nil)
		for _, c := range []struct {
			arch iana.Arch
			want string
		}{
			{iana.INTEL_X86PC, "undionly.kpxe"},
			{iana.EFI_X86_64, "ipxe.efi"}, // 7: OVMF and most x64 UEFI firmware
			{iana.EFI_BC, "ipxe.efi"},     // 9: RFC 4578's x86-64 code
			{iana.EFI_IA32, ""},
			{iana.EFI_ARM64, ""},
			{iana.EFI_X86_64_HTTP, ""}, // an HTTP type from a PXEClient is nonsense
		} {
			r, err := s.reply(bg, discover(t, pxeROM(macKnown, c.arch)), portDHCP)
			if c.want == "" {
				if !errors.Is(err, errIgnore) {
					t.Errorf("%s arch %d: answered %v, want silence", mode, c.arch, r)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s arch %d: %v", mode, c.arch, err)
			}
			if r.BootFileNameOption() != c.want || r.TFTPServerName() != "10.42.0.1" || r.ClassIdentifier() != "PXEClient" {
				t.Errorf("%s arch %d: file %q via %q class %q, want %q over TFTP from 10.42.0.1 as PXEClient",
					mode, c.arch, r.BootFileNameOption(), r.TFTPServerName(), r.ClassIdentifier(), c.want)
			}
		}
	}
}

// iPXE's EFI build says arch 7 and user class iPXE: it gets its script,
// not the binary it already is.
func TestIPXEEFIGetsItsScript(t *testing.T) {
	s := newTestServer(t, ModeDHCP, testPolicy(t), nil)
	mods := append(pxeROM(macKnown, iana.EFI_X86_64), dhcpv4.WithUserClass("iPXE", false))
	r := mustReply(t, s, discover(t, mods), portDHCP)
	if !strings.HasPrefix(r.BootFileNameOption(), "http://10.42.0.1:8080/ipxe/") {
		t.Fatalf("iPXE EFI got boot file %q, want its script URL", r.BootFileNameOption())
	}
}

// A UEFI HTTP boot client gets an address, vendor class HTTPClient (the
// firmware drops offers without it) and a URL ending in .efi that serves
// iPXE's EFI build as application/efi; in ProxyDHCP the same without the
// address.
func TestHTTPBootGetsTheEFIBuildByURL(t *testing.T) {
	for _, mode := range []Mode{ModeDHCP, ModeProxyDHCP} {
		s := efiROMServer(t, mode)
		r := mustReply(t, s, discover(t, httpBootClient(macKnown, iana.EFI_X86_64_HTTP)), portDHCP)
		if r.ClassIdentifier() != "HTTPClient" {
			t.Errorf("%s: option 60 %q, want HTTPClient", mode, r.ClassIdentifier())
		}
		if mode == ModeDHCP && r.YourIPAddr.IsUnspecified() {
			t.Errorf("dhcp: HTTP boot client got no address")
		}
		if r.Options.Has(dhcpv4.OptionVendorSpecificInformation) || r.TFTPServerName() != "" {
			t.Errorf("%s: PXE options (43, 66) sent to an HTTP boot client", mode)
		}
		u := r.BootFileNameOption()
		if !strings.HasPrefix(u, "http://10.42.0.1:8080/efi/") || !strings.HasSuffix(u, "/ipxe.efi") {
			t.Fatalf("%s: boot file %q, want http://10.42.0.1:8080/efi/TOKEN/ipxe.efi", mode, u)
		}
		path := strings.TrimPrefix(u, s.cfg.HTTPBase)
		rec := get(s, path)
		if rec.Code != http.StatusOK || rec.Body.String() != "MZ-EFI-IPXE" || rec.Header().Get("Content-Type") != "application/efi" {
			t.Fatalf("%s: GET %s: %d %q %q", mode, path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
		}
		// The token is the file's only key: another name, a forged token
		// or a script token do not serve it.
		tok := strings.Split(path, "/")[2]
		for _, bad := range []string{"/efi/" + tok + "/undionly.kpxe", "/efi/" + tok + "/..%2fetc%2fpasswd",
			"/efi/" + tok[:len(tok)-2] + "AA/ipxe.efi",
			"/efi/" + strings.TrimPrefix(s.scriptURL(macKnown, netip.Addr{}), s.cfg.HTTPBase+"/ipxe/") + "/ipxe.efi"} {
			if rec := get(s, bad); rec.Code != http.StatusNotFound {
				t.Errorf("%s: GET %s: %d, want 404", mode, bad, rec.Code)
			}
		}
	}
}

func TestHTTPBootOtherArchIsIgnored(t *testing.T) {
	s := efiROMServer(t, ModeDHCP)
	for _, a := range []iana.Arch{iana.EFI_ARM64_HTTP, iana.EFI_X86_HTTP, iana.EFI_X86_64} {
		if r, err := s.reply(bg, discover(t, httpBootClient(macKnown, a)), portDHCP); !errors.Is(err, errIgnore) {
			t.Errorf("HTTP boot arch %d: answered %v, want silence", a, r)
		}
	}
}

func TestHTTPBootUnknownMACIgnored(t *testing.T) {
	s := efiROMServer(t, ModeDHCP)
	if r, err := s.reply(bg, discover(t, httpBootClient(macUnknown, iana.EFI_X86_64_HTTP)), portDHCP); !errors.Is(err, errIgnore) {
		t.Fatalf("unknown MAC got %v", r)
	}
}

func get(s *Server, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

// Debian's ipxe package installs /usr/lib/ipxe/ipxe.efi as a symlink to
// /boot/ipxe.efi, outside the TFTP root: the configured names are served
// wherever their symlinks lead (only they: the client names nothing else).
func TestEFIBuildBehindAnAbsoluteSymlink(t *testing.T) {
	cfg := testConfig(ModeDHCP, nil)
	cfg.TFTPRoot = t.TempDir()
	boot := filepath.Join(t.TempDir(), "ipxe.efi")
	os.WriteFile(boot, []byte("MZ-EFI-IPXE"), 0o644)
	if err := os.Symlink(boot, filepath.Join(cfg.TFTPRoot, "ipxe.efi")); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, testPolicy(t))
	if err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(s.romURL(macKnown), s.cfg.HTTPBase)
	if rec := get(s, path); rec.Code != http.StatusOK || rec.Body.String() != "MZ-EFI-IPXE" {
		t.Fatalf("GET %s: %d %q", path, rec.Code, rec.Body.String())
	}
	r, err := s.newTFTPReader()
	if err != nil {
		t.Fatal(err)
	}
	f, size, err := r.open("ipxe.efi")
	if err != nil || size != int64(len("MZ-EFI-IPXE")) {
		t.Fatalf("tftp open ipxe.efi: %d, %v", size, err)
	}
	f.Close()
}

func TestIPXEFileNamesStayInTheTFTPRoot(t *testing.T) {
	for _, bad := range []string{"../ipxe.efi", "/boot/ipxe.efi", "efi/ipxe.efi"} {
		cfg := testConfig(ModeDHCP, nil)
		cfg.EFIFile = bad
		if _, err := New(cfg, testPolicy(t)); err == nil {
			t.Errorf("EFIFile %q accepted", bad)
		}
	}
}
