package applets

import (
	"context"
	"fmt"
	"strings"
	"time"

	"ferry/configfile"
	"ferry/lender"
)

const lenderHelp = `lender: the lender's manager (inventory, leases, lender CA, enrollment)

workflow (paths: --dir, else $FERRY_LENDER_DIR, else /var/lib/ferry/lender;
--config, else $FERRY_LENDER_CONFIG, else /etc/ferry/lender.json):
  1. ferry lender init --name bigco --host 10.0.0.1 --m2m 203.0.113.5 --interface eth1
       makes, all or nothing: the lender CA (one-time certificates of lent
       servers; key 0600) and the agent listener's certificate for --host
       (two years; serve renews it 30 days before its end, logging the new
       end), the organisation's CA (or yours: --ca-cert/--ca-key) and the m2m
       listener's certificate for --m2m, the store, a commented lender.json,
       and DIR/for-borrowers/ (what a borrower needs: copy it to the
       borrower, whose 'ferry borrower init --from-lender' reads it);
       prints the CA fingerprint and the borrower's next command
     ferry lender borrower add acme borrower-ca.pem
       admits borrower acme (its CA into borrowers_dir; reload to apply)
     ferry lender serve --check
       checks the file (every problem at once) and what a lease will need:
       the CA and key pairs, borrowers' CAs, image A, the iPXE files, the
       netboot interface; exit 0 ok, 1 problems, one per line
     ferry pki ca|issue|show|check   the individual steps, for your own PKI
  2. ferry lender serve --config lender.json &
       {"dir": "/var/lib/ferry-lender", "agent_listen": "10.0.0.1:8443",
        "public_url": "https://10.0.0.1:8443", "m2m_listen": "203.0.113.5:9443",
        "m2m_cert": "m2m.pem", "m2m_key": "m2m.key",
        "borrowers": [{"name": "acme", "ca": "acme-ca.pem"},
                      {"name": "globex", "ca": "shared-ca.pem", "cn": "globex-m2m"}],
        "token_ttl": "10m",
        "netboot": {"interface": "eth1", "server_ip": "10.0.0.1", "mode": "proxydhcp",
                    "kernel_a": "vmlinuz-a", "initrd_a": "initrd-a.img",
                    "cmdline": "console=ttyS0"}}
       netboot (optional): DHCP ("mode": "dhcp" with pool_first, pool_last,
       prefix, router, dns, dhcp_lease_time (default 90 days: at least as
       long as any lending, since nothing renews it)) or ProxyDHCP, TFTP of
       iPXE, and a per-boot iPXE script that admits only servers of a lease,
       carries the boot's one-time token (served once per boot) and adds
       ip=dhcp unless cmdline has ip=
       borrowers: the organisations the m2m listener admits. A client
       certificate is a borrower's when it chains to its "ca" (clientAuth)
       and, if given, has its "cn" and its key's "spki_sha256"; exactly one
       borrower must match. Each owns the leases its managers make: another
       borrower gets 404 for them, lists only its own, and idempotency keys
       are per borrower. "m2m_client_ca": "FILE" (older configurations)
       is the borrower "default": every client of that CA; leases stored
       before owners existed are the default borrower's.
       agent side: POST /v1/enroll, /v1/phase; GET /v1/crl, /v1/ca.pem
       status_listen (default 127.0.0.1:9731, "off": none; keep it off the
       PXE side): GET /metrics (Prometheus), GET / (read-only status page:
       servers, leases, each server's phase timeline, last errors)
       borrower side (mutual TLS): POST /v1/leases, GET /v1/leases (own),
       GET /v1/leases/ID, POST /v1/leases/ID/return
  3. ferry lender server add --dir DIR --mac 52:54:00:12:34:56 --power ipmitool \
         --power-opt host=10.0.0.50 --power-opt user=admin --pool default
     ferry lender server list --dir DIR
     ferry lender server remove --dir DIR 52:54:00:12:34:56
  4. a borrower manager requests a lease (ferry borrower lease request); the
     lender picks free servers, issues one token per boot and powers them on;
     ferry lender boot --dir DIR MAC  shows the kernel parameters of a
     pending boot (what netboot puts on image A's command line)
     Each boot is bound to what the lender observed: with netboot, the
     address its DHCP leased to the MAC (dhcp mode) or the address that
     fetched the script (proxydhcp); without, the first enrollment's. The
     script is served once per boot and the token enrolls one key, from
     that address only (a lost answer may be asked again: same key, same
     certificate). A second script fetch, a script or an enrollment from
     another address, or a second key makes the server's phase "conflict"
     (reason in lease list, ferry_lender_boot_conflicts_total in the status listener's /metrics):
     tokens withdrawn, any certificate of that boot revoked, nothing more
     until an operator decides:
     ferry lender server clear --dir DIR MAC   a new boot: fresh token,
     the old boot's certificate revoked, the server power cycled
  5. ferry lender lease list --dir DIR   every lease, server, phase
  6. the borrower returns the lease: servers are powered off, certificates
     revoked (listed in /v1/crl) and the servers go back to their pool

  7. when something fails the server's state says so, with its last error,
     in server list, server show and lease show:
       power-error   a power action failed (the driver's reason); at boot the
                     token stays valid, so a server powered by hand still
                     enrolls; 'server clear MAC' power cycles it anew
       boot-timeout  no enrollment within token_ttl; 'server clear MAC'
       conflict      two machines claimed one boot (above)
       maintenance   'server maintenance MAC on|off --note WHY': never leased
     ferry lender server events --dir DIR MAC   its history (bounded)
     ferry lender server power --dir DIR MAC on|off|status|check
     ferry lender server validate --dir DIR [MAC...]   driver options and BMC
  every list and show takes -o table|wide|json and --no-headers`

func lenderApplet() Applet { return treeApplet(lenderTree()) }

func lenderServe(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "lender serve", "lender serve [--config FILE] [--check]")
	cfgPath := fs.String("config", env.lenderConfig(), "JSON configuration (or $FERRY_LENDER_CONFIG; see 'ferry lender --help')")
	check := fs.Bool("check", false, "check the configuration and what a lease will need, then exit: 0 ok, 1 problems (one per line)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *check {
		cfg, r, err := lender.ReadConfig(*cfgPath)
		if err != nil {
			return err
		}
		// Every problem at once: the file's and what a lease will need.
		r.Name = "lender " + *cfgPath
		lender.CheckSetup(cfg, r, time.Now(), true)
		return printCheck(env, r)
	}
	svc := serviceNotify(ctx, env, "lender")
	defer svc.Close(ctx)
	reload, stop := reloadOnHangup(ctx, env, svc, "lender", func() (lender.Config, *configfile.Report, error) {
		cfg, r, err := lender.ReadConfig(*cfgPath)
		if err == nil && !r.Failed() {
			lender.CheckSetup(cfg, r, time.Now(), true)
		}
		return cfg, r, err
	})
	defer stop()
	cfg, err := lender.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	cfg.Ready = svc.Ready
	// Drivers are made from the inventory at each power action: nothing
	// of theirs outlives one, so a reload needs nothing of them.
	return lender.Serve(ctx, cfg, env.Log, powerFor(env), reload)
}

// kvFlag collects repeated k=v options.
type kvFlag map[string]string

func (kv kvFlag) String() string { return fmt.Sprint(map[string]string(kv)) }
func (kv kvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q is not key=value", s)
	}
	kv[k] = v
	return nil
}
