package power

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// maxQMPLine bounds one QMP message.
const maxQMPLine = 1 << 20

// QMP drives a QEMU guest through its QEMU Machine Protocol socket
// (-qmp unix:PATH,server=on,wait=off). One connection per operation, so a
// QEMU restart needs no reconnect logic.
type QMP struct {
	Socket string
	// OffCmd is what Off sends: system_powerdown (ACPI, the guest decides),
	// stop (freeze the VCPUs) or quit (end QEMU).
	OffCmd string
	log    *slog.Logger
}

func newQMP(o *options, log *slog.Logger) (*QMP, error) {
	s, err := o.required("socket")
	if err != nil {
		return nil, err
	}
	off := map[string]string{"powerdown": "system_powerdown", "stop": "stop", "quit": "quit"}
	v := o.get("off", "powerdown")
	cmd, ok := off[v]
	if !ok {
		return nil, o.errorf("off", "%q is not powerdown, stop or quit", v)
	}
	return &QMP{Socket: s, OffCmd: cmd, log: log}, nil
}

// On resumes a paused guest (QEMU started with -S, or stopped), and resets
// one that has shut down (-no-shutdown keeps QEMU alive for that).
func (q *QMP) On(ctx context.Context) error {
	st, raw, err := q.status(ctx, "on")
	if err != nil {
		return err
	}
	switch {
	case st == StateOn:
		return nil
	case raw == "shutdown" || raw == "guest-panicked":
		if _, err := q.exec(ctx, "on", "system_reset"); err != nil {
			return err
		}
	}
	_, err = q.exec(ctx, "on", "cont")
	return err
}

// Off powers the guest off. A guest that is already off counts as done:
// QEMU exits when its guest powers itself off (as at a clean return), so
// nothing listening on the socket means the machine is off.
func (q *QMP) Off(ctx context.Context) error {
	_, err := q.exec(ctx, "off", q.OffCmd)
	if err != nil && q.gone(err) {
		q.log.Info("qmp: no QEMU on the socket any more: already off", "socket", q.Socket)
		return nil
	}
	return err
}

func (q *QMP) Reset(ctx context.Context) error {
	_, err := q.exec(ctx, "reset", "system_reset")
	return err
}

func (q *QMP) Status(ctx context.Context) (State, error) {
	st, _, err := q.status(ctx, "status")
	if err != nil && q.gone(err) {
		return StateOff, nil
	}
	return st, err
}

// gone reports whether err says no QEMU listens on the socket any more: the
// socket refuses connections or has been removed from a directory that
// still exists. A missing directory is a configuration error instead.
func (q *QMP) gone(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	if errors.Is(err, fs.ErrNotExist) {
		_, derr := os.Stat(filepath.Dir(q.Socket))
		return derr == nil
	}
	return false
}

func (q *QMP) status(ctx context.Context, op string) (State, string, error) {
	ret, err := q.exec(ctx, op, "query-status")
	if err != nil {
		return StateUnknown, "", err
	}
	var s struct {
		Running bool   `json:"running"`
		Status  string `json:"status"`
	}
	if err := json.Unmarshal(ret, &s); err != nil {
		return StateUnknown, "", q.errorf(op, "query-status: bad answer: %v", err)
	}
	switch {
	case s.Running:
		return StateOn, s.Status, nil
	case s.Status == "shutdown":
		return StateOff, s.Status, nil
	case s.Status == "paused" || s.Status == "prelaunch" || s.Status == "suspended":
		return StatePaused, s.Status, nil
	}
	return StateUnknown, s.Status, nil
}

// qmpMsg is any message QEMU sends: greeting, return, error or event.
type qmpMsg struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class, Desc string
	} `json:"error"`
	Event string `json:"event"`
}

// exec runs one command after the capabilities handshake and returns its
// "return" value.
func (q *QMP) exec(ctx context.Context, op, cmd string) (json.RawMessage, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", q.Socket)
	if err != nil {
		return nil, &Error{Driver: "qmp", Op: op, Option: "socket", Err: err}
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	r := bufio.NewReaderSize(c, 64<<10)
	if m, err := q.read(r); err != nil || m.QMP == nil {
		return nil, q.errorf(op, "no QMP greeting: %v", err)
	}
	if _, err := q.call(c, r, "qmp_capabilities"); err != nil {
		return nil, q.errorf(op, "qmp_capabilities: %v", err)
	}
	q.log.Info("power", "driver", "qmp", "socket", q.Socket, "op", op, "command", cmd)
	ret, err := q.call(c, r, cmd)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, q.errorf(op, "%s: %v", cmd, err)
	}
	return ret, nil
}

func (q *QMP) call(c net.Conn, r *bufio.Reader, cmd string) (json.RawMessage, error) {
	b, _ := json.Marshal(map[string]string{"execute": cmd})
	if _, err := c.Write(append(b, '\n')); err != nil {
		return nil, err
	}
	for {
		m, err := q.read(r)
		if err != nil {
			return nil, err
		}
		switch {
		case m.Event != "":
			continue // asynchronous events may come before the answer
		case m.Error != nil:
			return nil, fmt.Errorf("%s: %s", m.Error.Class, m.Error.Desc)
		case m.Return != nil:
			return m.Return, nil
		}
		return nil, fmt.Errorf("message is neither return, error nor event")
	}
}

func (q *QMP) read(r *bufio.Reader) (*qmpMsg, error) {
	var line []byte
	for {
		part, isPrefix, err := r.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, part...)
		if len(line) > maxQMPLine {
			return nil, fmt.Errorf("message longer than %d bytes", maxQMPLine)
		}
		if !isPrefix {
			break
		}
	}
	var m qmpMsg
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, fmt.Errorf("bad JSON %q: %w", firstLine(string(line)), err)
	}
	return &m, nil
}

func (q *QMP) errorf(op, format string, a ...any) error {
	return &Error{Driver: "qmp", Op: op, Err: fmt.Errorf("%s: "+format, append([]any{q.Socket}, a...)...)}
}
