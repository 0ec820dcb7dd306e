package applets

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"time"

	"ferry/ipsec/dataplane"
	"ferry/ipsec/ike"
	"ferry/ipsec/xfrm"
	"ferry/pki"
)

const vpnUsage = `vpn up|status|down|save [OPTIONS]

The lent server's IKEv2 initiator, authenticated by its one-time certificate.
  vpn up      open the tunnel and keep it (DPD, rekeys); --background detaches
  vpn status  print the IKE and CHILD SAs of the running daemon
  vpn down    delete the SAs, remove the fail-closed state and stop the daemon
              (any other exit keeps packets to the remote subnets blocked)
  vpn save    write the identity and settings into a state directory, so
              that 'vpn up --state DIR' re-opens the same tunnel after kexec
Run 'vpn up --help' for the options.`

func vpnApplet() Applet {
	return Applet{
		Name:    "vpn",
		Summary: "IPsec tunnel to the borrower's gateway (IKEv2 initiator)",
		Run:     runVPN,
	}
}

func runVPN(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usagef("missing subcommand: %s", vpnUsage)
	}
	switch args[0] {
	case "up":
		return vpnUp(ctx, env, args[1:])
	case "save":
		return vpnSave(env, args[1:])
	case "status", "down":
		fs := newFlags(env, "vpn "+args[0], "vpn "+args[0]+" [--status SOCKET]")
		sock := fs.String("status", defaultVPNSocket, "status socket of the running daemon")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		out, err := ike.Control(ctx, *sock, args[0])
		if err != nil {
			return err
		}
		_, err = env.Stdout.Write(out)
		return err
	case "--help", "-h", "help":
		fmt.Fprintf(env.Stderr, "usage: %s\n", vpnUsage)
		return flag.ErrHelp
	}
	return usagef("unknown subcommand %q: %s", args[0], vpnUsage)
}

const defaultVPNSocket = "/run/ferry-vpn.sock"

// vpnFile is the JSON configuration of `vpn up --config`.
type vpnFile struct {
	Gateway    string   `json:"gateway"`
	Local      string   `json:"local,omitempty"`
	CA         string   `json:"ca"`
	Cert       string   `json:"cert"`
	Key        string   `json:"key"`
	Subnets    []string `json:"subnets,omitempty"`
	VirtualIP  *bool    `json:"virtual_ip,omitempty"`
	ForceEncap *bool    `json:"force_encap,omitempty"`
}

// vpnFlags are the options shared by up and save.
type vpnFlags struct {
	config, gateway, local, ca, cert, key, state string
	subnets                                      listFlag
	vip, encap                                   bool
}

func (f *vpnFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "JSON file with gateway, local, ca, cert, key, subnets, virtual_ip, force_encap")
	fs.StringVar(&f.gateway, "gateway", "", "gateway address")
	fs.StringVar(&f.local, "local", "", "local address (default: the one routed to the gateway)")
	fs.StringVar(&f.ca, "ca", "", "CA certificate(s) (PEM) the gateway's certificate must chain to")
	fs.StringVar(&f.cert, "cert", "", "own certificate chain (PEM)")
	fs.StringVar(&f.key, "key", "", "own private key (PEM)")
	fs.Var(&f.subnets, "subnet", "remote subnet to reach (repeatable; default everything the gateway allows)")
	fs.BoolVar(&f.vip, "vip", true, "ask the gateway for a virtual IP")
	fs.BoolVar(&f.encap, "force-encap", true, "UDP-encapsulate ESP even without NAT (user-space ESP needs it)")
	fs.StringVar(&f.state, "state", "", "state directory written by 'vpn save' (replaces the other options)")
}

// load builds the initiator state from a state directory, a config file
// or the flags, in that order.
func (f *vpnFlags) load() (*ike.InitiatorState, error) {
	if f.state != "" {
		return ike.LoadState(f.state)
	}
	if f.config != "" {
		if err := f.readConfig(); err != nil {
			return nil, err
		}
	}
	if f.gateway == "" || f.ca == "" || f.cert == "" || f.key == "" {
		return nil, usagef("need --gateway, --ca, --cert and --key (or --config or --state)")
	}
	s := &ike.InitiatorState{VirtualIP: f.vip, ForceEncap: f.encap}
	var err error
	if s.Gateway, err = netip.ParseAddr(f.gateway); err != nil {
		return nil, usagef("--gateway %q: %v", f.gateway, err)
	}
	if f.local != "" {
		if s.Local, err = netip.ParseAddr(f.local); err != nil {
			return nil, usagef("--local %q: %v", f.local, err)
		}
	}
	for _, p := range f.subnets {
		q, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, usagef("--subnet %q: %v", p, err)
		}
		s.RemoteSubnets = append(s.RemoteSubnets, q)
	}
	if s.CAs, err = pki.LoadCertsFile(f.ca); err != nil {
		return nil, err
	}
	if s.Certs, err = pki.LoadCertsFile(f.cert); err != nil {
		return nil, err
	}
	s.Key, err = pki.LoadKeyFile(f.key)
	return s, err
}

func (f *vpnFlags) readConfig() error {
	b, err := os.ReadFile(f.config)
	if err != nil {
		return err
	}
	var c vpnFile
	if err := strictJSON(b, &c); err != nil {
		return fmt.Errorf("%s: %w", f.config, err)
	}
	f.gateway, f.local, f.ca, f.cert, f.key = c.Gateway, c.Local, c.CA, c.Cert, c.Key
	f.subnets = c.Subnets
	if c.VirtualIP != nil {
		f.vip = *c.VirtualIP
	}
	if c.ForceEncap != nil {
		f.encap = *c.ForceEncap
	}
	return nil
}

func vpnSave(env *Env, args []string) error {
	fs := newFlags(env, "vpn save", "vpn save --to DIR [--allow-disk] (--config FILE | --gateway ADDR --ca F --cert F --key F ...)")
	var f vpnFlags
	f.register(fs)
	to := fs.String("to", "", "directory to write the state into (must not hold one)")
	allowDisk := fs.Bool("allow-disk", false, "allow the key on a file system that is not tmpfs or ramfs")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *to == "" {
		return usagef("--to DIR is required")
	}
	s, err := f.load()
	if err != nil {
		return err
	}
	return s.Save(*to, *allowDisk)
}

func vpnUp(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "vpn up", "vpn up [--background] [--status SOCKET] [--tun NAME] (--state DIR | --config FILE | --gateway ADDR --ca F --cert F --key F ...)")
	var f vpnFlags
	f.register(fs)
	sock := fs.String("status", defaultVPNSocket, "status socket")
	tun := fs.String("tun", "ferry0", "TUN device for user-space ESP")
	def := ike.DefaultTimers()
	ikeLife := fs.Duration("ike-lifetime", 0, fmt.Sprintf("IKE SA lifetime (default: the state's ike_lifetime_seconds, else %ds)", def.IKELifetimeSeconds))
	childLife := fs.Duration("child-lifetime", 0, fmt.Sprintf("CHILD_SA lifetime (default: the state's child_lifetime_seconds, else %ds)", def.ChildLifetimeSeconds))
	margin := fs.Duration("rekey-margin", 0, fmt.Sprintf("rekey between 2 and 1 margins before a lifetime ends (default: the state's rekey_margin_seconds, else %ds)", def.RekeyMarginSeconds))
	dpd := fs.Duration("dpd", 0, fmt.Sprintf("liveness check after this long without IKE or ESP from the gateway (default: the state's dpd_seconds, else %ds)", def.DPDSeconds))
	plane := fs.String("dataplane", "user", "ESP data plane: user (user-space over TUN, works everywhere) or kernel (XFRM; needs esp4)")
	bg := fs.Bool("background", false, "detach and run in the background once the options are checked")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	s, err := f.load()
	if err != nil {
		return err
	}
	if *plane != "user" && *plane != "kernel" {
		return usagef("--dataplane %q: want user or kernel", *plane)
	}
	if *bg {
		return background(ctx, env, *sock)
	}
	for _, o := range []struct {
		flag time.Duration
		to   *int
	}{{*ikeLife, &s.IKELifetimeSeconds}, {*childLife, &s.ChildLifetimeSeconds}, {*margin, &s.RekeyMarginSeconds}, {*dpd, &s.DPDSeconds}} {
		if o.flag != 0 {
			*o.to = int((o.flag + time.Second - 1) / time.Second)
		}
	}
	var timers ike.Config
	if err := s.Timers.Apply(&timers); err != nil {
		return usagef("%v", err)
	}
	return runInitiator(ctx, env, s, *sock, *tun, timers, *plane == "kernel")
}

// runInitiator holds the tunnel in the foreground; timers carries the
// lifetimes and DPD interval.
func runInitiator(ctx context.Context, env *Env, s *ike.InitiatorState, sock, tun string, timers ike.Config, kernel bool) error {
	if !s.Local.IsValid() {
		a, err := routedFrom(s.Gateway)
		if err != nil {
			return err
		}
		s.Local = a
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Only `vpn down` ends the lease and removes the fail-closed state
	// (block policies or prohibit routes for the remote subnets); any
	// other exit leaves it, so that nothing goes out in clear meanwhile.
	var down atomic.Bool
	var plane dataplane.DataPlane
	defer func() {
		if plane == nil {
			return
		}
		if down.Load() {
			plane.Teardown(context.Background())
		} else {
			plane.Close()
		}
	}()
	cfg := timers
	cfg.Local, cfg.Certs, cfg.Key, cfg.CAs = s.Local, s.Certs, s.Key, s.CAs
	cfg.ForceEncap, cfg.Log = s.ForceEncap || !kernel, env.Log
	if kernel {
		p, err := xfrm.New(ctx, xfrm.Config{Log: env.Log})
		if err != nil {
			return err
		}
		plane, cfg.DataPlane = p, p
	} else {
		us, err := ike.OpenUserspace(s.Local, 4500, tun, 1400, netip.Prefix{}, env.Log)
		if err != nil {
			return err
		}
		plane, cfg.DataPlane, cfg.NATSocket = us, us, us.Socket
		go us.Run(ctx)
	}
	if err := plane.Guard(ctx, s.RemoteSubnets, s.Gateway); err != nil {
		return err
	}
	d, err := ike.New(cfg)
	if err != nil {
		return err
	}
	go d.ServeControl(ctx, sock, func() { down.Store(true); cancel() })
	go d.Keep(ctx, s.Target())
	return d.Run(ctx)
}

// routedFrom is the local address the kernel would use towards gw.
func routedFrom(gw netip.Addr) (netip.Addr, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, 500)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("vpn: no route to gateway %s: %w", gw, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// background re-runs this command without --background in a new session
// and waits until its status socket answers.
func background(ctx context.Context, env *Env, sock string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	var args []string
	for _, a := range os.Args[1:] {
		if a != "--background" && a != "-background" {
			args = append(args, a)
		}
	}
	if len(args) > 0 && args[0] != "vpn" {
		args = append([]string{"vpn"}, args...) // called through a symlink
	}
	cmd := exec.Command(exe, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("vpn: start in background: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := ike.Control(ctx, sock, "status"); err == nil {
			fmt.Fprintf(env.Stdout, "vpn: running as pid %d, status socket %s\n", cmd.Process.Pid, sock)
			return cmd.Process.Release()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("vpn: background daemon (pid %d) did not open %s within 10 s", cmd.Process.Pid, sock)
}

func strictJSON(b []byte, v any) error {
	if len(b) > 1<<20 {
		return fmt.Errorf("config is %d bytes, over 1 MiB", len(b))
	}
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
