package borrower

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"ferry/api"
	"ferry/catalog"
)

// AdminHandler serves the local CLI over the admin socket.
func (m *Manager) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /admin/leases", func(w http.ResponseWriter, r *http.Request) {
		var req Request
		dec := json.NewDecoder(r.Body) // bounded by adminServer (maxAdminBody)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			api.WriteError(w, &api.FieldError{Reason: "malformed request: " + err.Error()})
			return
		}
		l, err := m.RequestLease(r.Context(), req)
		var re *RetryingError
		if errors.As(err, &re) {
			// Accepted: recorded and retried, not refused. The CLI
			// exits 3 on it.
			api.WriteJSON(w, http.StatusAccepted, l)
			return
		}
		api.Reply(w, l, err)
	})
	mux.HandleFunc("GET /admin/leases", func(w http.ResponseWriter, r *http.Request) {
		ls, err := m.Leases(r.Context())
		api.Reply(w, ls, err)
	})
	mux.HandleFunc("GET /admin/leases/{id}", func(w http.ResponseWriter, r *http.Request) {
		v, err := m.View(r.Context(), r.PathValue("id"))
		api.Reply(w, v, err)
	})
	mux.HandleFunc("POST /admin/leases/{id}/extend", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Seconds int64 `json:"duration_seconds"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<10)).Decode(&req); err != nil {
			api.WriteError(w, &api.FieldError{Reason: "malformed request: " + err.Error()})
			return
		}
		l, err := m.ExtendLease(r.Context(), r.PathValue("id"), time.Duration(req.Seconds)*time.Second)
		api.Reply(w, l, err)
	})
	mux.HandleFunc("POST /admin/leases/{id}/return", func(w http.ResponseWriter, r *http.Request) {
		l, err := m.ReturnLease(r.Context(), r.PathValue("id"))
		api.Reply(w, l, err)
	})
	return mux
}

// ImageHandler serves image B: GET /NAME/{vmlinuz,initrd.img}, only to
// the virtual IP the gateway gave a server of an active lease of image
// NAME. No /metrics: lent servers reach this listener through their
// tunnels; the figures are on the status listener (StatusHandler).
func (m *Manager) ImageHandler() http.Handler {
	pool := netip.MustParsePrefix(m.cfg.TunnelPool)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{name}/{file}", func(w http.ResponseWriter, r *http.Request) {
		refuse := func(err error) {
			if errors.Is(err, errNotListed) {
				// A tunnel address's request came through the gateway,
				// which lists the new tunnel a moment after its IKE_AUTH
				// answer: "ask again", not a refusal image A gives up on.
				m.log.Info("image B: tunnel not listed by the gateway yet", "remote", r.RemoteAddr, "path", r.URL.Path)
				w.Header().Set("Retry-After", "1")
				w.Header().Set(api.HeaderRootState, "tunnel not listed by the gateway yet")
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			m.events.imageRefused.Add(1)
			m.log.Warn("image B refused", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
			http.Error(w, err.Error(), http.StatusForbidden)
		}
		root, err := m.mayFetch(r, pool)
		if err != nil {
			refuse(err)
			return
		}
		if root != "" {
			if !m.rootOpen(w, r, root) {
				return
			}
			// The gate may have held the request for seconds, in which
			// the lease can have ended: asked again, as if it came now.
			if _, err := m.mayFetch(r, pool); err != nil {
				refuse(err)
				return
			}
		}
		m.events.imageServed.Add(1)
		img, err := m.images.Get(r.Context(), r.PathValue("name"))
		if err != nil {
			http.Error(w, "image: "+err.Error(), http.StatusNotFound)
			return
		}
		var a catalog.Artifact
		switch r.PathValue("file") {
		case "vmlinuz":
			a = img.Kernel
		case "initrd.img":
			a = img.Initrd
		case "modules.cpio":
			if img.Modules == nil {
				http.Error(w, "image has no module bundle", http.StatusNotFound)
				return
			}
			a = img.Modules.Artifact
		default:
			http.Error(w, "file: want vmlinuz, initrd.img or modules.cpio", http.StatusNotFound)
			return
		}
		f, err := os.Open(a.Path)
		if err != nil {
			http.Error(w, "image file unavailable", http.StatusInternalServerError)
			return
		}
		defer f.Close()
		w.Header().Set("X-Ferry-SHA256", a.SHA256)
		http.ServeContent(w, r, a.File, img.Added, f)
	})
	return mux
}

// rootOpen lets a server past the gate of its root: image B only once
// its root is ready, so that B never mounts a root still being copied.
// Otherwise it answers 503 with Retry-After and the root's state (the
// agent's wait-root prints it) and returns false.
func (m *Manager) rootOpen(w http.ResponseWriter, r *http.Request, root string) bool {
	st, err := m.rootGate(r.Context(), root)
	switch {
	case err != nil:
		http.Error(w, "root "+root+": "+err.Error(), http.StatusInternalServerError)
		return false
	case st.State == RootReady:
		return true
	case st.State == RootFailed:
		// The reason stays with the borrower (lease show, its log): it
		// names the template and its files, and the caller is image A,
		// the lender's code, which only needs to stop waiting.
		http.Error(w, "the borrower's copy of root "+root+" failed; the borrower's lease show says why", http.StatusInternalServerError)
		return false
	}
	w.Header().Set("Retry-After", "1")
	w.Header().Set(api.HeaderRootState, st.Text())
	http.Error(w, "waiting for the borrower's root "+root+": "+st.Text(), http.StatusServiceUnavailable)
	return false
}

// errNotListed: the gateway's list of tunnels does not hold the
// caller's tunnel address yet, though an active lease's server whose key
// the gateway took has it.
var errNotListed = errors.New("not listed by the gateway yet; a server of an active lease has this address")

// mayFetch allows r only from a virtual IP that the gateway reports held
// by a server of an active lease, before its end, whose image r asks
// for, and names that server's root. The leases come from the fetch
// index (fetchindex.go), not a decode of the store per request.
func (m *Manager) mayFetch(r *http.Request, pool netip.Prefix) (string, error) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return "", err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !pool.Contains(ip.Unmap()) {
		return "", fmt.Errorf("%s is not a tunnel address (pool %s)", host, pool)
	}
	ip = ip.Unmap()
	if m.vips == nil {
		return "", fmt.Errorf("%s: no gateway_status configured, so no address can be tied to a lease", ip)
	}
	peer, ok, err := m.vips.lookup(r.Context(), ip)
	if err != nil {
		return "", fmt.Errorf("%s: asking the gateway who holds it: %w", ip, err)
	}
	x, err := m.fetch.index(r.Context())
	if err != nil {
		return "", fmt.Errorf("%s: reading the leases: %w", ip, err)
	}
	if !ok {
		if x.awaits(ip, time.Now()) {
			return "", fmt.Errorf("%s: %w", ip, errNotListed)
		}
		return "", fmt.Errorf("%s is held by no server connected to the gateway", ip)
	}
	return x.decide(peer, r.PathValue("name"), time.Now())
}
