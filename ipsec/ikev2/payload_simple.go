package ikev2

import "fmt"

// Nonce sizes allowed by RFC 7296 section 3.9.
const (
	MinNonceLen = 16
	MaxNonceLen = 256
)

// KE is the Key Exchange payload: the DH group and the public value.
type KE struct {
	Group uint16
	Data  []byte
}

// Type implements Payload.
func (*KE) Type() PayloadType { return PayloadKE }

func (k *KE) appendBody(b []byte) ([]byte, error) {
	return append(appendU16(appendU16(b, k.Group), 0), k.Data...), nil
}

func decodeKE(r *reader) *KE {
	k := &KE{Group: r.u16("DH group")}
	r.u16("reserved")
	k.Data = r.rest("key exchange data")
	if r.err == nil && len(k.Data) == 0 {
		r.failf("key exchange data", "empty")
	}
	return k
}

// ID is an Identification payload, IDi or IDr depending on Responder.
type ID struct {
	Responder bool
	IDType    IDType
	Data      []byte
}

// Type implements Payload.
func (i *ID) Type() PayloadType {
	if i.Responder {
		return PayloadIDr
	}
	return PayloadIDi
}

func (i *ID) appendBody(b []byte) ([]byte, error) {
	return append(append(b, byte(i.IDType), 0, 0, 0), i.Data...), nil
}

// Body returns the payload body without the generic header: the
// "RestOfInitIDPayload" / "RestOfRespIDPayload" that AUTH signs.
func (i *ID) Body() []byte {
	b, _ := i.appendBody(nil)
	return b
}

func decodeID(r *reader, responder bool) *ID {
	i := &ID{Responder: responder, IDType: IDType(r.u8("ID type"))}
	r.bytes(3, "reserved")
	i.Data = r.rest("identification data")
	if r.err == nil && len(i.Data) == 0 {
		r.failf("identification data", "empty")
	}
	return i
}

// Cert is a Certificate payload.
type Cert struct {
	Encoding CertEncoding
	Data     []byte
}

// Type implements Payload.
func (*Cert) Type() PayloadType { return PayloadCERT }

func (c *Cert) appendBody(b []byte) ([]byte, error) {
	return append(append(b, byte(c.Encoding)), c.Data...), nil
}

func decodeCert(r *reader) *Cert {
	c := &Cert{Encoding: CertEncoding(r.u8("cert encoding"))}
	c.Data = r.rest("certificate data")
	if r.err == nil && len(c.Data) == 0 {
		r.failf("certificate data", "empty")
	}
	return c
}

// CertReq is a Certificate Request payload. For X.509 the data is a list
// of SHA-1 hashes of trusted CAs' SubjectPublicKeyInfo, 20 bytes each.
type CertReq struct {
	Encoding CertEncoding
	Data     []byte
}

// Type implements Payload.
func (*CertReq) Type() PayloadType { return PayloadCERTREQ }

func (c *CertReq) appendBody(b []byte) ([]byte, error) {
	return append(append(b, byte(c.Encoding)), c.Data...), nil
}

// Authorities splits X.509 request data into 20-byte CA key hashes.
func (c *CertReq) Authorities() ([][]byte, error) {
	if len(c.Data)%20 != 0 {
		return nil, fmt.Errorf("ikev2: CERTREQ data of %d bytes is not a multiple of 20", len(c.Data))
	}
	var out [][]byte
	for i := 0; i < len(c.Data); i += 20 {
		out = append(out, c.Data[i:i+20])
	}
	return out, nil
}

func decodeCertReq(r *reader) *CertReq {
	return &CertReq{Encoding: CertEncoding(r.u8("cert encoding")), Data: r.rest("certification authority")}
}

// Auth is the Authentication payload.
type Auth struct {
	Method AuthMethod
	Data   []byte
}

// Type implements Payload.
func (*Auth) Type() PayloadType { return PayloadAUTH }

func (a *Auth) appendBody(b []byte) ([]byte, error) {
	return append(append(b, byte(a.Method), 0, 0, 0), a.Data...), nil
}

func decodeAuth(r *reader) *Auth {
	a := &Auth{Method: AuthMethod(r.u8("auth method"))}
	r.bytes(3, "reserved")
	a.Data = r.rest("authentication data")
	if r.err == nil && len(a.Data) == 0 {
		r.failf("authentication data", "empty")
	}
	return a
}

// Nonce is the Nonce payload (16..256 bytes).
type Nonce struct {
	Data []byte
}

// Type implements Payload.
func (*Nonce) Type() PayloadType { return PayloadNonce }

func (n *Nonce) appendBody(b []byte) ([]byte, error) {
	if len(n.Data) < MinNonceLen || len(n.Data) > MaxNonceLen {
		return nil, fmt.Errorf("nonce of %d bytes, want %d..%d", len(n.Data), MinNonceLen, MaxNonceLen)
	}
	return append(b, n.Data...), nil
}

func decodeNonce(r *reader) *Nonce {
	n := &Nonce{Data: r.rest("nonce data")}
	if r.err == nil && (len(n.Data) < MinNonceLen || len(n.Data) > MaxNonceLen) {
		r.failf("nonce data", "%d bytes, want %d..%d", len(n.Data), MinNonceLen, MaxNonceLen)
	}
	return n
}

// VendorID is the Vendor ID payload.
type VendorID struct {
	Data []byte
}

// Type implements Payload.
func (*VendorID) Type() PayloadType { return PayloadVendorID }

func (v *VendorID) appendBody(b []byte) ([]byte, error) { return append(b, v.Data...), nil }
