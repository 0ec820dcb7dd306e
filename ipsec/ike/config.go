package ike

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"ferry/ipsec/authz"
	"ferry/ipsec/dataplane"
	"ferry/ipsec/ikev2"
	"ferry/pki"
)

// Authorizer decides whether a verified peer key may open a tunnel; an
// *authz.List is one.
type Authorizer interface {
	Allow(pin string) (authz.Entry, error)
}

// CertAuthorizer is an Authorizer that also judges the certificate itself
// (its CA's revocation list); *authz.List is one. The responder prefers it.
type CertAuthorizer interface {
	AllowCert(cert *x509.Certificate) (authz.Entry, error)
}

// Config is what a Daemon needs. Zero durations and sizes take defaults.
type Config struct {
	// Local is this host's IKE address; Port and NATPort default to 500
	// and 4500.
	Local         netip.Addr
	Port, NATPort uint16
	// NATSocket, when set, is the port-4500 socket already opened by the
	// caller (a user-space ESP plane must send on the same socket, and is
	// made before the daemon).
	NATSocket *net.UDPConn

	Certs    []*x509.Certificate // own chain, end entity first
	Key      crypto.Signer
	CAs      []*x509.Certificate // trusted CAs, also named in CERTREQ
	Verifier *pki.Verifier       // built from CAs when nil

	// Responder side: the allow list (nil: any certificate that
	// verifies), the virtual IP pool (nil: none handed out) and the
	// subnets peers may reach through the tunnel.
	Authorizer   Authorizer
	Pool         *Pool
	LocalSubnets []netip.Prefix
	DNS          []netip.Addr // INTERNAL_IP4_DNS handed out with the virtual IP

	DataPlane dataplane.DataPlane
	// ForceEncap makes both ends use UDP encapsulation even without NAT
	// (a faked NAT_DETECTION_SOURCE_IP, as strongSwan's encap=yes does);
	// user-space ESP needs it.
	ForceEncap bool

	IKEPolicy, ESPPolicy ikev2.Policy // defaults: ikev2.DefaultIKEPolicy, DefaultESPPolicy(false)
	Backoff              Backoff      // DefaultBackoff
	DPD                  time.Duration
	// IKELifetime and ChildLifetime, when set, make this end rekey the
	// IKE SA and each CHILD_SA (the data plane's soft expiry) at a random
	// point between 2×RekeyMargin and RekeyMargin before the lifetime
	// ends (RekeyMargin zero: 10 % of the lifetime), deleting a CHILD_SA
	// at 100 % (hard expiry). Both ends may rekey; simultaneous rekeys are
	// settled per RFC 7296 section 2.8. Timers.Apply sets these from a
	// configuration file.
	IKELifetime, ChildLifetime, RekeyMargin time.Duration
	// RetryMax bounds Keep's wait between failed connection attempts
	// (doubling from 1 s), 60 s; a tunnel carrying a root file system
	// wants a few seconds.
	RetryMax time.Duration
	// ChildBytes and ChildPackets bound each direction of a CHILD_SA the
	// same way: the data plane's soft expiry at a random 80-90 % rekeys
	// it, the hard one at 100 % deletes it on both ends. Zero: unlimited.
	ChildBytes, ChildPackets uint64
	// RekeyGrace is how long a CHILD_SA replaced by a rekey keeps
	// decrypting before it is removed, whether or not the peer deleted
	// it: 5 s (strongSwan's delete_rekeyed_delay).
	RekeyGrace  time.Duration
	Keepalive   time.Duration // NAT-T keepalive interval, 20 s
	HalfOpenMax int           // half-open SAs kept at most, 1024; refused ones too
	// RefusalHold is how long a refused IKE_AUTH's answer is kept for its
	// retransmissions, 30 s (about an initiator's whole back-off).
	RefusalHold     time.Duration
	CookieThreshold int // half-open SAs from which cookies are demanded, 64
	FragmentSize    int // largest IKE datagram before fragmenting, 1280
	Log             *slog.Logger
}

func (c *Config) setDefaults() error {
	if len(c.Certs) == 0 || c.Key == nil {
		return errors.New("ike: config: own certificate and key are required")
	}
	if !c.Local.IsValid() || c.Local.IsUnspecified() {
		return fmt.Errorf("ike: config: local address %v: want a specific address (NAT detection hashes it)", c.Local)
	}
	if c.Verifier == nil {
		if len(c.CAs) == 0 {
			return errors.New("ike: config: no CA to verify peers with")
		}
		pool := x509.NewCertPool()
		for _, ca := range c.CAs {
			pool.AddCert(ca)
		}
		c.Verifier = &pki.Verifier{Roots: pool, Skew: 5 * time.Minute}
	}
	if c.DataPlane == nil {
		return errors.New("ike: config: no data plane")
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.HalfOpenMax, 1024)
	def(&c.CookieThreshold, 64)
	def(&c.FragmentSize, 1280)
	if c.Port == 0 {
		c.Port = 500
	}
	if c.NATPort == 0 {
		c.NATPort = dataplane.NATTPort
	}
	if c.Backoff.Tries == 0 {
		c.Backoff = DefaultBackoff()
	}
	if c.RefusalHold == 0 {
		c.RefusalHold = 30 * time.Second
	}
	if c.Keepalive == 0 {
		c.Keepalive = 20 * time.Second
	}
	if c.RekeyGrace == 0 {
		c.RekeyGrace = 5 * time.Second
	}
	if c.RetryMax == 0 {
		c.RetryMax = time.Minute
	}
	if c.DPD == 0 {
		c.DPD = time.Duration(DefaultTimers().DPDSeconds) * time.Second
	}
	if c.IKEPolicy.Protocol == 0 {
		c.IKEPolicy = ikev2.DefaultIKEPolicy()
	}
	if c.ESPPolicy.Protocol == 0 {
		c.ESPPolicy = ikev2.DefaultESPPolicy(false)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}
