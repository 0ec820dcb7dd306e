// Package keeper is the long-lived ferry process that must outlive
// switch_root: the tunnel keeper. B's PID 1 starts it in the initramfs
// before the NFS mount; it re-opens the IKEv2 tunnel with the one-time
// certificate and keeps it (DPD, rekeys) for the whole lease, since the
// NFS root travels through it. When PID 1 has mounted the root it tells
// the keeper, over a control socket, to chroot into it; named "@ferry"
// (systemd spares such root-storage daemons at shutdown), it then answers
// status queries that show where it lives and whether the tunnel is up.
//
// At return the borrower manager asks it, over HTTPS with a client
// certificate of the borrower CA, to shut the server down: the keeper
// asks the root's init to power off (PowerOff: a signal, or the root's
// own poweroff command) and stays to the very
// end, since the root it carries to the NFS server is unmounted last.
// It deletes the tunnel (IKE DELETE, so the gateway sees the server leave
// at once) only when the root no longer needs it: the system is going
// down (PID 1 is systemd-shutdown, or SIGTERM) and every NFS superblock is
// read-only, hence synced (leave.go).
// Without a tunnel (the lab's ferry.source= mode) it only answers status.
package keeper

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"ferry/disks"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"ferry/ipsec/ike"
	"ferry/nfsroot"
)

// Options configure a keeper.
type Options struct {
	Trace     string
	Listen    string
	StateDir  string
	Mountinfo string // path of the mount table, /proc/self/mountinfo
	Proc      string // where proc is mounted, /proc (PID 1's program: leave.go)
	// Tunnel, when set, is the initiator state the keeper keeps a tunnel
	// with; Control is PID 1's end of the control channel (control.go).
	Tunnel  *ike.InitiatorState
	Control io.ReadWriter
	// DataPlane is where the tunnel's ESP runs; "" is auto (tunnel.go).
	DataPlane DataPlane
	// ShutdownListen is where HTTPS for the borrower manager's shutdown
	// request listens (shutdown.go); it needs Identity, taken from Tunnel
	// when nil. Empty, or no identity: no shutdown listener.
	ShutdownListen string
	Identity       *Identity
	PowerOff       PowerOff
	// Renewal, when set with a tunnel, renews the one-time certificate
	// at the lender before it expires (renew.go).
	Renewal *Renewal
	// WatchDisks marks block devices read-only as they appear, for the
	// whole lease (disks.go); DisksReadOnly are those B marked already.
	WatchDisks    bool
	DisksReadOnly []string
	// Parent is the supervisor that restarts this keeper (supervisor.go),
	// nil when it runs alone. From its hand-over: how often the keeper
	// was restarted and why last, and the disks earlier keepers marked.
	Parent *Parent
	// Root, for a keeper restarted after the first one moved into the
	// root (RootDir), is that root's directory: the keeper starts outside
	// it and moves in once its tunnel is up (supervisor.go says why).
	Root              *os.File
	RootDir           string
	Restarts          int
	LastRestartReason string
	LastRestart       time.Time
	DisksLate         []string
}

// Status is the keeper's answer to GET /status.
type Status struct {
	Trace         string        `json:"trace"`
	PID           int           `json:"pid"`
	RootFSType    string        `json:"root_fstype"`
	RootSource    string        `json:"root_source"`
	StateDir      string        `json:"state_dir"`
	StatePresent  bool          `json:"state_present"`
	UptimeSeconds float64       `json:"uptime_seconds"`
	Tunnel        *TunnelStatus `json:"tunnel,omitempty"`
	// Certificate is the one-time certificate in use and its renewal.
	Certificate *CertStatus `json:"certificate,omitempty"`
	// ShutdownRequested: the borrower asked, and init was signalled.
	ShutdownRequested bool `json:"shutdown_requested"`
	// DisksMarkedLate are block devices that appeared while the keeper
	// ran and that it marked read-only.
	DisksMarkedLate []string `json:"disks_marked_late,omitempty"`
	// Memory is the keeper's hold on RAM (HoldInMemory), read now.
	Memory *MemoryHold `json:"memory,omitempty"`
	// Restarts counts the keeper's restarts by its supervisor;
	// LastRestartReason is why the last keeper before this one ended
	// ("exit status 2: SIGABRT: abort"), LastRestart when.
	Restarts          int    `json:"restarts"`
	LastRestartReason string `json:"last_restart_reason,omitempty"`
	LastRestart       string `json:"last_restart,omitempty"`
	// Supervisor is the process that restarts the keeper (it holds the
	// key too) and its hold on RAM.
	Supervisor *SupervisorStatus `json:"supervisor,omitempty"`
}

// SupervisorStatus is the supervisor part of GET /status.
type SupervisorStatus struct {
	PID    int         `json:"pid"`
	Memory *MemoryHold `json:"memory,omitempty"`
}

// Keeper serves status until its context ends.
type Keeper struct {
	opt    Options
	log    *slog.Logger
	start  time.Time
	tunnel *Tunnel

	shutdownAsked atomic.Bool
	leaving       *leaver
	limits        httpLimits
	// serving is the shutdown listener's certificate: the identity's,
	// then each renewed one.
	serving atomic.Pointer[tls.Certificate]
	renew   *renewer
	disks   atomic.Pointer[disks.Watcher]
	// up is closed when the tunnel is first up.
	up chan struct{}
}

// New makes a keeper.
func New(opt Options, log *slog.Logger) *Keeper {
	if opt.Mountinfo == "" {
		opt.Mountinfo = "/proc/self/mountinfo"
	}
	if opt.Proc == "" {
		opt.Proc = "/proc"
	}
	if opt.Identity == nil && opt.Tunnel != nil {
		opt.Identity = &Identity{Certs: opt.Tunnel.Certs, Key: opt.Tunnel.Key, CAs: opt.Tunnel.CAs}
	}
	return &Keeper{opt: opt, log: log, start: time.Now(), limits: defaultLimits, leaving: newLeaver(), up: make(chan struct{})}
}

// Run opens the tunnel (when configured), listens and serves until ctx
// is done.
func (k *Keeper) Run(ctx context.Context) error {
	if k.opt.Tunnel != nil {
		// The tunnel does not end with ctx: SIGTERM ends ctx, and an IKE
		// daemon that stops deletes its SAs, under a root that may still
		// be writable. leaveOnExit decides: a DELETE once the root is
		// read-only (k.leave closes the tunnel), or none, and the SAs go
		// with the process (kernel states outlive it).
		t, err := OpenTunnel(context.WithoutCancel(ctx), k.opt.Tunnel, k.opt.DataPlane, k.log)
		if err != nil {
			return err
		}
		k.tunnel = t
		// A renewal that cannot start must not cost the tunnel (and the
		// root with it): the certificate in hand lasts until its end.
		if err := k.startRenewal(ctx); err != nil {
			k.log.Error("certificate renewal off: the certificate in use lasts until its end", "err", err)
		}
		// The DELETE goes when the root no longer needs the tunnel
		// (leave.go), and at the latest when the keeper is told to stop.
		defer k.leaveOnExit()
		go k.keepTunnel(ctx)
		go k.watchLeave(ctx)
	}
	if k.opt.Control != nil {
		go k.serveControl(ctx, k.opt.Control)
	}
	if k.opt.Root != nil {
		go k.moveIntoRoot(ctx)
	} else {
		k.spare()
	}
	if k.opt.WatchDisks {
		go k.watchDisks(ctx)
	}
	srv := k.newHTTPServer(k.Handler())
	status, err := k.listen("status", k.opt.Listen, true, srv.Serve)
	if err != nil {
		return err
	}
	shut, err := k.listenShutdown(ctx)
	if err != nil {
		status.close()
		return err
	}
	k.log.Info("keeper running", "pid", os.Getpid(), "listen", k.opt.Listen, "trace", k.opt.Trace)
	k.followTunnel(ctx, status, shut)
	stop, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(stop)
	status.close()
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
	var ts *TunnelStatus
	if k.tunnel != nil {
		s := k.tunnel.Status()
		ts = &s
	}
	var cs *CertStatus
	if k.renew != nil {
		c := k.renew.Status()
		cs = &c
	}
	var mem *MemoryHold
	if h, err := readMemoryHold(k.opt.Proc); err == nil {
		mem = &h
	}
	var last string
	if !k.opt.LastRestart.IsZero() {
		last = k.opt.LastRestart.UTC().Format(time.RFC3339)
	}
	var sup *SupervisorStatus
	if k.opt.Parent != nil {
		sup = &SupervisorStatus{PID: os.Getppid()}
		if h, err := readMemoryHoldOf(filepath.Join(k.opt.Proc, strconv.Itoa(sup.PID))); err == nil {
			sup.Memory = &h
		}
	}
	return &Status{
		Restarts:          k.opt.Restarts,
		Supervisor:        sup,
		LastRestartReason: k.opt.LastRestartReason,
		LastRestart:       last,
		Memory:            mem,
		Tunnel:            ts,
		Certificate:       cs,
		Trace:             k.opt.Trace,
		PID:               os.Getpid(),
		RootFSType:        root.FSType,
		RootSource:        root.Source,
		StateDir:          k.opt.StateDir,
		StatePresent:      serr == nil,
		UptimeSeconds:     time.Since(k.start).Seconds(),

		ShutdownRequested: k.shutdownAsked.Load(),
		DisksMarkedLate:   k.disksLate(),
	}, nil
}

// keepTunnel brings the tunnel up, telling PID 1 about every attempt
// until one succeeds, then keeps it up until ctx ends.
func (k *Keeper) keepTunnel(ctx context.Context) {
	for ctx.Err() == nil {
		err := k.tunnel.Connect(ctx)
		if err == nil {
			st := k.tunnel.Status()
			k.log.Info("tunnel up", "gateway", st.Gateway, "virtual_ip", st.VirtualIP, "dataplane", st.DataPlane)
			k.event("tunnel up " + st.VirtualIP + " " + string(st.DataPlane))
			close(k.up)
			break
		}
		k.log.Warn("tunnel not up, retrying", "err", err)
		k.event("tunnel failed: " + err.Error())
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
	k.tunnel.Keep(ctx)
}

// moveIntoRoot moves a restarted keeper into the root once the tunnel,
// which carries the root, is up: until then the root's paths would wait.
func (k *Keeper) moveIntoRoot(ctx context.Context) {
	if k.opt.Tunnel != nil {
		select {
		case <-k.up:
		case <-ctx.Done():
			return
		}
	}
	if err := moveInto(k.opt.Root); err != nil {
		k.log.Error("restarted keeper: not moved into the root", "dir", k.opt.RootDir, "err", err)
		return
	}
	k.opt.Root.Close()
	k.log.Info("restarted keeper moved into the root", "dir", k.opt.RootDir)
	k.spare()
}

// spare lists a supervised keeper beside its supervisor (which PID 1
// lists, nfsroot.SpareKeeper) in /run/sendsigs.omit.d: a sysvinit root's
// rc 0 kills every process not listed there before its root is
// read-only, and the keeper proper has a PID of its own, a new one at
// each restart. /run is the initramfs's tmpfs, the root's once moved
// there: the first keeper writes before its chroot, a restarted one once
// it is in the root. Lab mode (no tunnel, started inside the NFS root)
// needs no tunnel to the end and is not listed.
func (k *Keeper) spare() {
	if k.opt.Parent == nil || k.opt.Tunnel == nil {
		return
	}
	if err := nfsroot.SpareProcess("/run", "ferry-keeper-proper", os.Getpid()); err != nil {
		k.log.Warn("keeper not spared from a sysvinit root's sendsigs: it may be killed before the root is read-only", "err", err)
	}
}

func (k *Keeper) event(line string) {
	if k.opt.Control != nil {
		fmt.Fprintln(k.opt.Control, oneLine(line))
	}
}

// listenShutdown starts the shutdown listener when one is configured;
// nil when not.
func (k *Keeper) listenShutdown(ctx context.Context) (*endpoint, error) {
	if k.opt.ShutdownListen == "" || k.opt.Identity == nil {
		k.log.Info("no shutdown listener: no address or no identity (lab mode)")
		return nil, nil
	}
	cfg, err := k.opt.Identity.TLSConfig()
	if err != nil {
		return nil, err
	}
	// The borrower pins our key, not the certificate: a renewed one (same
	// key) is served from the next handshake on.
	if k.serving.Load() == nil {
		k.serving.Store(&cfg.Certificates[0])
	}
	cfg.Certificates = nil
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return k.serving.Load(), nil }
	if err := ParsePowerOff(k.opt.PowerOff.Signal); err != nil {
		return nil, fmt.Errorf("keeper: %w", err)
	}
	srv := k.newHTTPServer(k.ShutdownHandler())
	e, err := k.listen("shutdown", k.opt.ShutdownListen, false, func(ln net.Listener) error {
		return srv.Serve(tls.NewListener(ln, cfg))
	})
	if err != nil {
		return nil, err
	}
	go func() {
		<-ctx.Done()
		srv.Close()
		e.close()
	}()
	k.log.Info("shutdown listener (HTTPS, client certificate of the borrower CA)", "listen", k.opt.ShutdownListen,
		"power_off_signal", k.opt.PowerOff.Signal)
	return e, nil
}

// startRenewal starts the certificate renewal loop when the keeper has a
// tunnel and knows its lender; each renewed certificate goes into the IKE
// initiator (next IKE_AUTH) and the shutdown listener (next handshake).
func (k *Keeper) startRenewal(ctx context.Context) error {
	if k.opt.Renewal == nil || k.opt.Renewal.LenderURL == "" || k.tunnel == nil {
		return nil
	}
	id := k.opt.Identity
	install := func(chain []*x509.Certificate) error {
		if err := k.tunnel.d.SetCerts(chain); err != nil {
			return err
		}
		raw := make([][]byte, 0, len(chain))
		for _, c := range chain {
			raw = append(raw, c.Raw)
		}
		k.serving.Store(&tls.Certificate{Certificate: raw, PrivateKey: id.Key, Leaf: chain[0]})
		k.opt.Parent.Renewed(chain) // a restarted keeper goes on with it
		return nil
	}
	r, err := newRenewer(*k.opt.Renewal, k.tunnel.d.Certs(), id.Key, install, k.log)
	if err != nil {
		return err
	}
	k.renew = r
	go r.run(ctx)
	k.log.Info("certificate renewal at the lender", "lender", k.opt.Renewal.LenderURL,
		"not_after", r.Status().NotAfter)
	return nil
}
