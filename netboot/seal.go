package netboot

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// kind says what a sealed URL points at.
type kind byte

const (
	kindScript kind = 's'
	kindKernel kind = 'k'
	kindInitrd kind = 'i'
	kindROM    kind = 'r' // iPXE's EFI build, for UEFI HTTP boot
)

// ticket is what a sealed URL carries: which machine, which file, which
// boot, until when, and for a script in ModeDHCP the address this server
// leased to the machine. Only this process can make or read one.
type ticket struct {
	Kind    kind
	Expires time.Time
	Boot    [16]byte   // the boot table entry; zero for scripts
	Addr    netip.Addr // the IPv4 address leased to MAC; invalid when none (ProxyDHCP, files)
	MAC     net.HardwareAddr
}

// ticketFixed is the length of a ticket before its MAC: version, kind,
// expiry, boot, address, MAC length.
const ticketFixed = 1 + 1 + 8 + 16 + 4 + 1

const (
	sealVersion = 2
	maxMAC      = 20 // DHCP chaddr is 16 bytes; InfiniBand's 20 is the largest hardware address
	// maxSealed bounds the text of a sealed token before decoding.
	maxSealed = 160
)

// sealer makes and opens sealed tickets with AES-256-GCM under a key that
// lives only in this process: a restart voids every URL, which is what an
// expiring one-boot URL should do anyway.
type sealer struct {
	aead cipher.AEAD
	now  func() time.Time
}

func newSealer(now func() time.Time) (*sealer, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("netboot: sealing key: %w", err)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: a, now: now}, nil
}

func (t *ticket) marshal() []byte {
	b := make([]byte, 0, ticketFixed+len(t.MAC))
	b = append(b, sealVersion, byte(t.Kind))
	b = binary.BigEndian.AppendUint64(b, uint64(t.Expires.Unix()))
	b = append(b, t.Boot[:]...)
	var addr [4]byte // 0.0.0.0: no address
	if t.Addr.Is4() {
		addr = t.Addr.As4()
	}
	b = append(b, addr[:]...)
	b = append(b, byte(len(t.MAC)))
	return append(b, t.MAC...)
}

func unmarshalTicket(b []byte) (*ticket, error) {
	if len(b) < ticketFixed || b[0] != sealVersion {
		return nil, errors.New("bad ticket layout")
	}
	t := &ticket{Kind: kind(b[1]), Expires: time.Unix(int64(binary.BigEndian.Uint64(b[2:10])), 0)}
	copy(t.Boot[:], b[10:26])
	if a := netip.AddrFrom4([4]byte(b[26:30])); !a.IsUnspecified() {
		t.Addr = a
	}
	n := int(b[30])
	if n == 0 || n > maxMAC || len(b) != ticketFixed+n {
		return nil, errors.New("bad MAC length in ticket")
	}
	t.MAC = net.HardwareAddr(append([]byte(nil), b[ticketFixed:]...))
	return t, nil
}

// seal returns the URL-safe text of t.
func (s *sealer) seal(t *ticket) string {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	out := s.aead.Seal(nonce, nonce, t.marshal(), nil)
	return base64.RawURLEncoding.EncodeToString(out)
}

// open checks and returns the ticket in text, refusing anything forged,
// altered, expired or of another kind than want.
func (s *sealer) open(text string, want ...kind) (*ticket, error) {
	if len(text) > maxSealed {
		return nil, fmt.Errorf("sealed token: %d characters, more than %d", len(text), maxSealed)
	}
	raw, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("sealed token: not base64url: %w", err)
	}
	ns := s.aead.NonceSize()
	if len(raw) < ns+s.aead.Overhead() {
		return nil, fmt.Errorf("sealed token: %d bytes, too short", len(raw))
	}
	plain, err := s.aead.Open(nil, raw[:ns], raw[ns:], nil)
	if err != nil {
		return nil, errors.New("sealed token: forged or altered")
	}
	t, err := unmarshalTicket(plain)
	if err != nil {
		return nil, fmt.Errorf("sealed token: %w", err)
	}
	if !s.now().Before(t.Expires) {
		return nil, fmt.Errorf("sealed token: expired at %s", t.Expires.UTC().Format(time.RFC3339))
	}
	for _, k := range want {
		if t.Kind == k {
			return t, nil
		}
	}
	return nil, fmt.Errorf("sealed token: kind %q not valid here", t.Kind)
}
