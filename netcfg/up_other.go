//go:build !linux

package netcfg

import (
	"context"
	"errors"
	"log/slog"
)

// Link is the interface that Up configured (Linux only).
type Link struct {
	Name   string
	Config *Config
	Lease  *Lease
}

func (l *Link) String() string { return l.Name }

// Up is Linux-only.
func Up(context.Context, *Config, *slog.Logger) (*Link, error) {
	return nil, errors.New("netcfg: Up needs Linux")
}
