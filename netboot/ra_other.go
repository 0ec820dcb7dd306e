//go:build !linux

package netboot

import "context"

// serveRA answers nothing off Linux (see ra_linux.go).
func (s *Server) serveRA(ctx context.Context) error { return nil }
