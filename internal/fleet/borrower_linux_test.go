package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/api"
	"ferry/applets"
	"ferry/initrd"
	"ferry/kexec/kexectest"
	"ferry/lender"
	"ferry/lender/lendertest"
	"ferry/pki"
)

const envBorrower = "FERRY_FLEET_BORROWER"

// The borrower's addresses in the gateway's namespace: its image server
// listens on the gateway's inner address, which lent servers reach only
// through their tunnels; the lender's m2m listener is across the veth.
var (
	imageAddr = "10.89.0.1:8443"
	m2mAddr   = "10.88.0.1:0"
)

// borrowerProc is `ferry borrower serve` in a process of its own in the
// gateway's namespace, asking the fleet's lender for the servers and
// telling the gateway (its allow list) which keys may connect.
type borrowerProc struct {
	dir string // its state directory (admin socket)
	pid int
	log *slog.Logger
}

// TestFleetBorrowerProcess is the borrower: `ferry borrower serve`.
func TestFleetBorrowerProcess(t *testing.T) {
	cfg := os.Getenv(envBorrower)
	if cfg == "" {
		t.Skip("helper process")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	env := &applets.Env{Stdin: strings.NewReader(""), Stdout: os.Stdout, Stderr: os.Stderr,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if code := applets.Main(ctx, env, []string{"ferry", "borrower", "serve", "--config", cfg}); code != 0 && ctx.Err() == nil {
		t.Fatalf("borrower exited %d", code)
	}
}

// startBorrower serves the lender's m2m API (mutual TLS, the borrower
// admitted by its CA), adds image B (imageBytes of kernel and initrd) to
// the borrower's catalogue and starts the borrower in namespace ns.
func startBorrower(t *testing.T, dir, ns string, la *lendertest.Agent, bca *pki.CA, gw *responder, imageBytes int) *borrowerProc {
	t.Helper()
	p := func(n string) string { return filepath.Join(dir, n) }
	lorg, err := pki.NewCA("fleet lender org", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		if err := os.WriteFile(p(name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p(name)
	}
	pair := func(ca *pki.CA, name string, id pki.Identity) (string, string) {
		key, cert, err := ca.Issue(id, pki.ECDSAP256, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		kp, err := pki.MarshalKeyPEM(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", pki.CertPEM(cert)), write(name+".key", kp)
	}
	lcert, lkey := pair(lorg, "lender-m2m", pki.Identity{CommonName: "fleet lender m2m", IPs: []net.IP{net.ParseIP("10.88.0.1")}})
	bcert, bkey := pair(bca, "borrower-m2m", pki.Identity{CommonName: "fleet borrower m2m"})
	icert, ikey := pair(bca, "borrower-images", pki.Identity{CommonName: "fleet images", IPs: []net.IP{net.ParseIP("10.89.0.1")}})
	bcaFile, lorgFile := write("borrower-ca.pem", bca.CertPEM()), write("lender-org.pem", lorg.CertPEM())

	// The lender's m2m listener, as `ferry lender serve` makes it.
	quiet := slog.New(slog.DiscardHandler)
	bs, err := lender.LoadBorrowers(lender.Config{M2MCert: lcert, M2MKey: lkey, M2MClientCA: bcaFile}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := bs.TLS(lcert, lkey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", m2mAddr)
	if err != nil {
		t.Fatal(err)
	}
	m2m := &http.Server{Handler: la.M.M2MHandler(bs), TLSConfig: tlsCfg}
	go m2m.ServeTLS(ln, "", "")
	t.Cleanup(func() { m2m.Close() })

	b := &borrowerProc{dir: p("borrower"), log: quiet}
	tmpl := p("template")
	if err := os.MkdirAll(filepath.Join(tmpl, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("template/etc/hostname", []byte("lent\n"))
	kernel, initrdFile := writeImageB(t, dir, imageBytes)
	if out, err := b.ferry(context.Background(), "borrower", "image", "add", "--dir", b.dir, "b1", "--kernel", kernel, "--initrd", initrdFile, "--cmdline", "console=ttyS0"); err != nil {
		t.Fatalf("borrower image add: %v\n%s", err, out)
	}
	cfg, _ := json.Marshal(map[string]any{"dir": b.dir, "lender_url": "https://" + ln.Addr().String(),
		"m2m_cert": bcert, "m2m_key": bkey, "m2m_ca": lorgFile, "borrower_ca": bcaFile,
		"gateway": gatewayAddr.String() + ":500", "allow_file": gw.allow, "gateway_status": gw.status,
		"image_listen": imageAddr, "image_url": "https://" + imageAddr, "image_cert": icert, "image_key": ikey,
		"tunnel_pool": "10.90.0.0/20", "nfs_server": "10.89.0.1", "nfs_export": "/srv/roots",
		// No NFS server: the simulation mounts nothing, and the exports
		// the borrower would restrict are not what is measured.
		"nfs_exports": "none", "default_template": tmpl, "poll_seconds": 1, "status_listen": "off"})
	cfgFile := write("borrower.json", cfg)
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, os.Args[0], "-test.run=^TestFleetBorrowerProcess$", "-test.timeout=60m"}, profileFlag("borrower")...)...)
	cmd.Env = append(os.Environ(), envBorrower+"="+cfgFile, envChild+"=")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b.pid = cmd.Process.Pid
	t.Cleanup(func() { stopProcess(cmd) })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := b.ferry(context.Background(), "borrower", "lease", "list", "--dir", b.dir); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the borrower did not come up in 30 s (its admin socket does not answer)")
		}
	}
	return b
}

// profileFlag asks a helper process for a CPU profile in
// $FERRY_FLEET_PROFILE/NAME.pprof (written when it stops), to see what
// limits it: `go tool pprof -top fleet.test NAME.pprof`.
func profileFlag(name string) []string {
	if dir := os.Getenv("FERRY_FLEET_PROFILE"); dir != "" {
		return []string{"-test.cpuprofile=" + filepath.Join(dir, name+".pprof")}
	}
	return nil
}

// stopProcess ends cmd: SIGTERM, then SIGKILL after 10 s.
func stopProcess(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// ferry runs a ferry command as the CLI does (the borrower's admin socket
// is a file: reachable from any namespace).
func (b *borrowerProc) ferry(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	env := &applets.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, Log: b.log}
	if code := applets.Main(ctx, env, append([]string{"ferry"}, args...)); code != 0 {
		return out.String(), fmt.Errorf("ferry %s: exit %d", strings.Join(args[:min(3, len(args))], " "), code)
	}
	return out.String(), nil
}

var activeLease = regexp.MustCompile(`lease (B[0-9a-f]+)\s+state active`)

// requestLeases asks the borrower for n servers of image b1, as an
// operator would (`ferry borrower lease request`), api.MaxServers per
// request; each returns once the lease is active.
func (b *borrowerProc) requestLeases(ctx context.Context, n int) (int, error) {
	reqs := 0
	for first := 0; first < n; first += api.MaxServers {
		count := min(api.MaxServers, n-first)
		out, err := b.ferry(ctx, "borrower", "lease", "request", "--dir", b.dir, "--count", fmt.Sprint(count), "--image", "b1",
			"--key", fmt.Sprintf("fleet-%08d", first))
		if err != nil {
			return reqs, fmt.Errorf("%w\n%s", err, out)
		}
		if !activeLease.MatchString(out) {
			return reqs, fmt.Errorf("lease request printed %q, want an active lease", out)
		}
		reqs++
	}
	return reqs, nil
}

// writeImageB makes image B of about size bytes: a bzImage header the
// catalogue accepts padded with random bytes (a quarter), and a newc
// initrd holding random bytes (the rest), so that neither compresses and
// every byte crosses the tunnels.
func writeImageB(t *testing.T, dir string, size int) (string, string) {
	t.Helper()
	rnd := rand.NewChaCha8([32]byte{1})
	hdr := kexectest.BzImage(0x020f, "6.1.0-56-amd64 (fleet) #1 SMP")
	k := make([]byte, max(size/4, len(hdr)))
	rnd.Read(k)
	copy(k, hdr)
	kernel := filepath.Join(dir, "vmlinuz-b")
	if err := os.WriteFile(kernel, k, 0o644); err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, max(size-len(k), 8<<10))
	rnd.Read(blob)
	var buf bytes.Buffer
	if _, err := initrd.WriteArchive(&buf, []initrd.File{{Path: "init", Mode: 0o755, Data: []byte("#!/bin/sh\n")},
		{Path: "blob", Mode: 0o644, Data: blob}}); err != nil {
		t.Fatal(err)
	}
	ird := filepath.Join(dir, "initrd-b.img")
	if err := os.WriteFile(ird, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return kernel, ird
}
