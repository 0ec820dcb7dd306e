package applets

import (
	"context"
	"time"

	"ferry/borrower"
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
        "default_template": "/srv/ferry/template", "archive": false, "root_copies": 2}
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
     status_listen (default 127.0.0.1:9732, "off": none; not the image
     listener, which lent servers reach): GET /metrics (Prometheus), GET /
     (read-only status page: leases, servers, timelines, last errors)
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
         [--pool POOL] [--duration 72h] [--wait[=30m]] [-o json]
       asks the lender, then copies one NFS root per server from TEMPLATE
       while the servers boot (root_copies at once, default 2; lease show's
       ROOT: "copying 37%", then ready; image A waits for it in wait-root);
       retrying with the same --key never leases twice (a refused request
       stays refused: exit 1); --wait prints each phase as it happens
       until every server has switched to its root
  4. ferry borrower lease list --dir DIR
     ferry borrower lease show --dir DIR ID     every server, its phase, timings, key pin
       (enrolled keys are put on the gateway's allow list as they appear)
     ferry borrower lease extend --dir DIR ID --duration 72h   the lender
       lengthens the lease (its servers get renewed certificates for the
       same keys) and the gateway keeps their keys until the new end
  5. ferry borrower lease return --dir DIR ID [--wait[=10m]]
       asks each server's keeper to shut it down (HTTPS to its virtual IP,
       port keeper_tls_port 7071, client certificate keeper_client_cert
       of borrower_ca; the keeper must hold the server's one-time key),
       waits up to shutdown_wait_seconds (60) until the gateway no longer
       shows the server, then removes the keys from the gateway, tells the
       lender (power off anyway, certificates revoked), archives or deletes
       the NFS roots; lease show prints each server's shutdown: clean,
       timeout, failed, not-connected or skipped;
       a lease whose end has passed is returned the same way by itself

  every list and show takes -o table|wide|json and --no-headers; exit
  status 0 done, 1 failed, 2 usage, 3 accepted and still being retried`

func borrowerApplet() Applet { return treeApplet(borrowerTree()) }

// borrowerServe runs the borrower manager, or checks its configuration.
func borrowerServe(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "borrower serve", "borrower serve [--config FILE] [--check]")
	cfgPath := fs.String("config", env.borrowerConfig(), "JSON configuration (or $FERRY_BORROWER_CONFIG; see 'ferry borrower --help')")
	check := fs.Bool("check", false, "check the configuration and what a lease will need, then exit: 0 ok, 1 problems (one per line)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *check {
		cfg, r, err := borrower.ReadConfig(*cfgPath)
		if err != nil {
			return err
		}
		// Every problem at once: the file's and what a lease will need.
		r.Name = "borrower " + *cfgPath
		borrower.CheckSetup(ctx, cfg, r, time.Now(), true)
		return printCheck(env, r)
	}
	svc := serviceNotify(ctx, env, "borrower")
	defer svc.Close(ctx)
	reload, stop := reloadOnHangup(ctx, env, svc, "borrower", func() (borrower.Config, *configfile.Report, error) {
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
	cfg.Ready = svc.Ready
	return borrower.Serve(ctx, cfg, env.Log, reload)
}
