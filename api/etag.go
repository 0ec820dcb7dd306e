package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// ETag is the entity tag of v as the lease API answers it: the SHA-256
// of its JSON (encoding/json), quoted. A borrower computes it from the
// lease it stored, so it needs to remember nothing; when its copy
// decodes to other JSON (fields it does not know), the tags differ and
// it gets the whole answer, never a wrong 304.
func ETag(v any) (string, error) {
	data, err := jsonOf(v)
	if err != nil {
		return "", err
	}
	return etagOf(data), nil
}

func jsonOf(v any) ([]byte, error) { return json.Marshal(v) }

func etagOf(data []byte) string {
	h := sha256.Sum256(data)
	return `"` + hex.EncodeToString(h[:]) + `"`
}

// WriteTagged answers v with its ETag, or 304 Not Modified without a
// body when r's If-None-Match names that tag: a poll of an unchanged
// lease costs neither side a body.
func WriteTagged(w http.ResponseWriter, r *http.Request, v any) {
	data, tag, err := Tagged(v)
	if err != nil {
		WriteError(w, err)
		return
	}
	WriteTaggedData(w, r, data, tag)
}

// noneMatch reports whether an If-None-Match header names tag (weak
// comparison, RFC 9110 13.1.2).
func noneMatch(header, tag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == tag {
			return true
		}
	}
	return false
}

// GetIfChanged is Call("GET", path, nil, out) sending If-None-Match: tag
// (none when tag is ""): false without touching out when the server
// answered 304 Not Modified. A server that ignores the header answers
// in full, as to any GET.
func (c *Client) GetIfChanged(ctx context.Context, path, tag string, out any) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.Base+path, nil)
	if err != nil {
		return false, err
	}
	if tag != "" {
		req.Header.Set("If-None-Match", tag)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return false, c.failed("GET", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return false, nil
	}
	if err := c.answer("GET", path, resp, out); err != nil {
		return false, err
	}
	return true, nil
}
