package initrd

import (
	"fmt"
	"io/fs"
)

// newc header layout: a 6-byte magic and 13 fields of 8 hex digits.
const (
	headerLen  = 110
	magicNewc  = "070701" // SVR4 "new ASCII", what the kernel and we write
	magicCRC   = "070702" // the same with a body checksum; read only
	trailer    = "TRAILER!!!"
	maxNameLen = 4096 // longest accepted name, without its NUL
	maxLinkLen = 4096 // longest accepted symlink target
)

// Linux file type bits as stored in the newc mode field.
const (
	sIFMT   = 0o170000
	sIFSOCK = 0o140000
	sIFLNK  = 0o120000
	sIFREG  = 0o100000
	sIFBLK  = 0o060000
	sIFDIR  = 0o040000
	sIFCHR  = 0o020000
	sIFIFO  = 0o010000
	sISUID  = 0o4000
	sISGID  = 0o2000
	sISVTX  = 0o1000
)

// Entry is one cpio record as read from an archive.
type Entry struct {
	Index     int   // entry number in its segment, counting from 0
	Offset    int64 // offset of the header in the segment's (decompressed) data
	Magic     string
	Ino       uint32
	Mode      uint32 // Linux st_mode: type and permission bits
	UID, GID  uint32
	NLink     uint32
	MTime     uint32
	Size      int64
	DevMajor  uint32
	DevMinor  uint32
	RdevMajor uint32
	RdevMinor uint32
	Check     uint32
	Name      string
	Link      string // symlink target, read from the body
}

// FileMode converts the Linux mode to an fs.FileMode.
func (e *Entry) FileMode() fs.FileMode { return linuxToFileMode(e.Mode) }

// IsTrailer reports whether e is the TRAILER!!! entry ending an archive.
func (e *Entry) IsTrailer() bool { return e.Name == trailer }

func linuxToFileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & sIFMT {
	case sIFDIR:
		mode |= fs.ModeDir
	case sIFLNK:
		mode |= fs.ModeSymlink
	case sIFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case sIFBLK:
		mode |= fs.ModeDevice
	case sIFIFO:
		mode |= fs.ModeNamedPipe
	case sIFSOCK:
		mode |= fs.ModeSocket
	}
	if m&sISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&sISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&sISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

func fileModeToLinux(m fs.FileMode) uint32 {
	mode := uint32(m.Perm())
	switch {
	case m&fs.ModeDir != 0:
		mode |= sIFDIR
	case m&fs.ModeSymlink != 0:
		mode |= sIFLNK
	case m&fs.ModeCharDevice != 0:
		mode |= sIFCHR
	case m&fs.ModeDevice != 0:
		mode |= sIFBLK
	case m&fs.ModeNamedPipe != 0:
		mode |= sIFIFO
	case m&fs.ModeSocket != 0:
		mode |= sIFSOCK
	default:
		mode |= sIFREG
	}
	if m&fs.ModeSetuid != 0 {
		mode |= sISUID
	}
	if m&fs.ModeSetgid != 0 {
		mode |= sISGID
	}
	if m&fs.ModeSticky != 0 {
		mode |= sISVTX
	}
	return mode
}

// fieldName names the i-th of the 13 header fields, for error messages.
func fieldName(i int) string {
	return [...]string{"ino", "mode", "uid", "gid", "nlink", "mtime", "filesize",
		"devmajor", "devminor", "rdevmajor", "rdevminor", "namesize", "check"}[i]
}

// parseHeader decodes the fixed 110-byte part of a newc header. It returns
// the namesize field separately; the name itself follows the header.
func parseHeader(h []byte, e *Entry) (nameSize uint32, err error) {
	magic := string(h[:6])
	if magic != magicNewc && magic != magicCRC {
		return 0, fmt.Errorf("bad magic %q (want %q)", printable(h[:6]), magicNewc)
	}
	e.Magic = magic
	var v [13]uint32
	for i := range v {
		v[i], err = parseHex8(h[6+8*i : 14+8*i])
		if err != nil {
			return 0, fmt.Errorf("field %s: %w", fieldName(i), err)
		}
	}
	e.Ino, e.Mode, e.UID, e.GID, e.NLink, e.MTime = v[0], v[1], v[2], v[3], v[4], v[5]
	e.Size = int64(v[6])
	e.DevMajor, e.DevMinor, e.RdevMajor, e.RdevMinor = v[7], v[8], v[9], v[10]
	e.Check = v[12]
	return v[11], nil
}

// parseHex8 parses exactly 8 hex digits; no sign, space or prefix.
func parseHex8(b []byte) (uint32, error) {
	var v uint32
	for _, c := range b {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, fmt.Errorf("%q is not 8 hex digits", printable(b))
		}
		v = v<<4 | uint32(d)
	}
	return v, nil
}

// validType checks the file type bits and what they imply for the body.
func validType(e *Entry) error {
	switch e.Mode & sIFMT {
	case sIFREG:
		return nil
	case sIFLNK:
		if e.Size == 0 || e.Size > maxLinkLen {
			return fmt.Errorf("symlink target length %d not in 1..%d", e.Size, maxLinkLen)
		}
		return nil
	case sIFDIR, sIFCHR, sIFBLK, sIFIFO, sIFSOCK:
		if e.Size != 0 {
			return fmt.Errorf("%s with non-zero size %d", typeName(e.Mode), e.Size)
		}
		return nil
	}
	if e.Name == trailer {
		return nil
	}
	return fmt.Errorf("unknown file type in mode %#o", e.Mode)
}

func typeName(mode uint32) string {
	switch mode & sIFMT {
	case sIFREG:
		return "file"
	case sIFDIR:
		return "directory"
	case sIFLNK:
		return "symlink"
	case sIFCHR:
		return "char device"
	case sIFBLK:
		return "block device"
	case sIFIFO:
		return "fifo"
	case sIFSOCK:
		return "socket"
	}
	return "unknown"
}

// printable quotes at most 16 bytes of untrusted input for an error.
func printable(b []byte) string {
	if len(b) > 16 {
		b = b[:16]
	}
	return string(b)
}

func align4(n int64) int64 { return (n + 3) &^ 3 }

// ModeString formats the mode like ls -l: a type letter and rwx bits.
func (e *Entry) ModeString() string {
	t := map[uint32]byte{sIFREG: '-', sIFDIR: 'd', sIFLNK: 'l', sIFCHR: 'c',
		sIFBLK: 'b', sIFIFO: 'p', sIFSOCK: 's'}[e.Mode&sIFMT]
	if t == 0 {
		t = '?'
	}
	b := []byte{t}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		c := byte('-')
		if e.Mode&(1<<(8-i)) != 0 {
			c = rwx[i]
		}
		b = append(b, c)
	}
	if e.Mode&sISUID != 0 {
		b[3] = "Ss"[e.Mode>>6&1]
	}
	if e.Mode&sISGID != 0 {
		b[6] = "Ss"[e.Mode>>3&1]
	}
	if e.Mode&sISVTX != 0 {
		b[9] = "Tt"[e.Mode&1]
	}
	return string(b)
}
