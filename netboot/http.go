package netboot

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path"
	"time"

	"ferry/internal/httpstall"
)

// Handler serves the per-boot iPXE scripts (/ipxe/TOKEN), the files
// they name (/f/TOKEN) and, for UEFI HTTP boot, iPXE's EFI build
// (/efi/TOKEN/NAME). Every other path is 404: this is no file server.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ipxe/{token}", s.serveScript)
	mux.HandleFunc("GET /f/{token}", s.serveFile)
	mux.HandleFunc("GET /efi/{token}/{name}", s.serveROM)
	return httpstall.Handler(mux, s.cfg.HTTPStall)
}

// scriptURL is what iPXE gets as its DHCP boot file name; leased is the
// address this server's DHCP gave mac with it (invalid in ProxyDHCP).
func (s *Server) scriptURL(mac net.HardwareAddr, leased netip.Addr) string {
	t := &ticket{Kind: kindScript, Expires: s.now().Add(s.cfg.URLLifetime), MAC: mac, Addr: leased}
	return s.cfg.HTTPBase + "/ipxe/" + s.seal.seal(t)
}

// romURL is what a UEFI HTTP boot client gets as its boot file: iPXE's
// EFI build behind a sealed token for mac. The name at the end is the
// file's own: the firmware tells an EFI image from a disk image by the
// ".efi" at the end of the URL (or the media type).
func (s *Server) romURL(mac net.HardwareAddr) string {
	t := &ticket{Kind: kindROM, Expires: s.now().Add(s.cfg.URLLifetime), MAC: mac}
	return s.cfg.HTTPBase + "/efi/" + s.seal.seal(t) + "/" + path.Base(s.cfg.EFIFile)
}

func (s *Server) serveROM(w http.ResponseWriter, r *http.Request) {
	log := s.log.With("remote", r.RemoteAddr, "path", "/efi")
	t, err := s.seal.open(r.PathValue("token"), kindROM)
	if err == nil && r.PathValue("name") != path.Base(s.cfg.EFIFile) {
		err = errors.New("file name is not the EFI build's")
	}
	if err != nil {
		log.Warn("netboot: EFI binary refused", "err", err)
		s.cfg.Events.Transfer("http", "rom", "refused", 0)
		http.NotFound(w, r)
		return
	}
	log = log.With("mac", t.MAC.String(), "file", s.cfg.EFIFile)
	f, _, err := openROM(s.cfg.TFTPRoot, []string{s.cfg.EFIFile}, s.cfg.EFIFile)
	if err != nil {
		log.Error("netboot: EFI binary", "err", err)
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/efi")
	w.Header().Set("Cache-Control", "no-store")
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, "", time.Time{}, f)
	log.Info("netboot: EFI binary served")
	s.cfg.Events.Transfer("http", "rom", "served", cw.n)
}

func (s *Server) serveScript(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	log := s.log.With("remote", r.RemoteAddr, "path", "/ipxe")
	t, err := s.seal.open(r.PathValue("token"), kindScript)
	if err != nil {
		log.Warn("netboot: script refused", "err", err)
		s.cfg.Events.Transfer("http", "script", "refused", 0)
		http.NotFound(w, r)
		return
	}
	log = log.With("mac", t.MAC.String())
	from, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		log.Warn("netboot: script refused: no source address", "err", err)
		s.cfg.Events.Transfer("http", "script", "refused", 0)
		http.NotFound(w, r)
		return
	}
	spec, err := s.policy.Boot(r.Context(), Fetch{MAC: t.MAC, Leased: t.Addr, From: from.Addr().Unmap()})
	if err == nil {
		err = checkSpec(spec)
	}
	if err != nil {
		log.Warn("netboot: script refused by policy", "err", err)
		s.cfg.Events.Transfer("http", "script", "refused", 0)
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrUnknownMachine):
			status = http.StatusNotFound
		case errors.Is(err, ErrRefused):
			status = http.StatusForbidden
		}
		http.Error(w, http.StatusText(status), status)
		return
	}
	exp := s.now().Add(s.cfg.URLLifetime)
	id := s.boots.add(&boot{mac: t.MAC, spec: *spec, expires: exp}, s.now())
	k := s.seal.seal(&ticket{Kind: kindKernel, Expires: exp, Boot: id, MAC: t.MAC})
	i := s.seal.seal(&ticket{Kind: kindInitrd, Expires: exp, Boot: id, MAC: t.MAC})
	log.Info("netboot: script served")
	s.cfg.Events.Transfer("http", "script", "served", 0)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	n, _ := io.WriteString(w, ipxeScript(s.cfg.HTTPBase+"/f/"+k, s.cfg.HTTPBase+"/f/"+i, spec.Cmdline))
	s.observe(Event{MAC: t.MAC, Step: StepScript, Start: start, End: s.now(), Bytes: int64(n)})
}

func checkSpec(b *BootSpec) error {
	if b == nil {
		return errors.New("policy returned no boot spec")
	}
	for _, a := range []struct {
		name string
		a    Artifact
	}{{"kernel", b.Kernel}, {"initrd", b.Initrd}} {
		if a.a.Open == nil && a.a.Path == "" {
			return errors.New("boot spec: " + a.name + " has neither Path nor Open")
		}
	}
	return checkCmdline(b.Cmdline)
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	log := s.log.With("remote", r.RemoteAddr, "path", "/f")
	t, err := s.seal.open(r.PathValue("token"), kindKernel, kindInitrd)
	if err != nil {
		log.Warn("netboot: file refused", "err", err)
		s.cfg.Events.Transfer("http", "file", "refused", 0)
		http.NotFound(w, r)
		return
	}
	b, ok := s.boots.get(t.Boot, s.now())
	if !ok || b.mac.String() != t.MAC.String() {
		log.Warn("netboot: file refused: boot no longer held", "mac", t.MAC.String())
		s.cfg.Events.Transfer("http", "file", "refused", 0)
		http.NotFound(w, r)
		return
	}
	a, name := b.spec.Kernel, StepKernel
	if t.Kind == kindInitrd {
		a, name = b.spec.Initrd, StepInitrd
	}
	log = log.With("mac", t.MAC.String(), "file", name)
	cw := &countingWriter{ResponseWriter: w}
	err = serveArtifact(r.Context(), cw, r, a)
	s.observe(Event{MAC: t.MAC, Step: name, Start: start, End: s.now(), Bytes: cw.n, Err: err})
	if err != nil {
		log.Error("netboot: file failed", "err", err)
		s.cfg.Events.Transfer("http", "file", "failed", cw.n)
		return
	}
	log.Info("netboot: file served", "bytes", cw.n)
	s.cfg.Events.Transfer("http", "file", "served", cw.n)
}

// serveArtifact streams a; a local file gets Range and HEAD support.
func serveArtifact(ctx context.Context, w http.ResponseWriter, r *http.Request, a Artifact) error {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	if a.Open != nil {
		rc, err := a.Open(ctx)
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return err
		}
		defer rc.Close()
		_, err = io.Copy(w, rc)
		return err
	}
	f, err := os.Open(a.Path)
	if err != nil {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return err
	}
	defer f.Close()
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

// discard is a logger for when Config.Log is nil.
func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
