package netboot

// Events hears what the servers did, for the lender's metrics; a nil
// Config.Events hears nothing. Calls come from many goroutines.
type Events interface {
	// DHCP is one request handled: outcome "answered" (reply is the
	// message type sent: OFFER, ACK, NAK), "ignored" (not a machine of
	// ours, not admitted, not a PXE client: nothing sent) or "failed".
	DHCP(outcome, reply string)
	// Transfer is one TFTP or HTTP answer: proto "tftp" or "http", what
	// "rom" (an iPXE binary), "script" or "file" (kernel, initrd A),
	// outcome "served", "refused" or "failed", and the bytes sent.
	Transfer(proto, what, outcome string, bytes int64)
}

type noEvents struct{}

func (noEvents) DHCP(string, string)                    {}
func (noEvents) Transfer(string, string, string, int64) {}
