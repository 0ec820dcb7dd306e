package ikev2

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
)

// NATDetectionHash is SHA1(SPIi | SPIr | IP | Port), the data of
// NAT_DETECTION_SOURCE_IP and NAT_DETECTION_DESTINATION_IP (RFC 7296
// section 2.23). In IKE_SA_INIT requests SPIr is zero.
func NATDetectionHash(spii, spir uint64, ap netip.AddrPort) []byte {
	h := sha1.New()
	var b []byte
	b = binary.BigEndian.AppendUint64(b, spii)
	b = binary.BigEndian.AppendUint64(b, spir)
	b = append(b, ap.Addr().Unmap().AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, ap.Port())
	h.Write(b)
	return h.Sum(nil)
}

// CookieSecret is one generation of the responder's cookie key. The caller
// holds the current and previous generations and rotates them.
type CookieSecret struct {
	Version uint32
	Key     []byte
}

// Cookie computes the COOKIE notify data of RFC 7296 section 2.6:
// VersionIDofSecret | HMAC-SHA256(secret, Ni | IPi | SPIi), 36 bytes.
func (s CookieSecret) Cookie(ni []byte, ip netip.Addr, spii uint64) []byte {
	m := hmac.New(sha256.New, s.Key)
	m.Write(ni)
	m.Write(ip.Unmap().AsSlice())
	m.Write(binary.BigEndian.AppendUint64(nil, spii))
	return m.Sum(binary.BigEndian.AppendUint32(nil, s.Version))
}

// CheckCookie reports whether cookie was made by one of the secrets for
// this initiator's nonce, address and SPI.
func CheckCookie(cookie, ni []byte, ip netip.Addr, spii uint64, secrets ...CookieSecret) bool {
	if len(cookie) != 36 {
		return false
	}
	v := binary.BigEndian.Uint32(cookie)
	for _, s := range secrets {
		if s.Version == v && hmac.Equal(cookie, s.Cookie(ni, ip, spii)) {
			return true
		}
	}
	return false
}
