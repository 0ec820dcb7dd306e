package lender

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"

	"ferry/api"
)

// AgentHandler serves lent servers: enrollment (token, no client cert),
// phase reports (one-time client cert), the CRL and the CA. No /metrics:
// this listener faces the PXE segment, and the figures are the whole
// lender's; they are on the status listener (StatusHandler), loopback.
func (m *Manager) AgentHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathEnroll, func(w http.ResponseWriter, r *http.Request) {
		var req api.EnrollRequest
		if err := api.Decode(r.Body, api.MaxEnroll, &req); err != nil {
			m.metrics.enrollFail("malformed")
			api.WriteError(w, err)
			return
		}
		from, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			api.WriteError(w, fmt.Errorf("enrollment: source address %q: %w", r.RemoteAddr, err))
			return
		}
		resp, err := m.Enroll(r.Context(), from.Addr(), req)
		var ee *EnrollError
		if errors.As(err, &ee) && ee.Kind == reasonConflict {
			api.WriteJSON(w, http.StatusConflict, api.Error{Field: ee.Field, Reason: ee.Reason})
			return
		}
		api.Reply(w, resp, err)
	})
	mux.HandleFunc("POST "+api.PathPhase, m.handlePhase)
	mux.HandleFunc("GET "+api.PathCert, m.handleCert)
	mux.HandleFunc("GET "+api.PathCRL, m.serveCRL)
	mux.HandleFunc("GET "+api.PathCA, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(m.ca.PEM())) })
	mux.HandleFunc("GET "+api.PathHealth, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return mux
}

// clientCert is the lent server's verified one-time certificate on r; the
// agent listener asks for one but lets enrollment through without. Without
// one it answers 401 with why and returns nil.
func clientCert(w http.ResponseWriter, r *http.Request, why string) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		api.WriteJSON(w, http.StatusUnauthorized, api.Error{Field: "certificate", Reason: why})
		return nil
	}
	return r.TLS.VerifiedChains[0][0]
}

func (m *Manager) handlePhase(w http.ResponseWriter, r *http.Request) {
	leaf := clientCert(w, r, "phase reports need the one-time client certificate")
	if leaf == nil {
		return
	}
	who, err := certSubject(leaf)
	if err != nil {
		api.WriteJSON(w, http.StatusForbidden, api.Error{Field: "certificate", Reason: err.Error()})
		return
	}
	var p api.PhaseReport
	if err := api.Decode(r.Body, api.MaxPhase, &p); err != nil {
		api.WriteError(w, err)
		return
	}
	if err := m.ReportPhase(r.Context(), who, leaf.SerialNumber.Text(16), p); err != nil {
		api.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// M2MHandler serves borrower managers (behind mutual TLS): each is
// identified by its client certificate among bs and sees, makes and
// returns only its own leases.
func (m *Manager) M2MHandler(bs *Borrowers) http.Handler {
	return m.leaseAPI(bs.borrowerOf)
}

// leaseAPI is the lease API for the callers who names.
func (m *Manager) leaseAPI(who func(*http.Request) (owner, error)) http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h func(w http.ResponseWriter, r *http.Request, o owner)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			o, err := who(r)
			if err != nil {
				forbidden(w, err)
				return
			}
			h(w, r, o)
		})
	}
	handle("POST "+api.PathLeases, func(w http.ResponseWriter, r *http.Request, o owner) {
		var req api.LeaseRequest
		if err := api.Decode(r.Body, api.MaxLeaseRequest, &req); err != nil {
			api.WriteError(w, err)
			return
		}
		l, err := m.RequestLeaseFor(r.Context(), o.name, req)
		api.Reply(w, l, err)
	})
	// The CRL is public; borrowers relay it to their gateways.
	handle("GET "+api.PathCRL, func(w http.ResponseWriter, r *http.Request, _ owner) { m.serveCRL(w, r) })
	handle("GET "+api.PathLeases, func(w http.ResponseWriter, r *http.Request, o owner) {
		ls, err := m.leasesOf(r.Context(), o)
		api.Reply(w, ls, err)
	})
	// Tagged: a borrower polling an unchanged lease gets 304, no body;
	// one that asks to wait (Prefer: wait=N) is held until the lease
	// changes, N seconds at most (heldLease).
	handle("GET "+api.PathLeases+"/{id}", func(w http.ResponseWriter, r *http.Request, o owner) {
		if wait, ok := api.PreferWait(r.Header); ok && r.Header.Get("If-None-Match") != "" {
			m.heldLease(w, r, o, r.PathValue("id"), wait)
			return
		}
		l, err := m.leaseOf(r.Context(), o, r.PathValue("id"))
		if err != nil {
			api.WriteError(w, err)
			return
		}
		api.WriteTagged(w, r, l)
	})
	handle("POST "+api.PathLeases+"/{id}"+api.PathReturn, func(w http.ResponseWriter, r *http.Request, o owner) {
		l, err := m.returnLease(r.Context(), o, r.PathValue("id"))
		api.Reply(w, l, err)
	})
	handle("GET "+api.PathLeases+"/{id}"+api.PathEvents, func(w http.ResponseWriter, r *http.Request, o owner) {
		if _, err := m.leaseOf(r.Context(), o, r.PathValue("id")); err != nil {
			api.WriteError(w, err)
			return
		}
		ev, err := m.LeaseEvents(r.Context(), r.PathValue("id"))
		api.Reply(w, o.seesEvents(ev), err)
	})
	handle("POST "+api.PathLeases+"/{id}"+api.PathExtend, func(w http.ResponseWriter, r *http.Request, o owner) {
		var req api.ExtendRequest
		if err := api.Decode(r.Body, api.MaxPhase, &req); err != nil {
			api.WriteError(w, err)
			return
		}
		l, err := m.extendLease(r.Context(), o, r.PathValue("id"), req.Until)
		api.Reply(w, l, err)
	})
	// No /metrics here: its figures are the whole lender's, every
	// borrower's leases; monitoring reads the status listener's.
	return mux
}

// AdminHandler serves the local CLI over the admin socket (mode 0600).
func (m *Manager) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/servers", func(w http.ResponseWriter, r *http.Request) {
		s, err := m.Servers(r.Context())
		api.Reply(w, s, err)
	})
	mux.HandleFunc("POST /admin/servers", func(w http.ResponseWriter, r *http.Request) {
		var s Server
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10)).Decode(&s); err != nil {
			api.WriteError(w, &api.FieldError{Reason: "malformed server: " + err.Error()})
			return
		}
		s, err := m.AddServer(r.Context(), s)
		if err != nil {
			api.WriteError(w, asField(err))
			return
		}
		api.WriteJSON(w, http.StatusOK, s)
	})
	mux.HandleFunc("DELETE /admin/servers/{mac}", func(w http.ResponseWriter, r *http.Request) {
		if err := m.RemoveServer(r.Context(), r.PathValue("mac")); err != nil {
			api.WriteError(w, asField(err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /admin/servers/{mac}/clear", func(w http.ResponseWriter, r *http.Request) {
		s, err := m.ClearServer(r.Context(), r.PathValue("mac"))
		api.Reply(w, s, err)
	})
	mux.HandleFunc("GET /admin/servers/{mac}", func(w http.ResponseWriter, r *http.Request) {
		s, err := m.Server(r.Context(), r.PathValue("mac"))
		api.Reply(w, s, err)
	})
	mux.HandleFunc("GET /admin/servers/{mac}/events", func(w http.ResponseWriter, r *http.Request) {
		s, err := m.Server(r.Context(), r.PathValue("mac"))
		if err != nil {
			api.WriteError(w, err)
			return
		}
		ev, err := m.ServerEvents(r.Context(), s.MAC)
		api.Reply(w, ev, err)
	})
	mux.HandleFunc("POST /admin/servers/{mac}/maintenance", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			On   bool   `json:"on"`
			Note string `json:"note"`
		}
		if err := decodeAdmin(r.Body, 4<<10, &req); err != nil {
			api.WriteError(w, err)
			return
		}
		s, err := m.SetMaintenance(r.Context(), r.PathValue("mac"), req.On, req.Note)
		api.Reply(w, s, err)
	})
	mux.HandleFunc("POST /admin/servers/{mac}/power", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Action string `json:"action"`
		}
		if err := decodeAdmin(r.Body, 4<<10, &req); err != nil {
			api.WriteError(w, err)
			return
		}
		res, err := m.Power(r.Context(), r.PathValue("mac"), req.Action)
		api.Reply(w, res, err)
	})
	mux.HandleFunc("POST /admin/validate", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			MACs []string `json:"macs"`
		}
		if err := decodeAdmin(r.Body, 64<<10, &req); err != nil {
			api.WriteError(w, err)
			return
		}
		res, err := m.Validate(r.Context(), req.MACs)
		api.Reply(w, res, err)
	})
	mux.HandleFunc("GET /admin/leases/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		if _, err := m.Lease(r.Context(), r.PathValue("id")); err != nil {
			api.WriteError(w, err)
			return
		}
		ev, err := m.LeaseEvents(r.Context(), r.PathValue("id"))
		api.Reply(w, ev, err)
	})
	mux.HandleFunc("GET /admin/boot/{mac}", func(w http.ResponseWriter, r *http.Request) {
		b, ok := m.BootFor(r.PathValue("mac"))
		if !ok {
			api.WriteJSON(w, http.StatusNotFound, api.Error{Field: "mac", Reason: r.PathValue("mac") + " has no boot pending"})
			return
		}
		api.WriteJSON(w, http.StatusOK, b)
	})
	mux.HandleFunc("GET /admin/leases", func(w http.ResponseWriter, r *http.Request) {
		l, err := m.Leases(r.Context())
		api.Reply(w, l, err)
	})
	// The operator reaches the lease API too, seeing every lease.
	mux.Handle("/v1/", m.leaseAPI(func(*http.Request) (owner, error) { return operator, nil }))
	return mux
}

// decodeAdmin reads one admin request of at most limit bytes, refusing
// unknown fields: a CLI of another version must not be half understood.
func decodeAdmin(r io.Reader, limit int64, v any) error {
	dec := json.NewDecoder(io.LimitReader(r, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &api.FieldError{Reason: "malformed request: " + err.Error()}
	}
	return nil
}

// asField turns the inventory's "field: reason" errors into refusals.
func asField(err error) error {
	var fe *api.FieldError
	if errors.As(err, &fe) {
		return err
	}
	if f, reason, ok := strings.Cut(err.Error(), ": "); ok && !strings.Contains(f, " ") {
		return &api.FieldError{Field: f, Reason: reason}
	}
	return err
}

// serveCRL answers the lender CA's CRL (DER).
func (m *Manager) serveCRL(w http.ResponseWriter, r *http.Request) {
	der, err := m.CRL(r.Context())
	if err != nil {
		api.WriteError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Write(der)
}
