package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
)

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

// journalHandler prefixes each line with its syslog priority as "<N>",
// which journald's stream reader takes as the line's priority
// (SyslogLevelPrefix=, on by default; sd-daemon(3)), so that
// `journalctl -p warning` finds warnings. The journal stamps lines itself,
// so the time is left out.
type journalHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	buf   *bytes.Buffer // the inner handler's output, one record at a time
	inner slog.Handler
}

func newJournalHandler(w io.Writer, level slog.Leveler) *journalHandler {
	buf := new(bytes.Buffer)
	inner := slog.NewTextHandler(buf, &slog.HandlerOptions{Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}})
	return &journalHandler{mu: new(sync.Mutex), w: w, buf: buf, inner: inner}
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
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	fmt.Fprintf(h.buf, "<%d>", priority(r.Level))
	if err := h.inner.Handle(ctx, r); err != nil {
		return err
	}
	_, err := h.w.Write(h.buf.Bytes())
	return err
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{mu: h.mu, w: h.w, buf: h.buf, inner: h.inner.WithAttrs(as)}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{mu: h.mu, w: h.w, buf: h.buf, inner: h.inner.WithGroup(name)}
}
