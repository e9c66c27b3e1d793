package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// journalSocketPath is where journald reads its native protocol
// (systemd-journald.service(8)).
const journalSocketPath = "/run/systemd/journal/socket"

// journalStream says whether w is the stream systemd connected to the
// journal: JOURNAL_STREAM holds "<device>:<inode>" of it (systemd.exec(5)),
// and only when our stderr is that very file do its lines reach journald
// (a redirect in a unit's shell wrapper would send them elsewhere).
func journalStream(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	var dev, ino uint64
	if _, err := fmt.Sscanf(os.Getenv("JOURNAL_STREAM"), "%d:%d", &dev, &ino); err != nil {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && st.Ino == ino
}

// journalHandler sends each record to journald in its native protocol
// ("Native Journal Protocol" in systemd's documentation): the message, its
// priority, the caller and every attribute as a field of its own, so
// `journalctl -p warning` and `journalctl PORT=/dev/ttyUSB2` both work.
// When the socket cannot be reached, or a datagram cannot be sent, the
// record goes to w as a line prefixed with its syslog priority as "<N>",
// which journald's stream reader takes as the line's priority
// (SyslogLevelPrefix=, on by default; sd-daemon(3)): a record is never
// lost for want of the socket. The journal stamps entries itself, so the
// time is left out.
type journalHandler struct {
	mu   *sync.Mutex
	w    io.Writer
	conn *net.UnixConn // nil: "<N>" lines only
	addr *net.UnixAddr // journald's socket
	buf  *bytes.Buffer // the inner handlers' output, one record at a time
	// line renders the "<N>" line; text renders the attributes that
	// follow the message in MESSAGE, so that journalctl's default output
	// shows them as the plain text does.
	line, text slog.Handler
	fields     []byte // WithAttrs' attributes, encoded
	prefix     string // WithGroup's groups, each followed by "_"
}

// newJournalHandler logs to journald's native socket at socket when it
// is reachable, else to w as "<N>" lines.
func newJournalHandler(w io.Writer, level slog.Leveler, socket string) *journalHandler {
	buf := new(bytes.Buffer)
	drop := func(keys ...string) func([]string, slog.Attr) slog.Attr {
		return func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 {
				for _, k := range keys {
					if a.Key == k {
						return slog.Attr{}
					}
				}
			}
			return a
		}
	}
	h := &journalHandler{mu: new(sync.Mutex), w: w, buf: buf,
		line: slog.NewTextHandler(buf, &slog.HandlerOptions{Level: level, ReplaceAttr: drop(slog.TimeKey)}),
		text: slog.NewTextHandler(buf, &slog.HandlerOptions{Level: level, ReplaceAttr: drop(slog.TimeKey, slog.LevelKey, slog.MessageKey)}),
	}
	addr := &net.UnixAddr{Name: socket, Net: "unixgram"}
	c, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return h
	}
	c.Close()
	// Unconnected, so a socket journald binds anew is still reached, and
	// because Go sends a memfd on a datagram socket only with an address.
	if h.conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram"}); err == nil {
		h.addr = addr
	}
	return h
}

// priority maps a level to syslog's (RFC 5424 §6.2.1): debug 7, info 6,
// warning 4, error 3.
func priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	}
	return 7
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.line.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn != nil {
		d, err := h.datagram(ctx, r)
		if err != nil {
			return err
		}
		if h.send(d) == nil {
			return nil
		}
	}
	h.buf.Reset()
	fmt.Fprintf(h.buf, "<%d>", priority(r.Level))
	if err := h.line.Handle(ctx, r); err != nil {
		return err
	}
	_, err := h.w.Write(h.buf.Bytes())
	return err
}

// datagram encodes r as one journal entry.
func (h *journalHandler) datagram(ctx context.Context, r slog.Record) ([]byte, error) {
	h.buf.Reset()
	if err := h.text.Handle(ctx, r); err != nil {
		return nil, err
	}
	msg := r.Message
	if attrs := bytes.TrimSuffix(h.buf.Bytes(), []byte("\n")); len(attrs) > 0 {
		msg += " " + string(attrs)
	}
	d := appendJournalField(nil, "MESSAGE", msg)
	d = appendJournalField(d, "PRIORITY", strconv.Itoa(priority(r.Level)))
	d = appendJournalField(d, "SYSLOG_IDENTIFIER", "cellagent")
	if r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		d = appendJournalField(d, "CODE_FILE", f.File)
		d = appendJournalField(d, "CODE_LINE", strconv.Itoa(f.Line))
		d = appendJournalField(d, "CODE_FUNC", f.Function)
	}
	d = append(d, h.fields...)
	r.Attrs(func(a slog.Attr) bool {
		d = appendJournalAttr(d, h.prefix, a)
		return true
	})
	return d, nil
}

// send writes one datagram; one too large for the socket goes in a
// sealed memfd passed with SCM_RIGHTS, as sd_journal_sendv(3) does.
func (h *journalHandler) send(d []byte) error {
	_, _, err := h.conn.WriteMsgUnix(d, nil, h.addr)
	if !errors.Is(err, syscall.EMSGSIZE) && !errors.Is(err, syscall.ENOBUFS) {
		return err
	}
	fd, err := unix.MemfdCreate("cellagent-journal", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return fmt.Errorf("memfd for a large journal entry: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:cellagent-journal")
	defer f.Close()
	if _, err := f.Write(d); err != nil {
		return fmt.Errorf("memfd for a large journal entry: %w", err)
	}
	// journald takes a memfd from an unprivileged sender only sealed.
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		return fmt.Errorf("sealing the memfd of a large journal entry: %w", err)
	}
	_, _, err = h.conn.WriteMsgUnix(nil, unix.UnixRights(int(f.Fd())), h.addr)
	return err
}

// appendJournalField appends name=value, or the binary form (name, a
// newline, the value's length as 64-bit little-endian, the value) when
// the value holds a newline.
func appendJournalField(d []byte, name, value string) []byte {
	if !strings.Contains(value, "\n") {
		d = append(d, name...)
		d = append(d, '=')
		d = append(d, value...)
		return append(d, '\n')
	}
	d = append(d, name...)
	d = append(d, '\n')
	d = binary.LittleEndian.AppendUint64(d, uint64(len(value)))
	d = append(d, value...)
	return append(d, '\n')
}

// ourFields are the fields the handler sets itself; an attribute of the
// same name is renamed rather than given a second value.
var ourFields = map[string]bool{"MESSAGE": true, "PRIORITY": true, "SYSLOG_IDENTIFIER": true,
	"CODE_FILE": true, "CODE_LINE": true, "CODE_FUNC": true}

// appendJournalAttr appends a as fields, a group's members under its
// name joined with "_", as the text handler joins them with ".".
func appendJournalAttr(d []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "_"
		}
		for _, m := range a.Value.Group() {
			d = appendJournalAttr(d, prefix, m)
		}
		return d
	}
	if a.Key == "" {
		return d
	}
	name := journalFieldName(prefix + a.Key)
	if name == "" {
		return d
	}
	if ourFields[name] {
		name = "ATTR_" + name
	}
	return appendJournalField(d, name, a.Value.String())
}

// journalFieldName makes s a name journald accepts: upper-case letters,
// digits and "_", not starting with "_" (those are the journal's trusted
// fields) or a digit, at most 64 characters. "" when nothing is left.
func journalFieldName(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		default:
			c = '_'
		}
		b = append(b, c)
	}
	name := strings.TrimLeft(string(b), "_0123456789")
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.line, c.text = h.line.WithAttrs(as), h.text.WithAttrs(as)
	c.fields = append([]byte(nil), h.fields...)
	for _, a := range as {
		c.fields = appendJournalAttr(c.fields, h.prefix, a)
	}
	return &c
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.line, c.text = h.line.WithGroup(name), h.text.WithGroup(name)
	c.prefix = h.prefix + name + "_"
	return &c
}
