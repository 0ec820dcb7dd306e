package applets

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"ferry/borrower"
	"ferry/catalog"
	"ferry/configfile"
)

const borrowerHelp = `borrower: the borrower's manager (image B, NFS roots, leases, gateway keys)

workflow (paths: --dir, else $FERRY_BORROWER_DIR, else /var/lib/ferry/borrower;
--config, else $FERRY_BORROWER_CONFIG, else /etc/ferry/borrower.json):
  0. ferry borrower init --name acme --from-lender for-borrowers --gateway 198.51.100.7 \
         --lan 10.8.0.1 --tunnel-pool 10.8.1.0/24 [--nfs kernel|ganesha|none]
       makes, all or nothing: the organisation's CA (or yours: --ca-cert/
       --ca-key), the m2m client, images server, keeper client and gateway
       certificates (keys 0600), a commented borrower.json and gateway.json
       (/etc/ferry/gateway.json), and DIR/for-lender/borrower-ca.pem; prints
       the lender's next command (ferry lender borrower add acme ...)
     ferry gateway --check && ferry borrower serve --check
       every problem of the files at once, and what a lease will need (key
       pairs, CAs, the NFS server, the gateway, the lender over mutual TLS)
  1. ferry borrower serve --config borrower.json &
       {"dir": "/var/lib/ferry-borrower", "lender_url": "https://lender:9443",
        "m2m_cert": "m2m.pem", "m2m_key": "m2m.key", "m2m_ca": "lender-org-ca.pem",
        "borrower_ca": "gateway-ca.pem", "gateway": "198.51.100.7:500",
        "allow_file": "/etc/ferry/gateway-allow.jsonl",
        "gateway_status": "/run/ferry-gateway.sock",
        "image_listen": "10.8.0.1:8444", "image_url": "https://10.8.0.1:8444",
        "image_cert": "img.pem", "image_key": "img.key", "tunnel_pool": "10.8.1.0/24",
        "nfs_server": "10.8.0.2", "nfs_export": "/srv/ferry/roots",
        "nfs_exports": "ganesha", "ganesha_exports_file": "/etc/ganesha/ferry-exports.conf",
        "keeper_client_cert": "keeper-client.pem", "keeper_client_key": "keeper-client.key",
        "default_template": "/srv/ferry/template", "archive": false}
     (unknown keys are refused.) Each server of a lease gets its own
     tunnel address of tunnel_pool (the gateway hands its key that address
     alone) and its root DIR/roots/NAME is exported as nfs_export/NAME to
     that address alone, from when its key is allowed until the return.
     The NFS server runs on this host; nfs_exports says which:
       "ganesha": ferry's exports are the file ganesha_exports_file, which
         ganesha.conf must %include; after each change ganesha.nfsd gets
         SIGHUP (pid in ganesha_pid_file, /run/ganesha/ganesha.pid);
         Export_Id = ganesha_export_id_base (1000) + the address's offset
         in tunnel_pool. Export nothing else under nfs_export.
       "kernel": exportfs -o kernel_export_options ADDR:DIR/roots/NAME
         (rw,sync,no_subtree_check,no_root_squash,sec=sys), exportfs -u at
         return; nfs_export must be DIR/roots. Nothing else may export it.
       "none": the borrower exports nothing; restrict each root yourself.
     "gateway_crl_file": PATH keeps the lender CA's CRL there (fetched
     every 30 s and at each return) for ferry gateway's "crl" setting;
     strongSwan gets it through VICI instead.
     image B downloads are never cut for being slow, only for stalling:
     each write of an answer may take image_stall_seconds (60); the admin
     socket takes requests of at most 16 KiB.
     image B is served only to the virtual IP that the gateway (its status
     socket) says a server of an active lease holds, and only that lease's
     image. With strongSwan as the gateway, replace allow_file and
     gateway_status by "gateway_kind": "strongswan", "vici_socket": PATH,
     "lender_ca": PEM, "swan_local_ts": ["10.8.0.0/24"]: each enrolled
     server gets its own connection through VICI.
  2. ferry borrower image add --dir DIR NAME --kernel vmlinuz --initrd initrd.img \
         [--cmdline 'console=ttyS0'] [--modules /lib/modules/RELEASE]
     ferry borrower image list --dir DIR
  3. ferry borrower lease request --dir DIR --count N --image NAME [--root TEMPLATE] [--key K]
       prepares one NFS root per server from TEMPLATE, asks the lender;
       retrying with the same --key never leases twice
  4. ferry borrower lease list --dir DIR
     ferry borrower lease show --dir DIR ID     every server, its phase, timings, key pin
       (enrolled keys are put on the gateway's allow list as they appear)
     ferry borrower lease extend --dir DIR ID --duration 72h   the lender
       lengthens the lease (its servers get renewed certificates for the
       same keys) and the gateway keeps their keys until the new end
  5. ferry borrower lease return --dir DIR ID
       asks each server's keeper to shut it down (HTTPS to its virtual IP,
       port keeper_tls_port 7071, client certificate keeper_client_cert
       of borrower_ca; the keeper must hold the server's one-time key),
       waits up to shutdown_wait_seconds (60) until the gateway no longer
       shows the server, then removes the keys from the gateway, tells the
       lender (power off anyway, certificates revoked), archives or deletes
       the NFS roots; lease show prints each server's shutdown: clean,
       timeout, failed, not-connected or skipped;
       a lease whose end has passed is returned the same way by itself

subcommands: init, serve [--check], image add|list, lease request|list|show|extend|return`

func borrowerApplet() Applet {
	return Applet{Name: "borrower", Summary: "borrower manager: image B, NFS roots, leases", Run: runBorrower}
}

func runBorrower(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		fmt.Fprintln(env.Stdout, borrowerHelp)
		if len(args) == 0 {
			return usagef("missing subcommand")
		}
		return nil
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "serve":
		fs := newFlags(env, "borrower serve", "borrower serve [--config FILE] [--check]")
		cfgPath := fs.String("config", env.borrowerConfig(), "JSON configuration (or $FERRY_BORROWER_CONFIG; see 'ferry borrower --help')")
		check := fs.Bool("check", false, "check the configuration and what a lease will need, then exit: 0 ok, 1 problems (one per line)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if *check {
			cfg, r, err := borrower.ReadConfig(*cfgPath)
			if err != nil {
				return err
			}
			if !r.Failed() {
				r.Name = "borrower " + *cfgPath
				borrower.CheckSetup(ctx, cfg, r, time.Now(), true)
			}
			return printCheck(env, r)
		}
		reload, stop := reloadOnHangup(ctx, env, "borrower", func() (borrower.Config, *configfile.Report, error) {
			cfg, r, err := borrower.ReadConfig(*cfgPath)
			if err == nil && !r.Failed() {
				borrower.CheckSetup(ctx, cfg, r, time.Now(), true)
			}
			return cfg, r, err
		})
		defer stop()
		cfg, err := borrower.LoadConfig(*cfgPath)
		if err != nil {
			return err
		}
		cfg.Ready = serviceNotify(ctx, env, "borrower")
		return borrower.Serve(ctx, cfg, env.Log, reload)
	case "init":
		return borrowerInit(env, rest)
	case "image":
		return borrowerImage(ctx, env, rest)
	case "lease":
		return borrowerLease(ctx, env, rest)
	}
	return usagef("unknown subcommand %q", args[0])
}

func borrowerImage(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usagef("image: want add or list")
	}
	fs := newFlags(env, "borrower image "+args[0], "borrower image add|list --dir DIR [NAME --kernel F --initrd F --cmdline S --modules DIR]")
	dir := fs.String("dir", env.borrowerDir(), "borrower state directory (or $FERRY_BORROWER_DIR)")
	kernel := fs.String("kernel", "", "image B kernel (bzImage)")
	initrd := fs.String("initrd", "", "image B initramfs")
	cmdline := fs.String("cmdline", "", "image B kernel command line")
	modules := fs.String("modules", "", "B's kernel modules tree, to bundle what the transfer needs")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if *dir == "" {
		return usagef("--dir is required")
	}
	cat, err := catalog.Open(borrower.ImagesDir(*dir), env.Log)
	if err != nil {
		return err
	}
	switch args[0] {
	case "add":
		if len(pos) != 1 || *kernel == "" || *initrd == "" {
			return usagef("image add: want NAME, --kernel and --initrd")
		}
		img, err := cat.Add(ctx, pos[0], *kernel, *initrd, *cmdline, *modules)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "image %s: kernel %s sha256 %s, initrd sha256 %s\n", img.Name, img.Release, img.Kernel.SHA256, img.Initrd.SHA256)
		return nil
	case "list":
		imgs, err := cat.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tRELEASE\tKERNEL_SHA256\tINITRD_SHA256\tCMDLINE")
		for _, i := range imgs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", i.Name, i.Release, i.Kernel.SHA256, i.Initrd.SHA256, i.Cmdline)
		}
		return tw.Flush()
	}
	return usagef("image: unknown action %q", args[0])
}

func borrowerLease(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usagef("lease: want request, list, show, extend or return")
	}
	fs := newFlags(env, "borrower lease "+args[0], "borrower lease request|list|show|extend|return --dir DIR [--count N --image NAME --root TEMPLATE --key K] [--duration D] [ID]")
	dir := fs.String("dir", env.borrowerDir(), "borrower state directory (or $FERRY_BORROWER_DIR)")
	count := fs.Int("count", 1, "number of servers")
	image := fs.String("image", "", "image B name in the catalogue")
	root := fs.String("root", "", "NFS root template directory (default: config default_template)")
	key := fs.String("key", "", "idempotency key: retry with the same key to never lease twice")
	duration := fs.Duration("duration", 0, "extend: how much longer, e.g. 72h (the whole lease stays within 90 days)")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if *dir == "" {
		return usagef("--dir is required")
	}
	c := borrowerAdminClient(*dir)
	var l borrower.LeaseView // show fills the view's extras; the others answer the lease alone
	switch args[0] {
	case "request":
		err = c.Call(ctx, "POST", "/admin/leases", borrower.Request{Key: *key, Count: *count, Image: *image, Template: *root}, &l)
	case "list":
		var ls []borrower.Lease
		if err := c.Call(ctx, "GET", "/admin/leases", nil, &ls); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "LEASE\tSTATE\tSERVERS\tIMAGE\tLENDER_LEASE\tCREATED")
		for _, l := range ls {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", l.ID, l.State, l.Count, l.Image, l.Lender.ID, l.Created.Format(time.RFC3339))
		}
		return tw.Flush()
	case "extend":
		if len(pos) != 1 || *duration <= 0 {
			return usagef("lease extend: want one lease ID and --duration")
		}
		err = c.Call(ctx, "POST", "/admin/leases/"+pos[0]+"/extend", map[string]int64{"duration_seconds": int64(duration.Seconds())}, &l)
	case "show", "return":
		if len(pos) != 1 {
			return usagef("lease %s: want one lease ID", args[0])
		}
		method, path := "GET", "/admin/leases/"+pos[0]
		if args[0] == "return" {
			method, path = "POST", path+"/return"
		}
		err = c.Call(ctx, method, path, nil, &l)
	default:
		return usagef("lease: unknown action %q", args[0])
	}
	if err != nil {
		return err
	}
	return printBorrowerLease(env, l)
}

// printBorrowerLease shows a lease, every server, its phases and timings,
// and, for show, each server's tunnel as the gateway reports it.
func printBorrowerLease(env *Env, l borrower.LeaseView) error {
	fmt.Fprintf(env.Stdout, "lease %s  state %s  key %s  lender lease %s  expires %s\n",
		l.ID, l.State, l.Key, l.Lender.ID, l.Lender.Expires.Format(time.RFC3339))
	if l.Stale != "" {
		fmt.Fprintf(env.Stdout, "lender unreachable: the lease as last stored (%s)\n", l.Stale)
	}
	if l.Error != "" {
		fmt.Fprintf(env.Stdout, "error: %s\n", l.Error)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tMAC\tPHASE\tTUNNEL_ADDRESS\tTUNNEL\tSPKI_SHA256")
	for i, s := range l.Lender.Servers {
		addr, tunnel := "-", "-"
		if i < len(l.Addrs) {
			addr = l.Addrs[i].String()
		}
		if i < len(l.Tunnels) && l.Tunnels[i].Server == s.ID {
			tunnel = tunnelText(l.Tunnels[i])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.MAC, s.Phase, addr, tunnel, s.SPKIPin)
		for _, p := range s.Phases {
			status := "ok"
			if p.Error != "" {
				status = "failed: " + p.Error
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d bytes\t%s\n", p.Phase, p.End.Sub(p.Start), status, p.Bytes, sinceRequest(l.Lender.Created, p.Start))
		}
	}
	for _, d := range l.Shutdown {
		fmt.Fprintf(tw, "shutdown %s\t%s\t%.1f s\t%s\n", d.Server, d.Outcome, d.Seconds, d.Detail)
	}
	return tw.Flush()
}

// sinceRequest is when a phase began, counted from the lease request:
// "at +12.3 s", the transfer's timeline.
func sinceRequest(created, start time.Time) string {
	if created.IsZero() || start.IsZero() {
		return ""
	}
	return fmt.Sprintf("at +%.1f s", start.Sub(created).Seconds())
}

// tunnelText is one server's tunnel for lease show: "up since T at ADDR
// (data alive)", "down", or "unknown (why)".
func tunnelText(t borrower.TunnelState) string {
	out := t.State
	if t.State == "up" {
		if !t.Since.IsZero() {
			out += " since " + t.Since.Format(time.RFC3339)
		}
		out += " at " + t.Address
	}
	if t.Detail != "" {
		out += " (" + t.Detail + ")"
	}
	return out
}
