package ikev2

import "fmt"

// MaxCfgAttrs bounds the attributes of one CP payload.
const MaxCfgAttrs = 64

// CP is the Configuration payload (RFC 7296 section 3.15).
type CP struct {
	CfgType CfgType
	Attrs   []CfgAttr
}

// CfgAttr is one configuration attribute. A request may carry an empty
// Value (asking for any address); a reply carries the value.
type CfgAttr struct {
	Type  CfgAttrType
	Value []byte
}

// Type implements Payload.
func (*CP) Type() PayloadType { return PayloadCP }

func (c *CP) appendBody(b []byte) ([]byte, error) {
	if len(c.Attrs) > MaxCfgAttrs {
		return nil, fmt.Errorf("%d attributes, max %d", len(c.Attrs), MaxCfgAttrs)
	}
	b = append(b, byte(c.CfgType), 0, 0, 0)
	for _, a := range c.Attrs {
		if len(a.Value) > 0xffff {
			return nil, fmt.Errorf("attribute %d of %d bytes", a.Type, len(a.Value))
		}
		b = appendU16(b, uint16(a.Type)&0x7fff)
		b = appendU16(b, uint16(len(a.Value)))
		b = append(b, a.Value...)
	}
	return b, nil
}

func decodeCP(r *reader) *CP {
	c := &CP{CfgType: CfgType(r.u8("CFG type"))}
	r.bytes(3, "reserved")
	for r.err == nil && r.left() > 0 {
		if len(c.Attrs) == MaxCfgAttrs {
			r.failf("attribute", "more than %d attributes", MaxCfgAttrs)
			break
		}
		t := CfgAttrType(r.u16("attribute type") & 0x7fff)
		n := int(r.u16("attribute length"))
		v := r.clone(n, "attribute value")
		if r.err == nil && !cfgLenOK(t, n) {
			r.failf("attribute length", "%d is wrong for attribute type %d", n, t)
		}
		c.Attrs = append(c.Attrs, CfgAttr{Type: t, Value: v})
	}
	return c
}

// cfgLenOK checks the fixed lengths of RFC 7296 section 3.15.1 (0 allowed
// in requests).
func cfgLenOK(t CfgAttrType, n int) bool {
	switch t {
	case InternalIP4Address, InternalIP4Netmask, InternalIP4DNS, InternalIP4NBNS, InternalIP4DHCP:
		return n == 0 || n == 4
	case InternalIP6Address, InternalIP6Subnet:
		return n == 0 || n == 17
	case InternalIP6DNS:
		return n == 0 || n == 16
	case InternalIP4Subnet:
		return n == 0 || n == 8
	}
	return true
}
