package keeper

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"

	"ferry/api"
)

// Identity is the one-time certificate the keeper serves HTTPS with and
// the borrower CA that client certificates must chain to: what the agent
// enrolled and carries in its tunnel state.
type Identity struct {
	Certs []*x509.Certificate // leaf first
	Key   crypto.Signer
	CAs   []*x509.Certificate // borrower CA
}

// TLSConfig is the shutdown listener's: our certificate, TLS 1.3, and a
// client certificate that chains to the borrower CA, required.
func (id *Identity) TLSConfig() (*tls.Config, error) {
	if id == nil || len(id.Certs) == 0 || id.Key == nil || len(id.CAs) == 0 {
		return nil, errors.New("keeper: shutdown listener: no identity (certificate, key and borrower CA)")
	}
	pool := x509.NewCertPool()
	for _, ca := range id.CAs {
		pool.AddCert(ca)
	}
	chain := make([][]byte, 0, len(id.Certs))
	for _, c := range id.Certs {
		chain = append(chain, c.Raw)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: id.Key, Leaf: id.Certs[0]}}}, nil
}

// ShutdownHandler serves POST api.PathShutdown and GET /status to clients
// the TLS layer verified. A repeated request asks the init again: a
// borrower that crashed mid-return retries, and an init asked twice
// powers off once.
func (k *Keeper) ShutdownHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /status", k.Handler())
	mux.HandleFunc("POST "+api.PathShutdown, k.shutdown)
	return mux
}

func (k *Keeper) shutdown(w http.ResponseWriter, r *http.Request) {
	client := "?"
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		client = r.TLS.VerifiedChains[0][0].Subject.String()
	}
	// A client that hangs up must not cut the power-off command short.
	a, err := k.opt.PowerOff.ask(context.WithoutCancel(r.Context()))
	if a.Output != "" {
		k.log.Info("the root's power-off command said", "command", a.Command, "output", a.Output)
	}
	if err != nil {
		k.log.Error("shutdown requested, init not told", "client", client, "remote", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	k.shutdownAsked.Store(true)
	ans := api.ShutdownAnswer{Command: a.Command, PID: a.PID, Client: client, Note: a.Note}
	if a.Command != "" {
		k.log.Info("shutdown requested: the root's own power-off command ran; the keeper stays until the end",
			"client", client, "remote", r.RemoteAddr, "command", a.Command, "pid", a.PID)
	} else {
		ans.Signal = signalName(a.Signal)
		k.log.Info("shutdown requested: init told to power off; the keeper stays until the end",
			"client", client, "remote", r.RemoteAddr, "signal", ans.Signal, "pid", a.PID, "note", a.Note)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(ans)
}
