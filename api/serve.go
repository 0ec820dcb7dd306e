package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
)

// WriteJSON answers v with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// WriteError answers err. A *FieldError is the caller's fault: 404 when
// the field names a lease that does not exist, 400 otherwise; anything
// else is ours, 500.
func WriteError(w http.ResponseWriter, err error) {
	var fe *FieldError
	if errors.As(err, &fe) {
		status := http.StatusBadRequest
		if fe.Field == "lease" {
			status = http.StatusNotFound
		}
		WriteJSON(w, status, Error{Field: fe.Field, Reason: fe.Reason})
		return
	}
	WriteJSON(w, http.StatusInternalServerError, Error{Reason: err.Error()})
}

// ListenUnix listens on a fresh unix socket that only its owner may use:
// the managers' admin sockets. Put it in a directory only the owner can
// enter, since the mode is set just after the socket appears.
func ListenUnix(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	return ln, nil
}

// Reply answers the usual end of a handler: err as WriteError does, else v
// as JSON with 200.
func Reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		WriteError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, v)
}
