package netboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/pin/tftp/v3"
)

const (
	// maxTFTPFile bounds a served file: iPXE binaries are under 1 MiB.
	maxTFTPFile = 16 << 20
	// maxTFTPTransfers bounds concurrent transfers.
	maxTFTPTransfers = 32
)

// tftpReader serves the iPXE binaries, read-only, and only the configured
// names: a PXE network is no place for a general file server.
type tftpReader struct {
	dir   string
	names []string
	sem   chan struct{}
	s     *Server
}

func (s *Server) newTFTPReader() (*tftpReader, error) {
	if st, err := os.Stat(s.cfg.TFTPRoot); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("netboot: tftp root %s: not a directory (%v)", s.cfg.TFTPRoot, err)
	}
	return &tftpReader{dir: s.cfg.TFTPRoot, names: []string{s.cfg.BIOSFile, s.cfg.EFIFile},
		sem: make(chan struct{}, maxTFTPTransfers), s: s}, nil
}

func (t *tftpReader) read(name string, rf io.ReaderFrom) error {
	peer := ""
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		a := ot.RemoteAddr()
		peer = a.String()
	}
	log := t.s.log.With("remote", peer, "file", name)
	select {
	case t.sem <- struct{}{}:
		defer func() { <-t.sem }()
	default:
		log.Warn("netboot: tftp busy")
		t.s.cfg.Events.Transfer("tftp", "rom", "refused", 0)
		return errors.New("busy")
	}
	f, size, err := t.open(name)
	if err != nil {
		log.Warn("netboot: tftp refused", "err", err)
		t.s.cfg.Events.Transfer("tftp", "rom", "refused", 0)
		return err
	}
	defer f.Close()
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ot.SetSize(size)
	}
	n, err := rf.ReadFrom(io.LimitReader(f, maxTFTPFile))
	if err != nil {
		log.Warn("netboot: tftp transfer", "bytes", n, "err", err)
		t.s.cfg.Events.Transfer("tftp", "rom", "failed", n)
		return err
	}
	log.Info("netboot: tftp served", "bytes", n)
	t.s.cfg.Events.Transfer("tftp", "rom", "served", n)
	return nil
}

func (t *tftpReader) open(name string) (*os.File, int64, error) {
	return openROM(t.dir, t.names, name)
}

// openROM opens name in dir if it is one of names (local names, checked
// by Config.fill), a regular file of at most maxTFTPFile bytes: TFTP and
// the HTTP boot URL share it. Symlinks are followed wherever they lead:
// Debian's ipxe installs ipxe.efi as a link to /boot/ipxe.efi, and only
// the operator's names are ever opened, never a client's.
func openROM(dir string, names []string, name string) (*os.File, int64, error) {
	if !slices.Contains(names, name) {
		return nil, 0, fmt.Errorf("%q is not served (only %v)", name, names)
	}
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	switch {
	case err != nil:
	case !st.Mode().IsRegular():
		err = fmt.Errorf("%q is not a regular file", name)
	case st.Size() > maxTFTPFile:
		err = fmt.Errorf("%q is %d bytes, more than %d", name, st.Size(), maxTFTPFile)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// serveTFTP listens on cfg.TFTPAddr until ctx ends.
func (s *Server) serveTFTP(ctx context.Context) error {
	conn, err := (&net.ListenConfig{}).ListenPacket(ctx, "udp4", s.cfg.TFTPAddr)
	if err != nil {
		return fmt.Errorf("netboot: tftp: %w", err)
	}
	return s.ServeTFTP(ctx, conn)
}

// ServeTFTP serves the iPXE binaries on conn until ctx ends.
func (s *Server) ServeTFTP(ctx context.Context, conn net.PacketConn) error {
	r, err := s.newTFTPReader()
	if err != nil {
		conn.Close()
		return err
	}
	ts := tftp.NewServer(r.read, nil)
	ts.SetTimeout(5 * time.Second)
	ts.SetRetries(5)
	context.AfterFunc(ctx, ts.Shutdown)
	s.log.Info("netboot: tftp listening", "addr", conn.LocalAddr().String(), "root", s.cfg.TFTPRoot)
	if err := ts.Serve(conn); err != nil && ctx.Err() == nil {
		return fmt.Errorf("netboot: tftp %s: %w", conn.LocalAddr(), err)
	}
	return ctx.Err()
}
