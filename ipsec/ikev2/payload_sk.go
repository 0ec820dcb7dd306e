package ikev2

// Encrypted is the SK payload as it travels: Next is the type of the first
// inner payload, Data is IV || ciphertext || ICV. Use a Cipher to seal or
// open it.
type Encrypted struct {
	Next PayloadType
	Data []byte
}

// Type implements Payload.
func (*Encrypted) Type() PayloadType { return PayloadSK }

func (e *Encrypted) appendBody(b []byte) ([]byte, error) { return append(b, e.Data...), nil }

// Fragment is the SKF payload of RFC 7383: one encrypted fragment. Next is
// the first inner payload type in fragment 1 and 0 in the others.
type Fragment struct {
	Number uint16
	Total  uint16
	Next   PayloadType
	Data   []byte
}

// Type implements Payload.
func (*Fragment) Type() PayloadType { return PayloadSKF }

func (f *Fragment) appendBody(b []byte) ([]byte, error) {
	b = appendU16(appendU16(b, f.Number), f.Total)
	return append(b, f.Data...), nil
}

func decodeEncrypted(r *reader, t, next PayloadType) Payload {
	if t == PayloadSK {
		return &Encrypted{Next: next, Data: r.rest("encrypted data")}
	}
	f := &Fragment{Next: next, Number: r.u16("fragment number"), Total: r.u16("total fragments")}
	f.Data = r.rest("encrypted data")
	if r.err == nil && (f.Number == 0 || f.Total == 0 || f.Number > f.Total) {
		r.failf("fragment number", "%d of %d", f.Number, f.Total)
	}
	if r.err == nil && f.Number != 1 && next != PayloadNone {
		r.failf("next payload", "fragment %d names inner payload %s; only fragment 1 may", f.Number, next)
	}
	return f
}
