package nfsroot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"ferry/netcfg"
)

// Mount mounts the export of spec on target (created if missing). The
// network may still be settling (carrier, ARP, the tunnel), so transient
// failures are retried with backoff until spec.Timeout (default
// DefaultMountTimeout) or ctx ends; failures that retrying cannot fix (no
// NFS support in the kernel, bad options, access denied) end it at once.
// Errors name server:path and the options.
func Mount(ctx context.Context, spec Spec, target string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Refuse a bad spec before touching anything.
	if _, _, _, err := MountOptions(spec, nil); err != nil {
		return err
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("nfs root %s:%s: %w", spec.Server, spec.Path, err)
	}
	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = DefaultMountTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	return retry(ctx, func() error { return mountOnce(spec, target, log) }, func(attempt int, err error, wait time.Duration) {
		log.Warn("nfsroot: mount failed, retrying", "attempt", attempt, "err", err, "in", wait)
	}, func(attempts int, took time.Duration, err error) error {
		if err != nil {
			return fmt.Errorf("nfs root %s:%s: gave up after %v and %d attempts: %w", spec.Server, spec.Path, took.Round(time.Millisecond), attempts, err)
		}
		log.Info("nfsroot: mounted", "server", spec.Server, "path", spec.Path, "target", target, "attempts", attempts, "took", took)
		return nil
	})
}

// retry calls try until it succeeds, fails for good (not retryable) or ctx
// ends, backing off from 250ms to 4s; done sees the outcome of a retried
// run (a permanent failure is returned as it is).
func retry(ctx context.Context, try func() error, failed func(int, error, time.Duration), done func(int, time.Duration, error) error) error {
	backoff := 250 * time.Millisecond
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := try()
		if err == nil {
			return done(attempt, time.Since(start), nil)
		}
		if !retryable(err) {
			return err
		}
		failed(attempt, err, backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return done(attempt, time.Since(start), err)
		case <-t.C:
		}
		backoff = min(backoff*2, 4*time.Second)
	}
}

func mountOnce(spec Spec, target string, log *slog.Logger) error {
	client, err := netcfg.SourceAddr(net.ParseIP(spec.Server))
	if err != nil {
		// No route yet: worth another try once the network has settled.
		return fmt.Errorf("nfs root %s:%s: %w", spec.Server, spec.Path, errors.Join(err, unix.ENETUNREACH))
	}
	fstype, source, data, err := MountOptions(spec, client)
	if err != nil {
		return err
	}
	log.Debug("nfsroot: mount", "source", source, "target", target, "fstype", fstype, "data", data)
	if err := unix.Mount(source, target, fstype, 0, data); err != nil {
		err = fmt.Errorf("mount(%q, %q, %q, %#x, %q) = %w", source, target, fstype, 0, data, err)
		switch {
		case errors.Is(err, unix.ENODEV):
			err = fmt.Errorf("%w (kernel has no %s file system: load the nfs/nfsv4 modules)", err, fstype)
		case errors.Is(err, unix.EPROTONOSUPPORT) && spec.Version == "3":
			// nfs asks for nfsv3 when the mount names version 3, and no
			// modprobe answers in an initramfs whose init is ferry.
			err = fmt.Errorf("%w (kernel has no NFSv3 client: load the nfsv3 module)", err)
		}
		return err
	}
	return nil
}

// retryable reports whether a mount error may go away as the network and
// the server settle.
func retryable(err error) bool {
	for _, e := range []error{
		unix.ETIMEDOUT, unix.ECONNREFUSED, unix.ECONNRESET, unix.EHOSTUNREACH,
		unix.ENETUNREACH, unix.EHOSTDOWN, unix.ENETDOWN, unix.EADDRNOTAVAIL,
		unix.EAGAIN, unix.EIO, unix.ENOLINK,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
