package bg96emu

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warthog618/sms"
	"go.bug.st/serial"
)

// fastConfig keeps the modem's delays short so tests stay quick; Baud stays
// at the default so pacing is exercised everywhere.
func fastConfig() Config {
	return Config{BootDelay: 150 * time.Millisecond, RegisterDelay: 100 * time.Millisecond, ReportDelay: 50 * time.Millisecond}
}

// host is the test's side of the serial line, opened the way the AT engine
// opens a real port.
type host struct {
	t    testing.TB
	port serial.Port
	buf  []byte
}

func startModem(t *testing.T, cfg Config) (*Modem, *host) {
	t.Helper()
	m := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m, dial(t, m.Path())
}

func dial(t testing.TB, path string) *host {
	t.Helper()
	p, err := serial.Open(path, &serial.Mode{BaudRate: 115200})
	if err != nil {
		t.Fatalf("serial.Open(%s): %v", path, err)
	}
	if err := p.SetReadTimeout(20 * time.Millisecond); err != nil {
		t.Fatalf("SetReadTimeout: %v", err)
	}
	h := &host{t: t, port: p}
	t.Cleanup(func() { _ = p.Close() })
	return h
}

func (h *host) send(s string) {
	h.t.Helper()
	if _, err := h.port.Write([]byte(s)); err != nil {
		h.t.Fatalf("write %q: %v", s, err)
	}
}

// fill reads for up to d or until the buffer holds n bytes.
func (h *host) fill(n int, d time.Duration) error {
	deadline := time.Now().Add(d)
	tmp := make([]byte, 512)
	for len(h.buf) < n && time.Now().Before(deadline) {
		k, err := h.port.Read(tmp)
		h.buf = append(h.buf, tmp[:k]...)
		if err != nil {
			return err
		}
	}
	return nil
}

// expect reads exactly len(want) bytes and compares them.
func (h *host) expect(want string) {
	h.t.Helper()
	if err := h.fill(len(want), 2*time.Second); err != nil {
		h.t.Fatalf("read: %v (have %q)", err, h.buf)
	}
	got := h.take(min(len(want), len(h.buf)))
	if got != want {
		h.t.Fatalf("got  %q\nwant %q", got, want)
	}
}

// until reads until the buffer contains s and returns everything up to and
// including it.
func (h *host) until(s string, d time.Duration) string {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for {
		if i := bytes.Index(h.buf, []byte(s)); i >= 0 {
			return h.take(i + len(s))
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no %q within %v; have %q", s, d, h.buf)
		}
		if err := h.fill(len(h.buf)+1, 50*time.Millisecond); err != nil {
			h.t.Fatalf("read: %v (have %q)", err, h.buf)
		}
	}
}

func (h *host) take(n int) string {
	s := string(h.buf[:n])
	h.buf = h.buf[n:]
	return s
}

// ignored sends s to a modem that must not answer it: it waits until the
// modem has consumed the bytes, so a slow machine cannot turn "not read
// yet" into "ignored", then checks that nothing came back.
func (h *host) ignored(m *Modem, s string) {
	h.t.Helper()
	want := m.Stats().Processed + int64(len(s))
	h.send(s)
	deadline := time.Now().Add(5 * time.Second)
	for m.Stats().Processed < want {
		if time.Now().After(deadline) {
			h.t.Fatalf("modem did not consume %q", s)
		}
		time.Sleep(time.Millisecond)
	}
	h.quiet(50 * time.Millisecond)
}

// quiet asserts that nothing arrives for d.
func (h *host) quiet(d time.Duration) {
	h.t.Helper()
	if err := h.fill(1, d); err != nil {
		h.t.Fatalf("read: %v", err)
	}
	if len(h.buf) > 0 {
		h.t.Fatalf("unexpected output %q", h.take(len(h.buf)))
	}
}

// cmd sends line with echo off and expects exactly want back.
func (h *host) cmd(line, want string) {
	h.t.Helper()
	h.send(line + "\r")
	h.expect(want)
}

func (h *host) echoOff() {
	h.t.Helper()
	h.send("ATE0\r")
	h.expect("ATE0\r\r\nOK\r\n")
}

// submitPDU builds "00"+SMS-SUBMIT hex and its TPDU length.
func submitPDU(t *testing.T, to, text string, srr bool) (string, int) {
	t.Helper()
	opts := []sms.EncoderOption{sms.To(to)}
	p, err := sms.Encode([]byte(text), opts...)
	if err != nil || len(p) != 1 {
		t.Fatalf("encode: %v (%d parts)", err, len(p))
	}
	if srr {
		p[0].FirstOctet |= 0x20
	}
	b, err := p[0].MarshalBinary()
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return "00" + strings.ToUpper(hex.EncodeToString(b)), len(b)
}

func ok(info ...string) string {
	if len(info) == 0 {
		return "\r\nOK\r\n"
	}
	return fmt.Sprintf("\r\n%s\r\n\r\nOK\r\n", strings.Join(info, "\r\n"))
}
