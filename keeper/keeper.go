// Package keeper is the long-lived ferry process that must outlive
// switch_root. In this first form it stands in for the tunnel keeper: it
// runs chrooted in the borrower's root, named "@ferry" so systemd spares it
// at shutdown, and answers status queries that show where it lives.
package keeper

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// Options configure a keeper.
type Options struct {
	Trace     string
	Listen    string
	StateDir  string
	Mountinfo string // path of the mount table, /proc/self/mountinfo
}

// Status is the keeper's answer to GET /status.
type Status struct {
	Trace         string  `json:"trace"`
	PID           int     `json:"pid"`
	RootFSType    string  `json:"root_fstype"`
	RootSource    string  `json:"root_source"`
	StateDir      string  `json:"state_dir"`
	StatePresent  bool    `json:"state_present"`
	UptimeSeconds float64 `json:"uptime_seconds"`
}

// Keeper serves status until its context ends.
type Keeper struct {
	opt   Options
	log   *slog.Logger
	start time.Time
}

// New makes a keeper.
func New(opt Options, log *slog.Logger) *Keeper {
	if opt.Mountinfo == "" {
		opt.Mountinfo = "/proc/self/mountinfo"
	}
	return &Keeper{opt: opt, log: log, start: time.Now()}
}

// Run listens and serves until ctx is done.
func (k *Keeper) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", k.opt.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: k.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	k.log.Info("keeper running", "pid", os.Getpid(), "listen", ln.Addr().String(), "trace", k.opt.Trace)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Handler serves GET /status.
func (k *Keeper) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st, err := k.Status()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	})
	return mux
}

// Status reports what the keeper sees now: its root file system is the
// proof that it moved into the borrower's root.
func (k *Keeper) Status() (*Status, error) {
	f, err := os.Open(k.opt.Mountinfo)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	root, err := RootMount(f)
	if err != nil {
		return nil, err
	}
	_, serr := os.Stat(k.opt.StateDir)
	return &Status{
		Trace:         k.opt.Trace,
		PID:           os.Getpid(),
		RootFSType:    root.FSType,
		RootSource:    root.Source,
		StateDir:      k.opt.StateDir,
		StatePresent:  serr == nil,
		UptimeSeconds: time.Since(k.start).Seconds(),
	}, nil
}
