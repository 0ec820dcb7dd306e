package applets

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ferry/internal/syncbuf"
	"ferry/pki"
)

// lenderConfig writes a lender state directory, an m2m identity and a
// configuration listening on loopback ports the kernel picks.
func lenderConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	env, _, _ := bufEnv()
	if code := Main(context.Background(), env, []string{"ferry", "lender", "init", "--dir", filepath.Join(dir, "state"), "--host", "127.0.0.1"}); code != 0 {
		t.Fatalf("lender init: exit %d", code)
	}
	ca, err := pki.NewCA("org", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, cert, err := ca.Issue(pki.Identity{CommonName: "lender-m2m", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}, pki.ECDSAP256, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, _ := pki.MarshalKeyPEM(key)
	for name, b := range map[string][]byte{"m2m.pem": pki.CertPEM(cert), "m2m.key": kp, "ca.pem": ca.CertPEM()} {
		os.WriteFile(filepath.Join(dir, name), b, 0o600)
	}
	cfg, _ := json.Marshal(map[string]any{"dir": filepath.Join(dir, "state"), "agent_listen": "127.0.0.1:0",
		"public_url": "https://127.0.0.1:8443", "m2m_listen": "127.0.0.1:0",
		"m2m_cert": filepath.Join(dir, "m2m.pem"), "m2m_key": filepath.Join(dir, "m2m.key"),
		"borrowers": []map[string]string{{"name": "acme", "ca": filepath.Join(dir, "ca.pem")}}})
	path := filepath.Join(dir, "lender.json")
	os.WriteFile(path, cfg, 0o600)
	return path
}

func bufEnv() (*Env, *syncbuf.Buffer, *syncbuf.Buffer) {
	out, errb := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	return &Env{Stdin: strings.NewReader(""), Stdout: out, Stderr: errb, Log: slog.New(slog.NewTextHandler(errb, nil))}, out, errb
}

// `ferry lender serve` under systemd (Type=notify): READY=1 once it
// serves, STOPPING=1 as soon as SIGTERM (the context) ends it, both on a
// real unixgram socket as systemd's.
func TestLenderServeTellsSystemdReadyThenStopping(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	cfg := lenderConfig(t)
	env, _, errb := bufEnv()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- Main(ctx, env, []string{"ferry", "lender", "serve", "--config", cfg}) }()
	recv := func(want string) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		b := make([]byte, 512)
		n, err := c.Read(b)
		if err != nil {
			t.Fatalf("waiting for %s: %v (lender output: %s)", want, err, errb)
		}
		if got := string(b[:n]); !strings.HasPrefix(got, want+"\n") {
			t.Fatalf("got %q, want %s first", got, want)
		}
	}
	recv("READY=1")
	if !strings.Contains(errb.String(), "lender serving") {
		t.Fatalf("READY=1 before the lender logged that it serves: %s", errb)
	}
	cancel()
	recv("STOPPING=1")
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("lender serve did not return after its context ended")
	}
}

func TestLogOptionsAnywhereInTheArguments(t *testing.T) {
	rest, o, err := takeLogOptions([]string{"serve", "--log-level", "debug", "--config", "x", "-log-format=json", "--", "--log-level", "y"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rest, " ") != "serve --config x -- --log-level y" || o.level != slog.LevelDebug || o.format != "json" || !o.given {
		t.Fatalf("rest %q, options %+v", rest, o)
	}
	for _, bad := range [][]string{{"--log-level", "loud"}, {"--log-format=xml"}, {"--log-level"}} {
		if _, _, err := takeLogOptions(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Under journald: no time (journald stamps lines), the syslog priority
// first so `journalctl -p` filters, and the level threshold applied.
func TestJournalLinesCarryPriorityNotTime(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var b bytes.Buffer
		log := newLogger(&b, logOptions{level: slog.LevelInfo, format: format}, true)
		log.Debug("hidden")
		log.Info("serving", "port", 8443)
		log.Warn("slow")
		log.Error("failed", "err", "boom")
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		if len(lines) != 3 {
			t.Fatalf("%s: %d lines, want 3 (no debug):\n%s", format, len(lines), b.String())
		}
		for i, prio := range []string{"<6>", "<4>", "<3>"} {
			if !strings.HasPrefix(lines[i], prio) {
				t.Errorf("%s: line %q does not start with %s", format, lines[i], prio)
			}
			if strings.Contains(lines[i], "time") {
				t.Errorf("%s: line %q has a time", format, lines[i])
			}
		}
		if format == "json" {
			var m map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(lines[0], "<6>")), &m); err != nil || m["port"] != 8443.0 {
				t.Errorf("json line %q: %v %v", lines[0], m, err)
			}
		}
	}
	var b bytes.Buffer
	newLogger(&b, logOptions{format: "text"}, false).Info("x")
	if !strings.HasPrefix(b.String(), "time=") {
		t.Errorf("outside journald the time goes first: %q", b.String())
	}
}

// JOURNAL_STREAM counts only while stderr is that very stream.
func TestUnderJournalComparesDeviceAndInode(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	syscall.Fstat(int(f.Fd()), &st)
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "JOURNAL_STREAM" {
				return v
			}
			return ""
		}
	}
	if !underJournal(env(fmt.Sprintf("%d:%d", st.Dev, st.Ino)), f) {
		t.Error("stderr is the journal stream but was not recognised")
	}
	if underJournal(env(fmt.Sprintf("%d:%d", st.Dev, st.Ino+1)), f) || underJournal(env(""), f) {
		t.Error("another stream taken for the journal")
	}
}
