package applets

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"ferry/ipsec/ike"
	"ferry/keeper"
)

func keeperApplet() Applet {
	return Applet{
		Name:    "keeper",
		Summary: "the tunnel keeper: keeps the lent server's IPsec tunnel (and so its NFS root) up, outliving switch_root",
		Run:     runKeeper,
	}
}

func runKeeper(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "keeper", "keeper [--listen ADDR] [--trace ID] [--state DIR] [--tunnel DIR] [--control-fd N] [--dataplane auto|kernel|user] [--shutdown-listen ADDR] [--poweroff-signal auto|command|SIG] [--lender URL --lender-ca-pin HEX]")
	listen := fs.String("listen", ":7070", "address for GET /status; with --tunnel and no host, 127.0.0.1 and the tunnel's virtual IP only")
	trace := fs.String("trace", "", "trace id of this transfer")
	state := fs.String("state", "/ferry/state", "state directory to report on")
	tunnel := fs.String("tunnel", "", "tunnel state directory (vpn.json, cert, key, CA) to keep a tunnel with; read once at start")
	shutdown := fs.String("shutdown-listen", ":7071", "address for HTTPS POST /v1/shutdown from the borrower manager (client certificate of the borrower CA; needs --tunnel); without a host, the tunnel's virtual IP only")
	sig := fs.String("poweroff-signal", keeper.SignalAuto, "how PID 1 is asked to power off at the borrower's request: auto (systemd: SIGRTMIN+4; busybox init: SIGUSR2; any other init: the root's own poweroff from /sbin, /usr/sbin, /bin or /usr/bin, run without a shell for at most 5 s, SIGUSR2 if there is none), command (always the root's poweroff), or a signal: a name (SIGUSR2, SIGRTMIN+4) or a number")
	plane := fs.String("dataplane", "auto", "ESP data plane of the tunnel: auto (kernel XFRM where the kernel has ESP, else user space), kernel or user")
	lenderURL := fs.String("lender", "", "lender URL (https://HOST:PORT, ferry.lender=) to renew the one-time certificate at before it expires (lease extension); needs --tunnel and --lender-ca-pin. Asked hourly and from max(1h, 10% of the validity) before the end, over the lender network")
	lenderPin := fs.String("lender-ca-pin", "", "SHA-256 (hex) of the lender CA certificate (ferry.ca=): the lender's TLS must present it and it must have signed a renewed certificate")
	watchDisks := fs.Bool("watch-disks", false, "mark block devices read-only as they appear, for as long as the keeper runs (image B's hand-over of its disks-ro watch)")
	disksRO := fs.String("disks-ro", "", "comma-separated block devices already marked read-only (with --watch-disks)")
	control := fs.Int("control-fd", -1, "file descriptor of the control socket from PID 1 (tunnel up events, chroot)")
	supervise := fs.Bool("supervise", true, "run the keeper proper as a child and restart it when it ends abnormally (a crash, a signal), with the tunnel state held in RAM; false: one process, not restarted")
	child := fs.Bool("child", false, "internal: the keeper proper, started by its supervisor (state on fd 3, never the command line)")
	hold := fs.Bool("hold-memory", true, "with --tunnel: never be the OOM killer's choice (oom_score_adj -1000) and lock this process's memory in RAM (mlockall), as a root-storage daemon does: the root goes through the tunnel")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	dp, err := keeper.ParseDataPlane(*plane)
	if err != nil {
		return usagef("--dataplane: %v", err)
	}
	if err := keeper.ParsePowerOff(*sig); err != nil {
		return usagef("--poweroff-signal: %v", err)
	}
	opt := keeper.Options{Trace: *trace, Listen: *listen, StateDir: *state, ShutdownListen: *shutdown,
		PowerOff: keeper.PowerOff{Signal: *sig}, DataPlane: dp, WatchDisks: *watchDisks}
	if *disksRO != "" {
		opt.DisksReadOnly = strings.Split(*disksRO, ",")
	}
	if (*lenderURL == "") != (*lenderPin == "") || (*lenderURL != "" && *tunnel == "") {
		return usagef("--lender and --lender-ca-pin go together, with --tunnel")
	}
	if *lenderURL != "" {
		opt.Renewal = &keeper.Renewal{LenderURL: *lenderURL, Pin: *lenderPin}
	}
	if *control >= 0 && *control < 3 {
		return usagef("--control-fd %d: want 3 or more (0-2 are stdio)", *control)
	}
	if *child {
		return runKeeperChild(ctx, env, opt, *hold)
	}
	h := keeper.Handover{DisksReadOnly: opt.DisksReadOnly}
	if *tunnel != "" {
		st, err := ike.LoadState(*tunnel)
		if err != nil {
			return err
		}
		opt.Tunnel = st
		holdMemory(env, *hold)
		if h.Tunnel, err = keeper.NewHandoverTunnel(st); err != nil {
			return err
		}
	}
	var ctl *os.File
	if *control >= 0 {
		ctl = os.NewFile(uintptr(*control), "control")
		opt.Control = ctl
	}
	if !*supervise {
		return keeper.New(opt, env.Log).Run(ctx)
	}
	// The same command line, as the keeper proper: the state goes over the
	// hand-over link, PID 1's control channel to fd keeper.ControlFD.
	sup := &keeper.Supervisor{Exe: "/proc/self/exe", Args: append([]string{"@ferry", "keeper", "--child"}, args...),
		Stdout: env.Stdout, Stderr: env.Stderr, Control: ctl, Backoff: keeper.RestartBackoff, Log: env.Log}
	return sup.Run(ctx, h)
}

// runKeeperChild is the keeper proper under its supervisor: what
// --tunnel and --control-fd gave the supervisor comes from its hand-over.
func runKeeperChild(ctx context.Context, env *Env, opt keeper.Options, hold bool) error {
	// Its stderr is a pipe to the supervisor: should the supervisor be
	// gone, a log line must not end the keeper with SIGPIPE.
	signal.Ignore(syscall.SIGPIPE)
	parent, h, err := keeper.OpenParent(keeper.OpenLinkFD(), env.Log)
	if err != nil {
		return err
	}
	defer parent.Close()
	if h.Tunnel != nil {
		if opt.Tunnel, err = h.Tunnel.InitiatorState(); err != nil {
			return err
		}
		h.Tunnel = nil
		holdMemory(env, hold)
	}
	if h.Control {
		opt.Control = os.NewFile(keeper.ControlFD, "control")
	}
	if h.Root {
		syscall.CloseOnExec(keeper.RootFD)
		opt.Root, opt.RootDir = os.NewFile(keeper.RootFD, h.Chrooted), h.Chrooted
	}
	opt.Parent, opt.Restarts, opt.LastRestartReason, opt.LastRestart = parent, h.Restarts, h.LastRestartReason, h.LastRestart
	opt.DisksReadOnly, opt.DisksLate = append(h.DisksReadOnly, h.DisksLate...), h.DisksLate
	return keeper.New(opt, env.Log).Run(ctx)
}

func holdMemory(env *Env, hold bool) {
	if !hold {
		return
	}
	if err := keeper.HoldInMemory("/proc"); err != nil {
		env.Log.Warn("keeper: not held in memory: the OOM killer or swap can take the tunnel under memory pressure", "err", err)
	}
}
