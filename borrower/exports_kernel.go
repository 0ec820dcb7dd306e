package borrower

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// kernelExports is the kernel's NFS server, through exportfs(8): each
// export is `exportfs -o OPTIONS ADDR:PATH`, removed by `exportfs -u
// ADDR:PATH`. Which exports are ferry's is read back from the kernel's
// table (etab): those whose path is under the roots directory. Exports
// made with exportfs are not in /etc/exports, so a restart of
// nfs-kernel-server drops them; the borrower puts them back at its next
// pass (every poll_seconds).
type kernelExports struct {
	bin, etab, roots, options string
}

// kexport is one (client, path) pair of the kernel's table.
type kexport struct {
	client string
	path   string
}

func (k *kernelExports) Set(ctx context.Context, want []Export) error {
	have, err := k.current()
	if err != nil {
		return err
	}
	wanted := map[kexport]bool{}
	for _, e := range want {
		x := kexport{client: e.Client.String(), path: e.Path}
		wanted[x] = true
		if !have[x] {
			if err := k.run(ctx, "-o", k.options, x.client+":"+x.path); err != nil {
				return err
			}
		}
	}
	for x := range have {
		if !wanted[x] {
			if err := k.run(ctx, "-u", x.client+":"+x.path); err != nil {
				return err
			}
		}
	}
	return nil
}

func (k *kernelExports) run(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, k.bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %.300s", k.bin, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// current reads ferry's exports from the kernel's table: lines
// "PATH<TAB>CLIENT(OPTIONS)"; a missing table is an empty one.
func (k *kernelExports) current() (map[kexport]bool, error) {
	f, err := os.Open(k.etab)
	if errors.Is(err, os.ErrNotExist) {
		return map[kexport]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kernel exports: %w", err)
	}
	defer f.Close()
	out := map[kexport]bool{}
	sc := bufio.NewScanner(io.LimitReader(f, 64<<20))
	sc.Buffer(nil, 64<<10)
	for sc.Scan() {
		path, rest, ok := strings.Cut(sc.Text(), "\t")
		client, _, _ := strings.Cut(rest, "(")
		if ok && (path == k.roots || strings.HasPrefix(k.roots, path+"/") || path == "/") {
			// The hole this driver closes: every root in one export.
			return nil, fmt.Errorf("kernel exports: %s is exported to %s, which holds every lent server's root: remove it from /etc/exports and run exportfs -ra", path, client)
		}
		if !ok || filepath.Dir(path) != k.roots {
			continue
		}
		if _, err := netip.ParseAddr(client); err != nil {
			// Not an address ferry exports to (a host name, a net, "*"):
			// not ferry's, left alone.
			continue
		}
		out[kexport{client: client, path: path}] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kernel exports %s: %w", k.etab, err)
	}
	return out, nil
}
