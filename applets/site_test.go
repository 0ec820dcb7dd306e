package applets

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/api"
	"ferry/borrower"
	"ferry/internal/syncbuf"
	"ferry/lender"
	"ferry/pki"
)

// site is a pair of sites in a temporary directory, their paths moved
// there through the environment as an operator would.
type site struct {
	t    *testing.T
	root string
	vars map[string]string
}

func newSite(t *testing.T) *site {
	root := t.TempDir()
	return &site{t: t, root: root, vars: map[string]string{
		"FERRY_LENDER_DIR": filepath.Join(root, "lender"), "FERRY_LENDER_CONFIG": filepath.Join(root, "etc", "lender.json"),
		"FERRY_BORROWER_DIR": filepath.Join(root, "borrower"), "FERRY_BORROWER_CONFIG": filepath.Join(root, "etc", "borrower.json"),
		"FERRY_GATEWAY_CONFIG": filepath.Join(root, "etc", "gateway.json"),
	}}
}

// run runs one ferry command line and returns its exit status and output.
func (s *site) run(ctx context.Context, args ...string) (int, string) {
	var out syncbuf.Buffer
	code := s.runTo(ctx, &out, args...)
	return code, out.String()
}

func (s *site) runTo(ctx context.Context, out *syncbuf.Buffer, args ...string) int {
	env := &Env{Stdin: strings.NewReader(""), Stdout: out, Stderr: out, Log: slog.New(slog.NewTextHandler(out, nil)),
		Getenv: func(k string) string { return s.vars[k] }}
	return Main(ctx, env, append([]string{"ferry"}, args...))
}

// loopback is an address of 127/8 of this test alone, so that the fixed
// ports init writes do not meet another test's.
func loopback(t *testing.T) string {
	for range 20 {
		a := fmt.Sprintf("127.%d.%d.%d", 20+rand.IntN(200), rand.IntN(250), 1+rand.IntN(250))
		ln, err := net.Listen("tcp", a+":0")
		if err == nil {
			ln.Close()
			return a
		}
	}
	t.Skip("no free loopback address")
	return ""
}

// The sequence a new pair of sites types: lender init, borrower init with
// the lender's files, lender borrower add with the borrower's CA, the
// checks; then a lender and a borrower serve those files and talk mutual
// TLS with the certificates init made.
func TestInitMakesAPairOfSitesThatServeAndTrustEachOther(t *testing.T) {
	s := newSite(t)
	ctx := t.Context()
	lip, bip := loopback(t), loopback(t)

	code, out := s.run(ctx, "lender", "init", "--name", "bigco", "--host", lip, "--m2m", lip+":9443")
	if code != 0 || !strings.Contains(out, "ca_sha256 ") || !strings.Contains(out, "ferry borrower init --name BORROWER --from-lender for-borrowers") {
		t.Fatalf("lender init: exit %d\n%s", code, out)
	}
	if code, again := s.run(ctx, "lender", "init", "--name", "bigco", "--host", lip); code != 1 || !strings.Contains(again, "refusing to replace existing files") {
		t.Fatalf("second lender init: exit %d, want 1 and a refusal\n%s", code, again)
	}
	code, out = s.run(ctx, "lender", "serve", "--check")
	if code != 1 || !strings.Contains(out, "error: borrowers: no borrower: add one with `ferry lender borrower add NAME CA.pem`") {
		t.Fatalf("lender serve --check before any borrower: exit %d, want 1 naming the next step\n%s", code, out)
	}

	// The borrower's host receives the lender's for-borrowers directory.
	forB := filepath.Join(s.root, "copied-from-lender")
	copyDir(t, filepath.Join(s.vars["FERRY_LENDER_DIR"], "for-borrowers"), forB)
	code, out = s.run(ctx, "borrower", "init", "--name", "acme", "--from-lender", forB, "--gateway", bip, "--lan", bip,
		"--tunnel-pool", "10.8.1.0/24", "--nfs", "none")
	if code != 0 || !strings.Contains(out, "ferry lender borrower add acme borrower-ca.pem") {
		t.Fatalf("borrower init: exit %d\n%s", code, out)
	}
	bca := filepath.Join(s.root, "borrower-ca.pem")
	copyFile(t, filepath.Join(s.vars["FERRY_BORROWER_DIR"], "for-lender", "borrower-ca.pem"), bca)
	if code, out = s.run(ctx, "lender", "borrower", "add", "acme", bca); code != 0 {
		t.Fatalf("lender borrower add: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{{"lender", "serve", "--check"}, {"gateway", "--check"}} {
		if code, out = s.run(ctx, args...); code != 0 || strings.Contains(out, "error:") {
			t.Fatalf("%s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	// On a site just set up nothing is wrong yet: the CRL the borrower
	// will write is a note, not a warning.
	if !strings.Contains(out, "info: crl ") || strings.Contains(out, "warning:") || !strings.Contains(out, "ok, 0 warnings, 1 note") {
		t.Fatalf("gateway --check on a fresh site: want the missing CRL as a note and no warning\n%s", out)
	}
	// Every private key is the owner's alone.
	filepath.Walk(s.root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".key") && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", p, fi.Mode().Perm())
		}
		return nil
	})

	// The lender serves; the borrower's check now reaches it over mutual
	// TLS, and so does the borrower manager itself.
	lctx, stopLender := context.WithCancel(ctx)
	lenderDone := make(chan string, 1)
	var lenderLog syncbuf.Buffer
	go func() { s.runTo(lctx, &lenderLog, "lender", "serve"); lenderDone <- lenderLog.String() }()
	waitSocket(t, lender.AdminSocket(s.vars["FERRY_LENDER_DIR"]), lenderDone)
	code, out = s.run(ctx, "borrower", "serve", "--check")
	if code != 0 || strings.Contains(out, "lender_url") {
		t.Fatalf("borrower serve --check with the lender up: exit %d, want 0 and no word of lender_url\n%s", code, out)
	}
	// The quick start checks the borrower before it starts the gateway.
	if !strings.Contains(out, "info: gateway_status ") || strings.Contains(out, "warning:") {
		t.Fatalf("borrower serve --check before the gateway runs: want a note, no warning\n%s", out)
	}
	bcfg, err := borrower.LoadConfig(s.vars["FERRY_BORROWER_CONFIG"])
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := api.ClientTLS(bcfg.M2MCert, bcfg.M2MKey, bcfg.M2MCA)
	if err != nil {
		t.Fatal(err)
	}
	c := &api.Client{Base: bcfg.LenderURL, HTTP: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}}
	var leases []api.Lease
	if err := c.Call(ctx, "GET", api.PathLeases, nil, &leases); err != nil {
		t.Fatalf("the borrower's m2m certificate at the lender: %v", err)
	}
	s.reloads(t, &lenderLog, bcfg)

	bctx, stopBorrower := context.WithCancel(ctx)
	borrowerDone := make(chan string, 1)
	var borrowerLog syncbuf.Buffer
	go func() { s.runTo(bctx, &borrowerLog, "borrower", "serve"); borrowerDone <- borrowerLog.String() }()
	waitSocket(t, borrower.AdminSocket(s.vars["FERRY_BORROWER_DIR"]), borrowerDone)
	s.renewsImageCertificate(t, &borrowerLog, bcfg)
	if code, out = s.run(ctx, "borrower", "lease", "list"); code != 0 || !strings.Contains(out, "LEASE") {
		t.Fatalf("borrower lease list against the served borrower: exit %d\n%s", code, out)
	}
	stopBorrower()
	stopLender()
	for _, done := range []chan string{borrowerDone, lenderDone} {
		select {
		case out := <-done:
			if !strings.Contains(out, "stopping: finishing requests in flight") || !strings.Contains(out, " stopped") {
				t.Errorf("a manager did not say it was stopping:\n%s", out)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a manager did not stop within 20 s of its context")
		}
	}
	// With both gone, the client says what to do.
	if code, out = s.run(ctx, "lender", "server", "list"); code != 1 || !strings.Contains(out, "is `ferry lender serve` running?") {
		t.Fatalf("lender server list with no lender: exit %d\n%s", code, out)
	}
	if code, out = s.run(ctx, "borrower", "lease", "list"); code != 1 || !strings.Contains(out, "is `ferry borrower serve` running?") {
		t.Fatalf("borrower lease list with no borrower: exit %d\n%s", code, out)
	}
}

func waitSocket(t *testing.T, path string, done chan string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case out := <-done:
			t.Fatalf("the manager ended before serving:\n%s", out)
		default:
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no admin socket %s within 15 s", path)
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(to, 0o755)
	for _, e := range ents {
		copyFile(t, filepath.Join(from, e.Name()), filepath.Join(to, e.Name()))
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	io.Copy(out, in)
}

// reloads proves SIGHUP at the lender: a broken file is refused with its
// reason and the lender goes on with the running configuration; a
// borrower added with `ferry lender borrower add` is admitted by the
// next SIGHUP, not before.
func (s *site) reloads(t *testing.T, lenderLog *syncbuf.Buffer, bcfg borrower.Config) {
	ctx := t.Context()
	cfgPath := s.vars["FERRY_LENDER_CONFIG"]
	good, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, []byte(strings.Replace(string(good), `"token_ttl"`, `"token_tll": "1m", "token_ttl"`, 1)), 0o640)
	hangup(t)
	waitLog(t, lenderLog, `reload refused, the running configuration stays`)
	waitLog(t, lenderLog, `token_tll: unknown key (did you mean \"token_ttl\"?)`)
	os.WriteFile(cfgPath, good, 0o640)

	// A second borrower organisation, made with ferry pki.
	dir := filepath.Join(s.root, "globex")
	os.MkdirAll(dir, 0o700)
	ca, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	if code, out := s.run(ctx, "pki", "ca", "--name", "globex", "--cert", ca, "--key", key); code != 0 {
		t.Fatalf("pki ca: %d %s", code, out)
	}
	cert, ckey := filepath.Join(dir, "m2m.pem"), filepath.Join(dir, "m2m.key")
	if code, out := s.run(ctx, "pki", "issue", "--ca-cert", ca, "--ca-key", key, "--cn", "globex-m2m", "--usage", "client",
		"--cert", cert, "--key", ckey); code != 0 || strings.Contains(out, "PRIVATE KEY") {
		t.Fatalf("pki issue: %d %s", code, out)
	}
	tlsCfg, err := api.ClientTLS(cert, ckey, bcfg.M2MCA)
	if err != nil {
		t.Fatal(err)
	}
	globex := &api.Client{Base: bcfg.LenderURL, HTTP: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}}
	var leases []api.Lease
	if err := globex.Call(ctx, "GET", api.PathLeases, nil, &leases); err == nil {
		t.Fatal("globex listed leases before it was admitted")
	}
	if code, out := s.run(ctx, "lender", "borrower", "add", "globex", ca); code != 0 {
		t.Fatalf("lender borrower add globex: %d %s", code, out)
	}
	globex.HTTP.CloseIdleConnections()
	if err := globex.Call(ctx, "GET", api.PathLeases, nil, &leases); err == nil {
		t.Fatal("globex admitted before the reload")
	}
	hangup(t)
	waitLog(t, lenderLog, `configuration reloaded`)
	globex.HTTP.CloseIdleConnections()
	if err := globex.Call(ctx, "GET", api.PathLeases, nil, &leases); err != nil {
		t.Fatalf("globex after the reload: %v", err)
	}
}

// hangup sends SIGHUP to this process, which the serving applets catch.
func hangup(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

func waitLog(t *testing.T, b *syncbuf.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(b.String(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %q in the log within 10 s:\n%s", want, b.String())
}

// A site that keeps its own PKI gives init its CA; the key comes on
// stdin, never on the command line, and init writes no CA key of its own.
func TestInitTakesTheSitesOwnCA(t *testing.T) {
	s := newSite(t)
	ca, key := filepath.Join(s.root, "own-ca.pem"), filepath.Join(s.root, "own-ca.key")
	if code, out := s.run(t.Context(), "pki", "ca", "--name", "bigco-root", "--cert", ca, "--key", key); code != 0 {
		t.Fatalf("pki ca: %d %s", code, out)
	}
	keyPEM, _ := os.ReadFile(key)
	var out syncbuf.Buffer
	env := &Env{Stdin: bytes.NewReader(keyPEM), Stdout: &out, Stderr: &out, Log: slog.New(slog.DiscardHandler),
		Getenv: func(k string) string { return s.vars[k] }}
	if code := Main(t.Context(), env, []string{"ferry", "lender", "init", "--host", "127.0.0.1", "--ca-cert", ca, "--ca-key", "-"}); code != 0 {
		t.Fatalf("lender init with its own CA: %d %s", code, out.String())
	}
	if strings.Contains(out.String(), "PRIVATE KEY") || strings.Contains(out.String(), "offline") {
		t.Fatalf("init printed a key or claims to have made the CA key:\n%s", out.String())
	}
	pki := filepath.Join(s.vars["FERRY_LENDER_DIR"], "pki")
	if _, err := os.Stat(filepath.Join(pki, "org-ca.key")); err == nil {
		t.Fatal("init wrote a CA key although the site gave its own CA")
	}
	code, check := s.run(t.Context(), "pki", "check", "--cert", filepath.Join(pki, "m2m.pem"), "--key", filepath.Join(pki, "m2m.key"),
		"--ca", ca, "--usage", "server")
	if code != 0 || !strings.Contains(check, "ok: ") {
		t.Fatalf("the m2m certificate against the site's CA: %d %s", code, check)
	}
}

// renewsImageCertificate proves SIGHUP at the borrower: the images
// server's certificate, reissued in place with ferry pki, is what the
// next connection gets.
func (s *site) renewsImageCertificate(t *testing.T, borrowerLog *syncbuf.Buffer, bcfg borrower.Config) {
	serial := func() string {
		c, err := tls.Dial("tcp", bcfg.ImageListen, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("images server: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	pkiDir := filepath.Join(s.vars["FERRY_BORROWER_DIR"], "pki")
	host, _, _ := net.SplitHostPort(bcfg.ImageListen)
	if code, out := s.run(t.Context(), "pki", "issue", "--ca-cert", filepath.Join(pkiDir, "org-ca.pem"), "--ca-key", filepath.Join(pkiDir, "org-ca.key"),
		"--cn", "acme-images", "--usage", "server", "--host", host, "--cert", bcfg.ImageCert, "--key", bcfg.ImageKey, "--force"); code != 0 {
		t.Fatalf("pki issue --force: %d %s", code, out)
	}
	if serial() != before {
		t.Fatal("the new certificate was served before the reload")
	}
	hangup(t)
	waitLog(t, borrowerLog, "borrower: configuration reloaded: key pairs renewed")
	if serial() == before {
		t.Fatal("the images server still presents the old certificate after SIGHUP")
	}
}

// A key file is read no further than a PEM key can be long: a wrong
// path (a log, a device) is refused, not read whole into memory.
func TestReadSecretIsBounded(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.key")
	if err := os.WriteFile(big, bytes.Repeat([]byte{'A'}, pki.MaxPEMSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	env := &Env{Stdin: bytes.NewReader(bytes.Repeat([]byte{'A'}, pki.MaxPEMSize+1))}
	for _, p := range []string{big, "-"} {
		if b, err := readSecret(env, p); err == nil {
			t.Errorf("readSecret(%s) read %d bytes without error, want a refusal over %d", p, len(b), pki.MaxPEMSize)
		}
	}
}
