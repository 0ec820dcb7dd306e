package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// FieldError is a refusal that names the offending field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

func fieldf(field, format string, a ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, a...)}
}

// Validator is a decoded value that checks itself.
type Validator interface{ Validate() error }

// Decode reads at most limit bytes of JSON from r into v, refusing larger
// bodies, unknown fields and trailing data, then validates v.
func Decode(r io.Reader, limit int64, v Validator) error {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		// a listener's own bound, below this call's
		return fieldf("", "body is over the limit of %d bytes", mbe.Limit)
	}
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	return DecodeBytes(data, limit, v)
}

// DecodeBytes is Decode on a buffer.
func DecodeBytes(data []byte, limit int64, v Validator) error {
	if int64(len(data)) > limit {
		return fieldf("", "body is over the limit of %d bytes", limit)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return fieldf("", "trailing data after the JSON value")
	}
	return v.Validate()
}

func jsonError(err error) error {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return fieldf(ute.Field, "want %s, got JSON %s", ute.Type, ute.Value)
	}
	return fieldf("", "malformed JSON: %v", err)
}
