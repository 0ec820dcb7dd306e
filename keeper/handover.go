package keeper

import (
	"bufio"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"ferry/ipsec/ike"
)

// The hand-over between the supervisor (supervisor.go) and the keeper
// proper, its child, over a socket pair the child inherits as fd 3: one
// JSON line supervisor -> child at start (Handover: everything the child
// needs to go on where the last one was), then one JSON line per report
// child -> supervisor (report). The key travels only here: it lives in
// the two processes' memory, never on disk, argv, the environment or a
// log line.

// Child's file descriptors: the hand-over link, PID 1's control
// channel while the supervisor still holds it (Handover.Control), the
// root to move into (Handover.Root).
const (
	LinkFD    = 3
	ControlFD = 4
	RootFD    = 5
	// maxHandover bounds the supervisor's line: a key, a few
	// certificates, a disk list.
	maxHandover = 1 << 20
)

// Handover is what the supervisor gives each child.
type Handover struct {
	// Tunnel is the tunnel state (nil in lab mode).
	Tunnel *HandoverTunnel `json:"tunnel,omitempty"`
	// Control: fd ControlFD is PID 1's control channel (before the
	// chroot only).
	Control bool `json:"control,omitempty"`
	// Chrooted is the root an earlier child moved into; Root: fd RootFD
	// is its directory, to move into once the tunnel is up (supervisor.go).
	Chrooted string `json:"chrooted,omitempty"`
	Root     bool   `json:"root,omitempty"`
	// DisksReadOnly are the disks B marked; DisksLate those marked since
	// by any child.
	DisksReadOnly []string `json:"disks_ro,omitempty"`
	DisksLate     []string `json:"disks_late,omitempty"`
	// Restarts counts the children started after the first;
	// LastRestartReason says why the last one before this ended.
	Restarts          int       `json:"restarts"`
	LastRestartReason string    `json:"last_restart_reason,omitempty"`
	LastRestart       time.Time `json:"last_restart,omitzero"`
}

// HandoverTunnel is ike.InitiatorState with its secrets as DER.
type HandoverTunnel struct {
	State json.RawMessage `json:"state"` // vpn.json's fields
	Key   []byte          `json:"key"`   // PKCS #8
	Certs [][]byte        `json:"certs"` // leaf first: the renewed one once there is one
	CAs   [][]byte        `json:"cas"`
}

// NewHandoverTunnel packs st for the hand-over.
func NewHandoverTunnel(st *ike.InitiatorState) (*HandoverTunnel, error) {
	js, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	key, err := x509.MarshalPKCS8PrivateKey(st.Key)
	if err != nil {
		return nil, fmt.Errorf("keeper hand-over: key: %w", err)
	}
	return &HandoverTunnel{State: js, Key: key, Certs: ders(st.Certs), CAs: ders(st.CAs)}, nil
}

// InitiatorState unpacks the tunnel state.
func (h *HandoverTunnel) InitiatorState() (*ike.InitiatorState, error) {
	var st ike.InitiatorState
	if err := json.Unmarshal(h.State, &st); err != nil {
		return nil, fmt.Errorf("keeper hand-over: tunnel state: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(h.Key)
	if err != nil {
		return nil, errors.New("keeper hand-over: key: not PKCS #8") // nothing of the key in the message
	}
	var ok bool
	if st.Key, ok = k.(crypto.Signer); !ok {
		return nil, fmt.Errorf("keeper hand-over: key of type %T cannot sign", k)
	}
	if st.Certs, err = parseDERs(h.Certs); err != nil || len(st.Certs) == 0 {
		return nil, fmt.Errorf("keeper hand-over: certificates: %d, %v", len(h.Certs), err)
	}
	if st.CAs, err = parseDERs(h.CAs); err != nil {
		return nil, fmt.Errorf("keeper hand-over: CAs: %w", err)
	}
	return &st, nil
}

func ders(cs []*x509.Certificate) [][]byte {
	out := make([][]byte, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.Raw)
	}
	return out
}

func parseDERs(ds [][]byte) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(ds))
	for _, d := range ds {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// report is one line child -> supervisor; exactly one field is set.
type report struct {
	// Chroot: the child is told to move into the root; the supervisor
	// moves first and answers with a reply.
	Chroot string `json:"chroot,omitempty"`
	// Certs: a renewed certificate chain (DER, leaf first) is in use.
	Certs [][]byte `json:"certs,omitempty"`
	// Disk: the child marked this disk read-only.
	Disk string `json:"disk,omitempty"`
}

// reply answers a chroot report.
type reply struct {
	Error string `json:"error,omitempty"`
}

// Parent is the child's end of the hand-over link: it reads the Handover
// and reports what a restarted child would need. Safe for concurrent use.
type Parent struct {
	mu  sync.Mutex
	f   io.ReadWriteCloser
	r   *bufio.Reader
	log *slog.Logger
}

// OpenParent reads the hand-over from the link f (the child's fd
// LinkFD).
func OpenParent(f io.ReadWriteCloser, log *slog.Logger) (*Parent, *Handover, error) {
	p := &Parent{f: f, r: bufio.NewReaderSize(f, 64<<10), log: log}
	line, err := readBounded(p.r, maxHandover)
	if err != nil {
		return nil, nil, fmt.Errorf("keeper: reading the hand-over from the supervisor: %w", err)
	}
	var h Handover
	if err := json.Unmarshal(line, &h); err != nil {
		return nil, nil, errors.New("keeper: hand-over from the supervisor: not the expected JSON")
	}
	clear(line) // the key's bytes
	return p, &h, nil
}

// readBounded reads one line of at most n bytes.
func readBounded(r *bufio.Reader, n int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > n {
			return nil, fmt.Errorf("line over %d bytes", n)
		}
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

// Chroot has the supervisor take the root dir first and waits for it:
// once PID 1 has the child's answer, switch_root moves the root away
// from its path. A refusal is the child's error; a supervisor that is
// gone is not (the child goes on alone and says so).
func (p *Parent) Chroot(dir string) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.send(report{Chroot: dir}); err != nil {
		p.log.Error("supervisor unreachable: it stays outside the root and cannot restart the keeper there", "err", err)
		return nil
	}
	line, err := readBounded(p.r, 4096)
	if err != nil {
		p.log.Error("supervisor did not answer the chroot: it cannot restart the keeper in the root", "err", err)
		return nil
	}
	var rep reply
	if err := json.Unmarshal(line, &rep); err != nil {
		return fmt.Errorf("supervisor's chroot answer %.80q: %w", line, err)
	}
	if rep.Error != "" {
		return fmt.Errorf("supervisor: %s", rep.Error)
	}
	return nil
}

// Renewed reports a renewed certificate chain in use.
func (p *Parent) Renewed(chain []*x509.Certificate) { p.tell(report{Certs: ders(chain)}) }

// DiskMarked reports a disk marked read-only.
func (p *Parent) DiskMarked(name string) { p.tell(report{Disk: name}) }

func (p *Parent) tell(r report) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.send(r); err != nil {
		p.log.Warn("supervisor unreachable: a restarted keeper would not know this", "err", err)
	}
}

func (p *Parent) send(r report) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = p.f.Write(append(b, '\n'))
	return err
}

// Close closes the link.
func (p *Parent) Close() error { return p.f.Close() }

// OpenLinkFD is the child's inherited link, closed on exec (nothing the
// keeper might run inherits it).
func OpenLinkFD() *os.File {
	syscall.CloseOnExec(LinkFD)
	return os.NewFile(LinkFD, "keeper-supervisor")
}

// merge adds names not yet in list.
func merge(list []string, names ...string) []string {
	for _, n := range names {
		if !slices.Contains(list, n) {
			list = append(list, n)
		}
	}
	return list
}
