package borrower_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// This file is a minimal NFSv4.0 client (RFC 7530 over ONC RPC, RFC 5531,
// AUTH_SYS) for the export tests: the host has no kernel NFS client, and
// what a lent server sees is exactly the COMPOUND status of "PUTROOTFH,
// LOOKUP each component, GETFH, READDIR" sent from its address.

// NFSv4 status codes the tests name.
const (
	nfs4OK        = 0
	nfs4ErrPerm   = 1
	nfs4ErrNoEnt  = 2
	nfs4ErrAccess = 13
	nfs4WrongSec  = 10016
)

// nfsStatusName names an nfsstat4 for test failures.
func nfsStatusName(s uint32) string {
	switch s {
	case nfs4OK:
		return "NFS4_OK"
	case nfs4ErrPerm:
		return "NFS4ERR_PERM"
	case nfs4ErrNoEnt:
		return "NFS4ERR_NOENT"
	case nfs4ErrAccess:
		return "NFS4ERR_ACCESS"
	case nfs4WrongSec:
		return "NFS4ERR_WRONGSEC"
	}
	return fmt.Sprintf("nfsstat4 %d", s)
}

type xdr struct{ b []byte }

func (x *xdr) u32(v uint32) { x.b = binary.BigEndian.AppendUint32(x.b, v) }
func (x *xdr) opaque(p []byte) {
	x.u32(uint32(len(p)))
	x.b = append(x.b, p...)
	for len(x.b)%4 != 0 {
		x.b = append(x.b, 0)
	}
}

// nfsLookup dials server:2049 from local (the source address a lent
// server would have), walks path from the pseudo root as uid 0 and reads
// the directory it ends at. It returns the COMPOUND's status and, when
// NFS4_OK, the number of READDIR entries.
func nfsLookup(local, server, path string) (status uint32, entries int, err error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", net.JoinHostPort(server, "2049"))
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))

	var x xdr
	x.u32(0x5eed)               // xid
	x.u32(0)                    // CALL
	x.u32(2)                    // RPC version
	x.u32(100003)               // NFS
	x.u32(4)                    // version 4
	x.u32(1)                    // COMPOUND
	var cred xdr                // AUTH_SYS: stamp, machine, uid, gid, gids
	cred.u32(1)                 //
	cred.opaque([]byte("lent")) //
	cred.u32(0)                 // root: what a lent server's root user sends
	cred.u32(0)                 //
	cred.u32(0)                 // no supplementary groups
	x.u32(1)                    // AUTH_SYS
	x.opaque(cred.b)            //
	x.u32(0)                    // verifier AUTH_NONE
	x.u32(0)                    //
	x.opaque(nil)               // COMPOUND tag
	x.u32(0)                    // minor version 0
	comps := strings.FieldsFunc(path, func(r rune) bool { return r == '/' })
	x.u32(uint32(len(comps) + 3)) // ops
	x.u32(24)                     // PUTROOTFH
	for _, c := range comps {
		x.u32(15) // LOOKUP
		x.opaque([]byte(c))
	}
	x.u32(10)    // GETFH
	x.u32(26)    // READDIR: cookie, verifier, dircount, maxcount, attr bitmap
	x.u32(0)     //
	x.u32(0)     //
	x.u32(0)     // verifier (8 bytes)
	x.u32(0)     //
	x.u32(4096)  // dircount
	x.u32(16384) // maxcount
	x.u32(0)     // empty attribute bitmap
	rec := binary.BigEndian.AppendUint32(nil, 0x80000000|uint32(len(x.b)))
	if _, err := c.Write(append(rec, x.b...)); err != nil {
		return 0, 0, err
	}
	reply, err := readRecord(c)
	if err != nil {
		return 0, 0, err
	}
	r := reader{b: reply}
	r.u32() // xid
	if r.u32() != 1 || r.u32() != 0 {
		return 0, 0, errors.New("not an accepted RPC reply")
	}
	r.u32()
	r.skipOpaque() // verifier
	if st := r.u32(); st != 0 {
		return 0, 0, fmt.Errorf("RPC accept_stat %d", st)
	}
	status = r.u32()
	if status != nfs4OK || r.err != nil {
		return status, 0, r.err
	}
	r.skipOpaque() // tag
	n := int(r.u32())
	for i := 0; i < n && r.err == nil; i++ {
		op, st := r.u32(), r.u32()
		if st != 0 {
			return st, 0, nil
		}
		switch op {
		case 10:
			r.skipOpaque() // the file handle
		case 26:
			r.u32()
			r.u32() // cookie verifier
			for r.u32() == 1 && r.err == nil {
				r.u32()
				r.u32()        // cookie
				r.skipOpaque() // name
				r.u32()        // bitmap length (0)
				r.skipOpaque() // attributes
				entries++
			}
		}
	}
	return status, entries, r.err
}

func readRecord(c net.Conn) ([]byte, error) {
	var out []byte
	for {
		var h [4]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return nil, err
		}
		n := binary.BigEndian.Uint32(h[:])
		if n&0x7fffffff > 1<<20 {
			return nil, fmt.Errorf("RPC fragment of %d bytes", n&0x7fffffff)
		}
		frag := make([]byte, n&0x7fffffff)
		if _, err := io.ReadFull(c, frag); err != nil {
			return nil, err
		}
		out = append(out, frag...)
		if n&0x80000000 != 0 {
			return out, nil
		}
	}
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) u32() uint32 {
	if len(r.b) < 4 {
		r.err = io.ErrUnexpectedEOF
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) skipOpaque() {
	n := int(r.u32())
	n = (n + 3) &^ 3
	if r.err != nil || n > len(r.b) {
		r.err = io.ErrUnexpectedEOF
		return
	}
	r.b = r.b[n:]
}
