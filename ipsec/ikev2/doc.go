// Package ikev2 is the IKEv2 wire format (RFC 7296 section 3, RFC 7383
// fragments) and the cryptography an IKE SA needs. It holds no SA state and
// does no I/O: the initiator/responder state machine is built on top of it.
//
// # Codec
//
// DecodeMessage parses one datagram (without the 4-byte non-ESP marker of
// port 4500) into a Message: a Header and typed payloads (*SA, *KE, *ID,
// *Cert, *CertReq, *Auth, *Nonce, *Notify, *Delete, *VendorID, *TS, *CP,
// and, undecrypted, *Encrypted for SK or *Fragment for SKF, always last).
// Message.Encode is its inverse and fills in lengths and next-payload
// fields. DecodePayloads parses the decrypted inner chain. Every length is
// checked against its container; a message is at most 64 KiB and carries at
// most MaxPayloads payloads. Unknown non-critical payloads are skipped; an
// unknown critical one yields *UnsupportedCriticalError (its Notify method
// builds the answer), a bad version *VersionError, anything else malformed
// *DecodeError naming payload, offset and field. DecodeHeader alone gives
// a responder the SPIs and message ID it needs to answer such errors.
//
// # Cryptography
//
// Suites are chosen with a Policy (DefaultIKEPolicy, DefaultESPPolicy):
// Policy.Select walks the initiator's proposals in order and returns the
// first acceptable one reduced to one transform of each type; NewSuite
// turns a selected proposal into a Suite (PRF, cipher, DH group, ESN).
// NewDH, DH.KE and DH.SharedSecret implement groups 19 (ecp256, RFC 5903
// encoding: x||y without 0x04) and 31 (curve25519, RFC 8031).
// Suite.SKEYSEED and Suite.IKEKeys derive SK_d, SK_ai/ar, SK_ei/er, SK_pi/pr
// (RFC 7296 section 2.14; AEAD suites get no integrity keys and 4 bytes of
// salt per encryption key); RekeySKEYSEED is section 2.18's; Suite.ChildKeys
// derives KEYMAT with or without PFS (section 2.17).
//
// A Cipher (from Suite.NewCipher) seals and opens SK payloads: SealMessage
// builds a complete encrypted message from a header and inner payloads,
// OpenMessage authenticates and decrypts one. SealFragments splits into
// SKF fragments and a Reassembler (Cipher.NewReassembler) collects them,
// authenticating each fragment and bounding count and size (the caller owns
// the timeout). AES-GCM follows RFC 5282 (8-byte explicit IV, AAD = IKE
// header and SK header, 16-byte ICV); AES-CBC with HMAC-SHA2-256-128 is
// there for legacy peers.
//
// AUTH: SignedOctets assembles RFC 7296 section 2.15's octets; SignAuth and
// VerifyAuth do RFC 7427 digital signature authentication (method 14) with
// ECDSA P-256/SHA-256 or Ed25519. NATDetectionHash and Cookie/CheckCookie
// (CookieSecret.Cookie) are the helpers for NAT_DETECTION_* and COOKIE
// notifications; the caller holds and rotates the cookie secrets.
//
// Nothing here logs or keeps keys beyond the values it returns; the caller
// decides where they live.
package ikev2
