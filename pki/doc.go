// Package pki makes and checks the keys and certificates of ferry's IPsec
// tunnels.
//
// A lent server gets a one-time key for each lending: GenerateKey makes it
// in memory and CreateCSR wraps its public half, with the identity the
// lender gives, in a certificate signing request. The private key is only
// written where the caller says, mode 0600, never over an existing file,
// and (unless allowed) only on tmpfs or ramfs, so that it never reaches
// the lender's disks.
//
// Verifier checks the certificate chain an IKE peer sends: it must chain to
// the configured CA pool, be inside its validity window (with a clock skew
// tolerance), allow digital signatures, and it yields the identity the peer
// is authenticated as plus the SHA-256 pin of its public key.
//
// CA is a tiny certificate authority for tests and the lab; the lender's
// real CA lives elsewhere.
package pki
