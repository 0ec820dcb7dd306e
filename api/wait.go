package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// A held poll of a lease (RFC 7240's wait preference on a conditional
// GET): the borrower sends GET PathLeases/ID with If-None-Match: the tag
// of the lease it stored and Prefer: wait=N; a lender that holds polls
// answers as soon as the lease's tag differs (200, the lease), or 304 at
// the end of the wait, both with Preference-Applied: wait=M (M <= N, at
// most MaxLeaseWait). A lender that does not answers at once, without
// Preference-Applied: the borrower then polls as before. A lender at its
// bound of held polls answers 429 with Retry-After.
const (
	HeaderPrefer  = "Prefer"
	HeaderApplied = "Preference-Applied"
	// MaxLeaseWait bounds a held poll: under the borrower's 30 s client
	// timeout and the lender's write timeout, with room for the answer.
	MaxLeaseWait = 20 * time.Second
)

// PreferWait is the wait a request prefers (Prefer: wait=N, seconds),
// capped at MaxLeaseWait; false without one or with a malformed one.
func PreferWait(h http.Header) (time.Duration, bool) {
	for _, v := range h.Values(HeaderPrefer) {
		for _, p := range strings.Split(v, ",") {
			name, val, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(name), "wait") {
				continue
			}
			n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`))
			if err != nil || n <= 0 {
				return 0, false
			}
			return min(time.Duration(n)*time.Second, MaxLeaseWait), true
		}
	}
	return 0, false
}

// Tagged is v's JSON as the lease API answers it and its ETag.
func Tagged(v any) (data []byte, tag string, err error) {
	data, err = jsonOf(v)
	if err != nil {
		return nil, "", err
	}
	return data, etagOf(data), nil
}

// Matches reports whether r's If-None-Match names tag: the client holds
// what tag stands for.
func Matches(r *http.Request, tag string) bool {
	return noneMatch(r.Header.Get("If-None-Match"), tag)
}

// WriteTaggedData answers data (from Tagged) with its tag: 200 and the
// body, or 304 without one when r's If-None-Match names the tag.
func WriteTaggedData(w http.ResponseWriter, r *http.Request, data []byte, tag string) {
	w.Header().Set("ETag", tag)
	if Matches(r, tag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(append(data, '\n')) // as WriteJSON's encoder writes it
}

// WaitRefused is a lender's refusal to hold a poll (429): too many held
// already. RetryAfter is when to ask to wait again (0: not said).
type WaitRefused struct {
	RetryAfter time.Duration
	Reason     string
}

func (e *WaitRefused) Error() string {
	return fmt.Sprintf("the lender holds no more polls (%s); retry after %s", e.Reason, e.RetryAfter)
}

// GetIfChangedWait is GetIfChanged asking the server to hold the request
// up to wait (Prefer: wait=N) until what tag stands for changes. held
// reports whether the server did hold it (Preference-Applied); a server
// that does not answers at once, and the caller should then poll. A
// refusal to hold is a *WaitRefused.
func (c *Client) GetIfChangedWait(ctx context.Context, path, tag string, wait time.Duration, out any) (changed, held bool, err error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.Base+path, nil)
	if err != nil {
		return false, false, err
	}
	if tag != "" {
		req.Header.Set("If-None-Match", tag)
	}
	req.Header.Set(HeaderPrefer, fmt.Sprintf("wait=%d", int(wait/time.Second)))
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return false, false, c.failed("GET", path, err)
	}
	defer resp.Body.Close()
	held = appliedWait(resp.Header)
	switch resp.StatusCode {
	case http.StatusNotModified:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return false, held, nil
	case http.StatusTooManyRequests:
		refused := &WaitRefused{RetryAfter: retryAfter(resp.Header)}
		var e error = c.answer("GET", path, resp, nil)
		var fe *FieldError
		if errors.As(e, &fe) {
			refused.Reason = fe.Reason
		} else if e != nil {
			refused.Reason = e.Error()
		}
		return false, false, refused
	}
	if err := c.answer("GET", path, resp, out); err != nil {
		return false, held, err
	}
	return true, held, nil
}

// appliedWait reports whether an answer says the wait was applied.
func appliedWait(h http.Header) bool {
	for _, v := range h.Values(HeaderApplied) {
		for _, p := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(name), "wait") {
				return true
			}
		}
	}
	return false
}

// retryAfter reads Retry-After in seconds (the only form ferry sends),
// bounded to an hour; 0 when absent or malformed.
func retryAfter(h http.Header) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	if err != nil || n < 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, time.Hour)
}
