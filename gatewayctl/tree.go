package gatewayctl

import (
	"fmt"

	"github.com/strongswan/govici/vici"
)

// node is one swanctl setting or section, in order: a connection as the
// VICI message describes it.
type node struct {
	key  string
	val  []string // a setting: one value or a list
	kids []node   // a section
}

func set(key string, vals ...string) node { return node{key: key, val: vals} }
func sect(key string, kids ...node) node  { return node{key: key, kids: kids} }

// tree describes c; ca and pub are the CA certificate and the public key
// in PEM.
func (c Conn) tree(ca, pub string) node {
	conn := []node{set("version", "2")}
	if len(c.LocalAddrs) > 0 {
		conn = append(conn, set("local_addrs", c.LocalAddrs...))
	}
	if c.pool() != "" {
		conn = append(conn, set("pools", c.pool()))
	}
	conn = append(conn, set("proposals", c.proposals()...), set("encap", "yes"))
	local := []node{set("auth", "pubkey")}
	if c.LocalID != "" {
		local = append(local, set("id", c.LocalID))
	}
	remote := []node{set("auth", "pubkey"), set("id", c.remoteID()), set("cacerts", ca)}
	if c.PubKey != nil {
		remote = append(remote, set("pubkeys", pub))
	}
	conn = append(conn,
		sect("local", local...),
		sect("remote", remote...),
		sect("children", sect("ferry", set("local_ts", c.LocalTS...), set("esp_proposals", c.espProposals()...))))
	return sect(c.Name(), conn...)
}

// message turns n's children into a VICI message.
func (n node) message() (*vici.Message, error) {
	m := vici.NewMessage()
	for _, k := range n.kids {
		var err error
		switch {
		case k.kids != nil:
			var sub *vici.Message
			if sub, err = k.message(); err == nil {
				err = m.Set(k.key, sub)
			}
		case len(k.val) == 1 && !listKey(k.key):
			err = m.Set(k.key, k.val[0])
		default:
			err = m.Set(k.key, k.val)
		}
		if err != nil {
			return nil, fmt.Errorf("vici message %s.%s: %w", n.key, k.key, err)
		}
	}
	return m, nil
}

// listKey reports settings VICI takes as lists even with one element.
func listKey(k string) bool {
	switch k {
	case "local_addrs", "pools", "proposals", "cacerts", "pubkeys", "local_ts", "esp_proposals", "certs":
		return true
	}
	return false
}
