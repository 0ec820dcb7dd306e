package applets

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"os"
	"strings"
	"testing"
)

func testEnv() *Env {
	var out bytes.Buffer
	return &Env{Stdin: &bytes.Buffer{}, Stdout: &out, Stderr: &out, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestKexecAcceptsKexecToolsForms(t *testing.T) {
	for _, args := range [][]string{
		{"-l", "/b/vmlinuz", "--initrd=/b/initrd.img", "--command-line=console=ttyS0 quiet"},
		{"-l", "/b/vmlinuz", "--initrd", "/b/initrd.img", "--command-line", "console=ttyS0 quiet"},
		{"--initrd=/b/initrd.img", "-l", "/b/vmlinuz", "--append=console=ttyS0 quiet"},
		{"-l", "--initrd=/b/initrd.img", "/b/vmlinuz", "-append", "console=ttyS0 quiet"},
		{"--load", "/b/vmlinuz", "--ramdisk=/b/initrd.img", "--append", "console=ttyS0 quiet"},
		{"-l=/b/vmlinuz", "-initrd=/b/initrd.img", "--command-line=console=ttyS0 quiet"},
	} {
		r, err := parseKexecArgs(testEnv(), args)
		if err != nil {
			t.Errorf("%q: %v", args, err)
			continue
		}
		if !r.load || r.kernel != "/b/vmlinuz" || r.initrd != "/b/initrd.img" || r.appendCmdline != "console=ttyS0 quiet" {
			t.Errorf("%q: got %+v", args, r)
		}
	}
}

func TestKexecSyscallChoiceFlags(t *testing.T) {
	for _, tc := range []struct {
		args               []string
		file, legacy, fail bool
	}{
		{[]string{"-l", "k", "-s"}, true, false, false},
		{[]string{"-l", "k", "--kexec-file-syscall"}, true, false, false},
		{[]string{"-c", "-l", "k"}, false, true, false},
		{[]string{"-l", "k", "--kexec-syscall"}, false, true, false},
		{[]string{"-l", "k", "-s", "-c"}, false, false, true},
	} {
		r, err := parseKexecArgs(testEnv(), tc.args)
		if tc.fail {
			if err == nil {
				t.Errorf("%q accepted", tc.args)
			}
			continue
		}
		if err != nil || r.opt.ForceFile != tc.file || r.opt.ForceLegacy != tc.legacy {
			t.Errorf("%q: %+v %v", tc.args, r, err)
		}
	}
}

func TestKexecExecAndUnloadForms(t *testing.T) {
	if r, err := parseKexecArgs(testEnv(), []string{"-e"}); err != nil || !r.exec {
		t.Errorf("-e: %+v %v", r, err)
	}
	if r, err := parseKexecArgs(testEnv(), []string{"--unload"}); err != nil || !r.unload {
		t.Errorf("--unload: %+v %v", r, err)
	}
}

func TestKexecRefusesBadInvocations(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-l"},
		{"-l", "k", "extra"},
		{"-l", "k", "-e"},
		{"-e", "k"},
		{"-u", "--initrd=x"},
		{"-l", "k", "--bogus"},
	} {
		_, err := parseKexecArgs(testEnv(), args)
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("%q: got %v, want a usage error", args, err)
		}
	}
}

func TestKexecReuseCmdlineDropsBootImageAndAppends(t *testing.T) {
	r, err := parseKexecArgs(testEnv(), []string{"-l", "k", "--reuse-cmdline", "--append=rdinit=/ferry/bin/init"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.cmdline(func() (string, error) {
		return "BOOT_IMAGE=/vmlinuz initrd=/initrd.img console=ttyS0 ferry.trace=t1\n", nil
	})
	if want := "console=ttyS0 ferry.trace=t1 rdinit=/ferry/bin/init"; err != nil || got != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
}

func TestKexecHelpIsNotAnError(t *testing.T) {
	env := testEnv()
	_, err := parseKexecArgs(env, []string{"--help"})
	if err == nil || errors.As(err, new(*UsageError)) {
		t.Fatalf("got %v", err)
	}
	if !bytes.Contains(env.Stdout.(*bytes.Buffer).Bytes(), []byte("kexec -l KERNEL")) {
		t.Errorf("usage not printed: %s", env.Stdout)
	}
}

// runKexecArgs runs the kexec applet as its symlink would.
func runKexecArgs(args ...string) (int, string, string) {
	return run(append([]string{"/sbin/kexec"}, args...)...)
}

func TestKexecIsADropInForKexecTools(t *testing.T) {
	defer log.SetOutput(os.Stderr)
	code, out, errb := runKexecArgs("-v")
	if code != 0 || !strings.Contains(out, "kexec") {
		t.Errorf("-v: exit %d, %q %q", code, out, errb)
	}
	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"-p", "/b/vmlinuz"}, 1, "kdump"},
		{[]string{"/b/vmlinuz"}, 1, "shutdown(8)"},
		{[]string{"-l", "k", "--bogus"}, 1, "bogus"},
		{[]string{"-l", "/nonexistent/vmlinuz"}, 1, "cannot open /nonexistent/vmlinuz"},
		{[]string{"-f", "/nonexistent/vmlinuz", "--append=quiet"}, 1, "cannot open"},
	} {
		code, out, errb := runKexecArgs(c.args...)
		if code != c.code || !strings.Contains(errb, c.err) || out != "" {
			t.Errorf("%q: exit %d (want %d), stdout %q, stderr %q (want %q)", c.args, code, c.code, out, errb, c.err)
		}
	}
	// u-root's loader logs through the standard logger: muted, unless -d.
	runKexecArgs("-l", "/nonexistent/vmlinuz")
	if log.Writer() != io.Discard {
		t.Error("the standard logger is not muted after kexec without -d")
	}
	var dbg bytes.Buffer
	env := &Env{Stdin: &bytes.Buffer{}, Stdout: io.Discard, Stderr: &dbg}
	runKexec(context.Background(), env, []string{"-d", "-l", "/nonexistent/vmlinuz"})
	if log.Writer() != &dbg {
		t.Error("-d does not send the standard logger to stderr")
	}
}

func TestKexecForceLoadsAndExecs(t *testing.T) {
	r, err := parseKexecArgs(testEnv(), []string{"-f", "/b/vmlinuz", "--initrd=/b/i", "-x", "-y"})
	if err != nil || !r.load || !r.exec || r.kernel != "/b/vmlinuz" || r.initrd != "/b/i" {
		t.Fatalf("-f: %+v %v", r, err)
	}
}

func TestSwitchRootIsADropInForUtilLinux(t *testing.T) {
	code, out, _ := run("/sbin/switch_root", "-V")
	if code != 0 || !strings.Contains(out, "switch_root") {
		t.Errorf("-V: exit %d %q", code, out)
	}
	// util-linux: "returns 1 on failure", a bad invocation included.
	for _, args := range [][]string{{}, {"/newroot"}, {"--bogus", "/r", "/sbin/init"}} {
		if code, out, _ := run(append([]string{"/sbin/switch_root"}, args...)...); code != 1 || out != "" {
			t.Errorf("%q: exit %d, stdout %q; want 1 and nothing on stdout", args, code, out)
		}
	}
	if code, _, errb := run("/sbin/switch_root", "/nonexistent-root", "/sbin/init"); code != 1 || errb == "" {
		t.Errorf("missing root: exit %d, stderr %q", code, errb)
	}
}
