package ikev2

import (
	"errors"
	"fmt"
)

// DecodeError says where a message or payload failed to parse: the payload
// type, the byte offset from the start of the buffer handed to the decoder,
// the field and the reason. A responder answers it with INVALID_SYNTAX (or
// drops the message if it is not yet authenticated).
type DecodeError struct {
	Payload PayloadType // PayloadNone for the IKE header
	Offset  int
	Field   string
	Reason  string
}

func (e *DecodeError) Error() string {
	where := "header"
	if e.Payload != PayloadNone {
		where = e.Payload.String() + " payload"
	}
	return fmt.Sprintf("ikev2: %s at offset %d: %s: %s", where, e.Offset, e.Field, e.Reason)
}

// UnsupportedCriticalError reports an unknown payload with the critical bit
// set. RFC 7296 section 2.5: the recipient rejects the whole message and
// answers UNSUPPORTED_CRITICAL_PAYLOAD with Type as the notify data.
type UnsupportedCriticalError struct {
	Type   PayloadType
	Offset int
}

func (e *UnsupportedCriticalError) Error() string {
	return fmt.Sprintf("ikev2: unsupported critical payload type %d at offset %d", uint8(e.Type), e.Offset)
}

// Notify returns the notification a responder sends for this error.
func (e *UnsupportedCriticalError) Notify() *Notify {
	return &Notify{Kind: UNSUPPORTED_CRITICAL_PAYLOAD, Data: []byte{byte(e.Type)}}
}

// VersionError reports a header whose major version is not 2. A responder
// answers INVALID_MAJOR_VERSION (RFC 7296 section 2.5).
type VersionError struct {
	Major, Minor uint8
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("ikev2: header version %d.%d: major version must be 2", e.Major, e.Minor)
}

// ErrAuthentication is returned when an encrypted payload or fragment fails
// its integrity check: the message must be dropped silently.
var ErrAuthentication = errors.New("ikev2: integrity check failed")
