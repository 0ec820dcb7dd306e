package nfsroot

import (
	"context"
	"errors"
	"fmt"
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

func TestMountRetriesWhileNetworkSettles(t *testing.T) {
	calls := 0
	try := func() error {
		if calls++; calls < 3 {
			return fmt.Errorf("mount(...) = %w", unix.EHOSTUNREACH)
		}
		return nil
	}
	var attempts int
	err := retry(context.Background(), try, func(int, error, time.Duration) {}, func(n int, _ time.Duration, err error) error {
		attempts = n
		return err
	})
	if err != nil || calls != 3 || attempts != 3 {
		t.Fatalf("retry = %v after %d calls (%d reported), want success on the 3rd", err, calls, attempts)
	}
}

func TestMountGivesUpAtDeadlineAndStopsOnPermanentErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := retry(ctx, func() error { return unix.ETIMEDOUT }, func(int, error, time.Duration) {},
		func(n int, _ time.Duration, err error) error { return fmt.Errorf("gave up after %d: %w", n, err) })
	if !errors.Is(err, unix.ETIMEDOUT) || !strings.Contains(err.Error(), "gave up") {
		t.Errorf("retry past the deadline = %v, want 'gave up' wrapping ETIMEDOUT", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("retry ran %v past a 600ms deadline", d)
	}
	calls := 0
	err = retry(context.Background(), func() error { calls++; return unix.EACCES }, func(int, error, time.Duration) {},
		func(int, time.Duration, error) error { return nil })
	if !errors.Is(err, unix.EACCES) || calls != 1 {
		t.Errorf("retry of EACCES = %v after %d calls, want it returned at once", err, calls)
	}
}
