package nfsroot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestMountRefusesBadSpecBeforeTouchingTarget(t *testing.T) {
	target := filepath.Join(t.TempDir(), "root")
	err := Mount(context.Background(), Spec{Server: "nfs.borrower.example", Path: "/"}, target, nil)
	if err == nil || !strings.Contains(err.Error(), "no resolver") {
		t.Fatalf("Mount with a host name = %v, want a refusal saying there is no resolver", err)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target was created (%v) although the spec was refused", err)
	}
}

// The host kernel has no NFS client (the lab tests real mounts under
// QEMU), but a refused mount must still name the syscall and its options.
func TestMountErrorNamesSourceAndOptions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to call mount(2)")
	}
	target := filepath.Join(t.TempDir(), "root")
	spec := Spec{Server: "127.0.0.1", Path: "/export", Version: "3", Port: 1, MountPort: 1, Timeout: 2 * time.Second}
	start := time.Now()
	err := Mount(context.Background(), spec, target, nil)
	if err == nil {
		unix.Unmount(target, unix.MNT_DETACH)
		t.Fatal("Mount of a server that does not exist succeeded")
	}
	t.Logf("Mount: %v (after %v)", err, time.Since(start))
	for _, want := range []string{`"127.0.0.1:/export"`, "vers=3,addr=127.0.0.1,nolock,proto=tcp,mountproto=tcp,mountport=1,port=1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Mount took %v, want it bounded by its 2s timeout", d)
	}
}

func TestRetryableSeparatesNetworkFromConfigErrors(t *testing.T) {
	for _, e := range []error{unix.ETIMEDOUT, unix.ECONNREFUSED, unix.EHOSTUNREACH} {
		if !retryable(e) {
			t.Errorf("retryable(%v) = false", e)
		}
	}
	for _, e := range []error{unix.ENODEV, unix.EINVAL, unix.EACCES, unix.EPERM, unix.ENOENT} {
		if retryable(e) {
			t.Errorf("retryable(%v) = true", e)
		}
	}
}
