package ikev2

import "fmt"

// PayloadType is the "Next Payload" code of RFC 7296 section 3.2.
type PayloadType uint8

// Payload types (RFC 7296 section 3.2, RFC 7383 for SKF).
const (
	PayloadNone     PayloadType = 0
	PayloadSA       PayloadType = 33
	PayloadKE       PayloadType = 34
	PayloadIDi      PayloadType = 35
	PayloadIDr      PayloadType = 36
	PayloadCERT     PayloadType = 37
	PayloadCERTREQ  PayloadType = 38
	PayloadAUTH     PayloadType = 39
	PayloadNonce    PayloadType = 40
	PayloadNotify   PayloadType = 41
	PayloadDelete   PayloadType = 42
	PayloadVendorID PayloadType = 43
	PayloadTSi      PayloadType = 44
	PayloadTSr      PayloadType = 45
	PayloadSK       PayloadType = 46
	PayloadCP       PayloadType = 47
	PayloadEAP      PayloadType = 48
	PayloadSKF      PayloadType = 53
)

func (t PayloadType) String() string {
	switch t {
	case PayloadNone:
		return "none"
	case PayloadSA:
		return "SA"
	case PayloadKE:
		return "KE"
	case PayloadIDi:
		return "IDi"
	case PayloadIDr:
		return "IDr"
	case PayloadCERT:
		return "CERT"
	case PayloadCERTREQ:
		return "CERTREQ"
	case PayloadAUTH:
		return "AUTH"
	case PayloadNonce:
		return "Nonce"
	case PayloadNotify:
		return "N"
	case PayloadDelete:
		return "D"
	case PayloadVendorID:
		return "V"
	case PayloadTSi:
		return "TSi"
	case PayloadTSr:
		return "TSr"
	case PayloadSK:
		return "SK"
	case PayloadCP:
		return "CP"
	case PayloadEAP:
		return "EAP"
	case PayloadSKF:
		return "SKF"
	}
	return fmt.Sprintf("payload(%d)", uint8(t))
}

// ExchangeType is the exchange code of the IKE header.
type ExchangeType uint8

// Exchange types (RFC 7296 section 3.1).
const (
	IKE_SA_INIT     ExchangeType = 34
	IKE_AUTH        ExchangeType = 35
	CREATE_CHILD_SA ExchangeType = 36
	INFORMATIONAL   ExchangeType = 37
)

func (e ExchangeType) String() string {
	switch e {
	case IKE_SA_INIT:
		return "IKE_SA_INIT"
	case IKE_AUTH:
		return "IKE_AUTH"
	case CREATE_CHILD_SA:
		return "CREATE_CHILD_SA"
	case INFORMATIONAL:
		return "INFORMATIONAL"
	}
	return fmt.Sprintf("exchange(%d)", uint8(e))
}

// Flags are the header flags: Initiator, Version and Response.
type Flags uint8

// Header flag bits (RFC 7296 section 3.1).
const (
	FlagInitiator Flags = 0x08
	FlagVersion   Flags = 0x10
	FlagResponse  Flags = 0x20
)

// ProtocolID names the protocol of a proposal, notification or delete.
type ProtocolID uint8

// Protocol identifiers (RFC 7296 section 3.3.1).
const (
	ProtoIKE ProtocolID = 1
	ProtoAH  ProtocolID = 2
	ProtoESP ProtocolID = 3
)

// IDType is the identification type of IDi/IDr (RFC 7296 section 3.5).
type IDType uint8

// Identification types.
const (
	IDIPv4Addr  IDType = 1
	IDFQDN      IDType = 2
	IDRFC822    IDType = 3
	IDIPv6Addr  IDType = 5
	IDDerAsn1DN IDType = 9
	IDDerAsn1GN IDType = 10
	IDKeyID     IDType = 11
)

// CertEncoding is the encoding of a CERT or CERTREQ payload.
type CertEncoding uint8

// Certificate encodings used by ferry (RFC 7296 section 3.6).
const (
	CertX509Signature CertEncoding = 4
)

// AuthMethod is the method of an AUTH payload.
type AuthMethod uint8

// Authentication methods (RFC 7296 section 3.8, RFC 7427).
const (
	AuthRSASignature     AuthMethod = 1
	AuthSharedKey        AuthMethod = 2
	AuthDSS              AuthMethod = 3
	AuthECDSA256         AuthMethod = 9
	AuthDigitalSignature AuthMethod = 14
)

// TSType is the traffic selector type.
type TSType uint8

// Traffic selector types (RFC 7296 section 3.13.1).
const (
	TSIPv4AddrRange TSType = 7
	TSIPv6AddrRange TSType = 8
)

// CfgType is the type of a configuration payload.
type CfgType uint8

// Configuration payload types (RFC 7296 section 3.15).
const (
	CfgRequest CfgType = 1
	CfgReply   CfgType = 2
	CfgSet     CfgType = 3
	CfgAck     CfgType = 4
)

// CfgAttrType is the type of a configuration attribute.
type CfgAttrType uint16

// Configuration attributes (RFC 7296 section 3.15.1).
const (
	InternalIP4Address  CfgAttrType = 1
	InternalIP4Netmask  CfgAttrType = 2
	InternalIP4DNS      CfgAttrType = 3
	InternalIP4NBNS     CfgAttrType = 4
	InternalIP4DHCP     CfgAttrType = 6
	ApplicationVersion  CfgAttrType = 7
	InternalIP6Address  CfgAttrType = 8
	InternalIP6DNS      CfgAttrType = 10
	InternalIP4Subnet   CfgAttrType = 13
	SupportedAttributes CfgAttrType = 14
	InternalIP6Subnet   CfgAttrType = 15
)

// HashAlgorithm is an entry of SIGNATURE_HASH_ALGORITHMS (RFC 7427, 8420).
type HashAlgorithm uint16

// Hash algorithms for digital signatures.
const (
	HashSHA1     HashAlgorithm = 1
	HashSHA2_256 HashAlgorithm = 2
	HashSHA2_384 HashAlgorithm = 3
	HashSHA2_512 HashAlgorithm = 4
	HashIdentity HashAlgorithm = 5
)
