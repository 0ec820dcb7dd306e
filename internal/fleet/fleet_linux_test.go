package fleet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ferry/api"
	"ferry/applets"
	"ferry/internal/netnstest"
	"ferry/lender"
	"ferry/lender/lendertest"
	"ferry/pki"
)

// The fleet runs in a namespace of its own (the servers' addresses, their
// data TUN and the lender), in a child process of this test binary, which
// in turn runs the gateway and the borrower manager as processes of their
// own in a second namespace, so that their memory and CPU are their own.
// FERRY_FLEET_N (50), FERRY_FLEET_HOLD (15s), FERRY_FLEET_CONCURRENCY (32)
// and FERRY_FLEET_IMAGE_KB (3072, image B's kernel + initrd) size it;
// scripts/bench.sh runs 1,000 for 10 minutes.
const (
	envChild     = "FERRY_FLEET_CHILD"
	envGateway   = "FERRY_FLEET_GATEWAY"
	envGatewayNS = "FERRY_FLEET_GATEWAY_NS"
)

// serverNet holds the lent servers' DHCP addresses; gatewayAddr is the
// responder's, across the veth.
var (
	serverNet   = netip.MustParsePrefix("10.64.0.0/16")
	gatewayAddr = netip.MustParseAddr("10.88.0.2")
)

// TestFleet: the borrower manager leases N lent servers from the lender;
// each takes an address, fetches image A, enrolls, opens a tunnel to
// ferry's gateway, fetches image B through it from the borrower (every
// byte sealed by the gateway) and holds it with DPD for the hold time,
// every one of them, with no error and no reconnect.
func TestFleet(t *testing.T) { runFleet(t, "ferry") }

// TestFleetCharon is the same load with strongSwan's charon as the
// responder, for comparison (scripts/bench.sh prints both).
func TestFleetCharon(t *testing.T) {
	if _, err := os.Stat(charonBin); err != nil {
		t.Skipf("strongSwan: %v", err)
	}
	runFleet(t, "charon")
}

func runFleet(t *testing.T, responder string) {
	if os.Getenv(envChild) != "" || os.Getenv(envGateway) != "" {
		t.Skip("helper process")
	}
	// The lender and the played servers in one namespace (every server's
	// DHCP address local there), the responder in another across a veth.
	ns, gns := netnstest.New(t, "flt"), netnstest.New(t, "flg")
	netnstest.Veth(t, netnstest.End{NS: ns, Name: "fl0", Addr: netip.MustParsePrefix("10.88.0.1/24")},
		netnstest.End{NS: gns, Name: "gw0", Addr: netip.MustParsePrefix("10.88.0.2/24")})
	ns.Run(t, "", "ip", "route", "add", "local", serverNet.String(), "dev", "lo")
	gns.Run(t, "", "ip", "route", "add", serverNet.String(), "via", "10.88.0.1")
	cmd := ns.Command(os.Args[0], "-test.run=^TestFleetInNamespace$", "-test.v", "-test.timeout=60m")
	cmd.Env = append(os.Environ(), envChild+"=1", "FERRY_FLEET_RESPONDER="+responder, envGatewayNS+"="+gns.Name)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		fmt.Println(sc.Text()) // the figures, for make bench
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("fleet: %v (its output is above)", err)
	}
}

// TestFleetGatewayProcess is the gateway: `ferry gateway` in this process.
func TestFleetGatewayProcess(t *testing.T) {
	cfg := os.Getenv(envGateway)
	if cfg == "" {
		t.Skip("helper process")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	env := &applets.Env{Stdin: strings.NewReader(""), Stdout: os.Stdout, Stderr: os.Stderr,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if code := applets.Main(ctx, env, []string{"ferry", "gateway", "--config", cfg}); code != 0 && ctx.Err() == nil {
		t.Fatalf("gateway exited %d", code)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestFleetInNamespace(t *testing.T) {
	if os.Getenv(envChild) == "" {
		t.Skip("helper process")
	}
	n, conc := envInt("FERRY_FLEET_N", 50), envInt("FERRY_FLEET_CONCURRENCY", 32)
	hold := envDuration("FERRY_FLEET_HOLD", 15*time.Second)
	imageBytes := envInt("FERRY_FLEET_IMAGE_KB", 3<<10) << 10 // image B, kernel + initrd
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()

	// The lender: its manager and agent API (TLS on loopback), n servers
	// in its inventory, and its netboot handlers.
	la := lendertest.NewAgent(t)
	macs := make([]net.HardwareAddr, n)
	for i := range n {
		macs[i] = net.HardwareAddr{0x52, 0x54, 0x01, byte(i >> 16), byte(i >> 8), byte(i)}
		if _, err := la.M.AddServer(ctx, lender.Server{MAC: macs[i].String(), Power: "manual", Pool: "p"}); err != nil {
			t.Fatal(err)
		}
	}
	bca, err := pki.NewCA("fleet borrower CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gwKey, gwCert, err := bca.Issue(pki.Identity{CommonName: "fleet gateway", IPs: []net.IP{gatewayAddr.AsSlice()}}, pki.ECDSAP256, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd")
	os.WriteFile(kernel, make([]byte, 64<<10), 0o644)
	os.WriteFile(initrd, make([]byte, 256<<10), 0o644)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nb, err := la.M.NetbootServer(lender.NetbootConfig{Interface: "lo", ServerIP: "10.64.0.1", Mode: "dhcp",
		PoolFirst: "10.64.0.2", PoolLast: "10.64.255.254", Prefix: serverNet.String(), HTTPAddr: ln.Addr().String(),
		KernelA: kernel, InitrdA: initrd})
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: nb.Handler()}
	go hs.Serve(ln)
	defer hs.Close()

	// The responder: `ferry gateway` in a process of its own, with the
	// borrower manager (`ferry borrower serve`, another process) asking
	// the lender for the servers, allowing their keys and serving image
	// B through the tunnels; or strongSwan's charon
	// (FERRY_FLEET_RESPONDER=charon) for comparison of the handshakes,
	// the lease then asked of the lender directly and no data carried.
	g := Gateway{Addr: gatewayAddr, CAs: []*x509.Certificate{bca.Cert},
		RemoteSubnets: []netip.Prefix{netip.MustParsePrefix("10.89.0.0/24")}, DPD: 10 * time.Second}
	var gw *responder
	var bw *borrowerProc
	if os.Getenv("FERRY_FLEET_RESPONDER") == "charon" {
		gw = startCharon(t, dir, os.Getenv(envGatewayNS), la, gwCert, gwKey)
		g.Allow = func(pin, lease string) error { return nil } // charon: any key the lender CA signed
	} else {
		gw = startGateway(t, dir, os.Getenv(envGatewayNS), la, gwCert, gwKey)
		bw = startBorrower(t, dir, os.Getenv(envGatewayNS), la, bca, gw, imageBytes)
		// The servers' data path: one TUN for all, the gateway's subnet
		// routed into it, the virtual IP pool local (data_linux.go).
		if g.Data, err = OpenPorts("fltdata0", 1400); err != nil {
			t.Fatal(err)
		}
		go g.Data.Run(ctx)
		for _, args := range [][]string{{"route", "add", "10.89.0.0/24", "dev", "fltdata0"}, {"route", "add", "local", "10.90.0.0/20", "dev", "lo"}} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	}

	t0 := time.Now()
	var reqs int
	if bw != nil {
		reqs, err = bw.requestLeases(ctx, n)
	} else {
		reqs, err = leaseDirect(ctx, la, bca, n)
	}
	if err != nil {
		t.Fatal(err)
	}
	leaseTime := time.Since(t0)

	rec := NewRecorder()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l := Lender{Netboot: nb, CA: la.CA.Cert}
	// Every server up to its enrollment, then (once the gateway's allow
	// list holds every key: the borrower polls the lender for them) every
	// tunnel: the handshakes are measured apart, without refusals.
	ready, errs := prepareAll(ctx, macs, conc, l, g, rec)
	if bw != nil {
		if err := waitAllowed(gw.allow, ready, 60*time.Second); err != nil {
			t.Error(err)
		}
	}
	time.Sleep(2 * time.Second)
	rss0, cpu0, t1 := gw.rss(t), gw.cpu(t), time.Now()
	servers, terrs := tunnelAll(ctx, ready, conc, g, rec, log)
	errs = append(errs, terrs...)
	rss1, cpu1, wall := gw.rss(t), gw.cpu(t), time.Since(t1)
	retries := 0
	for _, s := range servers {
		retries += s.Retries
	}
	via := "to the borrower manager, which asked the lender"
	if bw == nil {
		via = "straight to the lender"
	}
	fmt.Printf("fleet: %d lent servers, %d at a time, %d lease request(s) %s (%.0f ms); %d tunnels up %.1f s after, %d failed; %d IKE attempts refused (allow list not yet loaded)\n",
		n, conc, reqs, via, leaseTime.Seconds()*1000, len(servers), time.Since(t0).Seconds(), len(errs), retries)
	var fetched int64
	var fwall, fcpu, bcpu time.Duration
	if g.Data != nil {
		// Image B through every tunnel, conc at a time.
		esp0, gcpu0, bcpu0, t2 := gw.espOutBytes(t), gw.cpu(t), procCPU(t, bw.pid), time.Now()
		var ferrs []error
		fetched, ferrs = fetchAll(ctx, servers, conc, rec)
		fwall, fcpu, bcpu = time.Since(t2), gw.cpu(t)-gcpu0, procCPU(t, bw.pid)-bcpu0
		errs = append(errs, ferrs...)
		// Every byte of image B came through the gateway's ESP (the
		// virtual IPs have no other way to the image server).
		if esp := gw.espOutBytes(t) - esp0; esp < float64(fetched) {
			t.Errorf("the gateway sealed %.0f ESP payload bytes towards the servers while they fetched %d bytes of image B", esp, fetched)
		}
	}
	fmt.Print(Table(rec.Stats()))
	for i, err := range errs {
		if i < 5 {
			t.Errorf("server: %v", err)
		}
	}
	fmt.Printf("responder %s: %d handshakes in %.1f s: %.1f/s; its CPU %.2f ms per handshake (%.0f %% of a core); RSS %.1f MB -> %.1f MB: %.1f KB per SA\n",
		gw.name, len(servers), wall.Seconds(), float64(len(servers))/wall.Seconds(), (cpu1-cpu0).Seconds()*1000/float64(max(len(servers), 1)),
		100*(cpu1-cpu0).Seconds()/wall.Seconds(), float64(rss0)/(1<<20), float64(rss1)/(1<<20), float64(rss1-rss0)/1024/float64(max(len(servers), 1)))
	if g.Data != nil {
		mb := float64(fetched) / 1e6
		perMB := "no MB"
		if mb > 0 {
			perMB = fmt.Sprintf("%.1f ms per MB", fcpu.Seconds()*1000/mb)
		}
		fmt.Printf("image B (%.1f MB a server, HTTPS from the borrower through each tunnel): %.0f MB in %.1f s: %.1f MB/s through the gateway; gateway CPU %.1f s (%.0f %% of a core, %s), borrower CPU %.1f s; %d packets no plane took\n",
			float64(imageBytes)/1e6, mb, fwall.Seconds(), mb/fwall.Seconds(), fcpu.Seconds(), 100*fcpu.Seconds()/fwall.Seconds(),
			perMB, bcpu.Seconds(), g.Data.Dropped())
		fmt.Printf("borrower manager (its own process): RSS %.1f MB\n", float64(procRSS(t, bw.pid))/(1<<20))
	}
	var ms runtimeMem
	ms.read()
	fmt.Printf("lender + %d played servers (this process): Go heap %.1f MB, %d goroutines\n", len(servers), float64(ms.heap)/(1<<20), ms.goroutines)

	// Hold: DPD both ways on every tunnel; no SA may go down.
	// The hold's CPU counts from its start: image B's is not in it.
	cpu1 = gw.cpu(t)
	time.Sleep(hold)
	rss2, cpu2 := gw.rss(t), gw.cpu(t)
	down := 0
	for _, s := range servers {
		h := s.IKE().TunnelHistory()
		st := s.IKE().Status()
		if h.Reconnects > 0 || h.LastReason != "" || len(st) != 1 || st[0].State != "established" {
			down++
			if down <= 5 {
				t.Errorf("%s after %s: %d SAs %+v, history %+v", s.MAC, hold, len(st), st, h)
			}
		}
	}
	fmt.Printf("held %s with DPD every 10 s: %d of %d tunnels up throughout; %s RSS %.1f MB, CPU %.2f s in the hold (%.1f %% of a core)\n",
		hold, len(servers)-down, len(servers), gw.name, float64(rss2)/(1<<20), (cpu2 - cpu1).Seconds(), 100*(cpu2-cpu1).Seconds()/hold.Seconds())
	if gw.status != "" {
		checkGatewayStatus(t, gw, len(servers))
	}
	if len(errs) > 0 || down > 0 {
		t.Fatalf("%d servers failed, %d tunnels went down", len(errs), down)
	}
	cancel()
	for _, s := range servers {
		s.Wait()
	}
}

// prepareAll takes every server up to its enrollment, conc at a time.
func prepareAll(ctx context.Context, macs []net.HardwareAddr, conc int, l Lender, g Gateway, rec *Recorder) ([]*Server, []error) {
	var mu sync.Mutex
	var ready []*Server
	var errs []error
	parallel(macs, conc, func(mac net.HardwareAddr) {
		s, err := Prepare(ctx, mac, l, g, rec)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			return
		}
		ready = append(ready, s)
	})
	return ready, errs
}

// tunnelAll opens every server's tunnel, conc at a time.
func tunnelAll(ctx context.Context, ready []*Server, conc int, g Gateway, rec *Recorder, log *slog.Logger) ([]*Server, []error) {
	var mu sync.Mutex
	var up []*Server
	var errs []error
	parallel(ready, conc, func(s *Server) {
		err := s.Tunnel(ctx, g, rec, log)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			return
		}
		up = append(up, s)
	})
	return up, errs
}

// parallel calls f for each item, conc at a time.
func parallel[T any](items []T, conc int, f func(T)) {
	next := make(chan T)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range next {
				f(it)
			}
		}()
	}
	for _, it := range items {
		next <- it
	}
	close(next)
	wg.Wait()
}

// leaseDirect asks the lender for n servers itself, api.MaxServers per
// request, with a made-up image B (the charon comparison carries no data).
func leaseDirect(ctx context.Context, la *lendertest.Agent, bca *pki.CA, n int) (int, error) {
	reqs := 0
	for first := 0; first < n; first += api.MaxServers {
		count := min(api.MaxServers, n-first)
		req := api.LeaseRequest{IdempotencyKey: fmt.Sprintf("fleet-%08d", first), Count: count, Gateway: gatewayAddr.String() + ":500",
			BorrowerCA: string(bca.CertPEM()),
			Image: api.Image{Kernel: api.Artifact{URL: "https://127.0.0.2/k", SHA256: fmt.Sprintf("%064x", 1)},
				Initrd: api.Artifact{URL: "https://127.0.0.2/i", SHA256: fmt.Sprintf("%064x", 2)}, Cmdline: "console=ttyS0"},
			DurationSeconds: 3600}
		for range count {
			req.Roots = append(req.Roots, api.NFSRoot{Server: "10.89.0.2", Path: "/roots/x"})
		}
		if _, err := la.M.RequestLease(ctx, req); err != nil {
			return reqs, err
		}
		reqs++
	}
	return reqs, nil
}

// waitAllowed waits until the gateway's allow list (which the borrower
// writes) names every server's key.
func waitAllowed(path string, servers []*Server, limit time.Duration) error {
	missing := len(servers)
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		missing = 0
		for _, s := range servers {
			if !bytes.Contains(b, []byte(s.Pin)) {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
	}
	return fmt.Errorf("after %s the gateway's allow list still lacks %d of %d enrolled keys", limit, missing, len(servers))
}

// fetchAll fetches image B through every server's tunnel, conc at a time,
// and returns the bytes fetched.
func fetchAll(ctx context.Context, servers []*Server, conc int, rec *Recorder) (int64, []error) {
	var mu sync.Mutex
	var total int64
	var errs []error
	parallel(servers, conc, func(s *Server) {
		n, err := s.FetchImageB(ctx, rec)
		mu.Lock()
		defer mu.Unlock()
		total += n
		if err != nil {
			errs = append(errs, err)
		}
	})
	return total, errs
}
