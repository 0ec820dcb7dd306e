package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
)

// Client calls a ferry JSON API at Base.
type Client struct {
	HTTP *http.Client
	Base string
	// Unreachable, when set, replaces a failure to connect because nothing
	// listens (no socket, or no process behind it): what to do about it.
	Unreachable string
}

// AdminClient is UnixClient whose failure to connect because nothing
// serves the socket says unreachable (e.g. "is `ferry lender serve`
// running?").
func AdminClient(socket, unreachable string) *Client {
	c := UnixClient(socket)
	c.Unreachable = "no manager answers on " + socket + ": " + unreachable
	return c
}

// UnixClient reaches a manager's admin socket.
func UnixClient(socket string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &Client{HTTP: &http.Client{Transport: tr}, Base: "http://admin"}
}

// Call sends in (if not nil) as JSON and decodes the answer into out (if
// not nil). A refusal comes back as *FieldError, other failures name the
// method, URL and status.
func (c *Client) Call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return c.failed(method, path, err)
	}
	defer resp.Body.Close()
	return c.answer(method, path, resp, out)
}

// failed is the error of a request that got no answer.
func (c *Client) failed(method, path string, err error) error {
	if c.Unreachable != "" && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)) {
		return errors.New(c.Unreachable)
	}
	return fmt.Errorf("%s %s: %w", method, c.Base+path, err)
}

// answer reads resp (bounded) into out: a refusal as *FieldError.
func (c *Client) answer(method, path string, resp *http.Response, out any) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, c.Base+path, err)
	}
	if resp.StatusCode >= 300 {
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Reason != "" {
			return &FieldError{Field: e.Field, Reason: e.Reason}
		}
		return fmt.Errorf("%s %s: %s: %.200s", method, c.Base+path, resp.Status, data)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, c.Base+path, err)
	}
	return nil
}
