// Package promreg makes the Prometheus registry each ferry server exposes
// on its local status listener: its own registry (no global default one),
// with ferry_build_info and the Go runtime and process collectors, served
// in the Prometheus text exposition format by client_golang.
package promreg

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// New is a registry holding ferry_build_info{component, version,
// revision, goversion} = 1 and the Go and process collectors.
func New(component string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	version, revision := buildVersion()
	bi := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ferry_build_info",
		Help: "Always 1: the ferry build serving these metrics, and which of its servers (component).",
		ConstLabels: prometheus.Labels{"component": component, "version": version, "revision": revision,
			"goversion": runtime.Version()},
	})
	bi.Set(1)
	reg.MustRegister(bi, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// buildVersion is the main module's version and VCS revision as the Go
// toolchain recorded them ("(devel)" and "" for a plain go build).
func buildVersion() (version, revision string) {
	version, revision = "unknown", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if bi.Main.Version != "" {
		version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			revision = s.Value
		}
	}
	return
}

// Handler serves reg in the text exposition format; a collector's error
// is an HTTP 500 with its text, never a silently partial answer.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError})
}

// Listen opens a server's status listener: addr, or def when addr is
// empty; "off" opens none (nil). A default address that is taken (a
// second server of the kind on the host, a test) logs a warning and opens
// none rather than keeping the server from starting; an explicit one must
// work.
func Listen(addr, def string, log *slog.Logger) (net.Listener, error) {
	if addr == "off" {
		return nil, nil
	}
	explicit := addr != ""
	if !explicit {
		addr = def
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if explicit {
			return nil, fmt.Errorf("status listener %s: %w", addr, err)
		}
		log.Warn("status listener: default address taken, no /metrics nor status page (set status_listen)", "addr", addr, "err", err)
		return nil, nil
	}
	return ln, nil
}

// Addr names ln for logs: its address, or "off".
func Addr(ln net.Listener) string {
	if ln == nil {
		return "off"
	}
	return ln.Addr().String()
}
