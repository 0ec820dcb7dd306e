package ikev2

import "fmt"

// NotifyType is the Notify Message Type of RFC 7296 section 3.10.1. Values
// below 16384 are errors, the rest status.
type NotifyType uint16

// Notify types ferry sends or understands.
const (
	UNSUPPORTED_CRITICAL_PAYLOAD  NotifyType = 1
	INVALID_IKE_SPI               NotifyType = 4
	INVALID_MAJOR_VERSION         NotifyType = 5
	INVALID_SYNTAX                NotifyType = 7
	INVALID_MESSAGE_ID            NotifyType = 9
	INVALID_SPI                   NotifyType = 11
	NO_PROPOSAL_CHOSEN            NotifyType = 14
	INVALID_KE_PAYLOAD            NotifyType = 17
	AUTHENTICATION_FAILED         NotifyType = 24
	SINGLE_PAIR_REQUIRED          NotifyType = 34
	NO_ADDITIONAL_SAS             NotifyType = 35
	INTERNAL_ADDRESS_FAILURE      NotifyType = 36
	FAILED_CP_REQUIRED            NotifyType = 37
	TS_UNACCEPTABLE               NotifyType = 38
	INVALID_SELECTORS             NotifyType = 39
	TEMPORARY_FAILURE             NotifyType = 43
	CHILD_SA_NOT_FOUND            NotifyType = 44
	INITIAL_CONTACT               NotifyType = 16384
	SET_WINDOW_SIZE               NotifyType = 16385
	ADDITIONAL_TS_POSSIBLE        NotifyType = 16386
	IPCOMP_SUPPORTED              NotifyType = 16387
	NAT_DETECTION_SOURCE_IP       NotifyType = 16388
	NAT_DETECTION_DESTINATION_IP  NotifyType = 16389
	COOKIE                        NotifyType = 16390
	USE_TRANSPORT_MODE            NotifyType = 16391
	HTTP_CERT_LOOKUP_SUPPORTED    NotifyType = 16392
	REKEY_SA                      NotifyType = 16393
	ESP_TFC_PADDING_NOT_SUPPORTED NotifyType = 16394
	NON_FIRST_FRAGMENTS_ALSO      NotifyType = 16395
	MOBIKE_SUPPORTED              NotifyType = 16396
	REDIRECT_SUPPORTED            NotifyType = 16406
	IKEV2_FRAGMENTATION_SUPPORTED NotifyType = 16430
	SIGNATURE_HASH_ALGORITHMS     NotifyType = 16431
)

func (n NotifyType) String() string {
	switch n {
	case UNSUPPORTED_CRITICAL_PAYLOAD:
		return "UNSUPPORTED_CRITICAL_PAYLOAD"
	case INVALID_IKE_SPI:
		return "INVALID_IKE_SPI"
	case INVALID_MAJOR_VERSION:
		return "INVALID_MAJOR_VERSION"
	case INVALID_SYNTAX:
		return "INVALID_SYNTAX"
	case INVALID_MESSAGE_ID:
		return "INVALID_MESSAGE_ID"
	case INVALID_SPI:
		return "INVALID_SPI"
	case NO_PROPOSAL_CHOSEN:
		return "NO_PROPOSAL_CHOSEN"
	case INVALID_KE_PAYLOAD:
		return "INVALID_KE_PAYLOAD"
	case AUTHENTICATION_FAILED:
		return "AUTHENTICATION_FAILED"
	case SINGLE_PAIR_REQUIRED:
		return "SINGLE_PAIR_REQUIRED"
	case NO_ADDITIONAL_SAS:
		return "NO_ADDITIONAL_SAS"
	case INTERNAL_ADDRESS_FAILURE:
		return "INTERNAL_ADDRESS_FAILURE"
	case FAILED_CP_REQUIRED:
		return "FAILED_CP_REQUIRED"
	case TS_UNACCEPTABLE:
		return "TS_UNACCEPTABLE"
	case INVALID_SELECTORS:
		return "INVALID_SELECTORS"
	case TEMPORARY_FAILURE:
		return "TEMPORARY_FAILURE"
	case CHILD_SA_NOT_FOUND:
		return "CHILD_SA_NOT_FOUND"
	case INITIAL_CONTACT:
		return "INITIAL_CONTACT"
	case SET_WINDOW_SIZE:
		return "SET_WINDOW_SIZE"
	case ADDITIONAL_TS_POSSIBLE:
		return "ADDITIONAL_TS_POSSIBLE"
	case IPCOMP_SUPPORTED:
		return "IPCOMP_SUPPORTED"
	case NAT_DETECTION_SOURCE_IP:
		return "NAT_DETECTION_SOURCE_IP"
	case NAT_DETECTION_DESTINATION_IP:
		return "NAT_DETECTION_DESTINATION_IP"
	case COOKIE:
		return "COOKIE"
	case USE_TRANSPORT_MODE:
		return "USE_TRANSPORT_MODE"
	case HTTP_CERT_LOOKUP_SUPPORTED:
		return "HTTP_CERT_LOOKUP_SUPPORTED"
	case REKEY_SA:
		return "REKEY_SA"
	case ESP_TFC_PADDING_NOT_SUPPORTED:
		return "ESP_TFC_PADDING_NOT_SUPPORTED"
	case NON_FIRST_FRAGMENTS_ALSO:
		return "NON_FIRST_FRAGMENTS_ALSO"
	case MOBIKE_SUPPORTED:
		return "MOBIKE_SUPPORTED"
	case REDIRECT_SUPPORTED:
		return "REDIRECT_SUPPORTED"
	case IKEV2_FRAGMENTATION_SUPPORTED:
		return "IKEV2_FRAGMENTATION_SUPPORTED"
	case SIGNATURE_HASH_ALGORITHMS:
		return "SIGNATURE_HASH_ALGORITHMS"
	}
	return fmt.Sprintf("notify(%d)", uint16(n))
}

// IsError reports whether n is an error notification (below 16384).
func (n NotifyType) IsError() bool { return n < 16384 }
