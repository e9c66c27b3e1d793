package atsession

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cellagent/modem/at"
	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
	"cellagent/modem/clock/clocktest"
)

type changes struct {
	mu   sync.Mutex
	up   []int
	down []error
}

func (c *changes) record(s *Session, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s != nil {
		c.up = append(c.up, s.Seq)
	} else {
		c.down = append(c.down, err)
	}
}

func (c *changes) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.up), len(c.down)
}

func startSim(t *testing.T) *bg96emu.Modem {
	t.Helper()
	m := bg96emutest.Start(t, bg96emu.Config{BootDelay: 200 * time.Millisecond, RegisterDelay: 50 * time.Millisecond})
	// A stable name, as udev gives the real modem: the pty behind it
	// changes when the simulated modem drops off the bus.
	if err := m.Link(t.TempDir() + "/ttyBG96"); err != nil {
		t.Fatal(err)
	}
	return m
}

// waitSeq waits for a session newer than after.
func waitSeq(t *testing.T, ctx context.Context, l *Keeper, after int) *Session {
	t.Helper()
	for {
		s, err := l.Wait(ctx)
		if err != nil {
			t.Fatalf("no session after %d: %v", after, err)
		}
		if s.Seq > after {
			return s
		}
		select {
		case <-l.Changed():
		case <-ctx.Done():
			t.Fatalf("no session after %d: %v", after, ctx.Err())
		}
	}
}

// The keeper brings a session up, and brings a new one up after each way a
// session can end: the port vanishing, the modem rebooting on its own,
// and a restart asked for by the supervisor.
func TestSessionSurvivesHangUpRebootAndRestart(t *testing.T) {
	m := startSim(t)
	var ch changes
	l := New(Config{Path: m.Path(), MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, OnChange: ch.record})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()

	s := waitSeq(t, ctx, l, 0)
	if s.Identity.ICCID != m.ICCID() {
		t.Errorf("ICCID %q, want %q", s.Identity.ICCID, m.ICCID())
	}
	if _, err := s.AT.Command(ctx, "AT+CSCA?"); err != nil {
		t.Errorf("session not usable: %v", err)
	}

	if err := m.HangUp(300 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if s = waitSeq(t, ctx, l, 1); s.Identity.ICCID != m.ICCID() {
		t.Errorf("ICCID after hang-up %q", s.Identity.ICCID)
	}

	// A reboot nobody asked for: RDY mid-session.
	m.Reboot()
	s = waitSeq(t, ctx, l, 2)
	if _, err := s.AT.Command(ctx, "AT"); err != nil {
		t.Errorf("session after reboot: %v", err)
	}

	l.Restart("test")
	s = waitSeq(t, ctx, l, 3)
	if s.Seq != 4 {
		t.Errorf("seq %d, want 4", s.Seq)
	}
	if up, down := ch.counts(); up != 4 || down != 3 {
		t.Errorf("changes: %d up, %d down; want 4 and 3 (one report per outage)", up, down)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
	if _, err := l.Current(); !errors.Is(err, ErrDown) {
		t.Errorf("Current after Run: %v", err)
	}
}

// The keeper publishes every phase of the session's life, in order, and
// dates them on its clock: an attempt goes through the port, the boot and
// the initialisation; a restart settles first; a stop closes.
func TestPhasesPublished(t *testing.T) {
	m := startSim(t)
	t0 := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	var seen []Snapshot
	l := New(Config{Path: m.Path(), MinBackoff: 20 * time.Millisecond, Clock: clocktest.New(t0, 0),
		OnPhase: func(s Snapshot) { mu.Lock(); seen = append(seen, s); mu.Unlock() }})
	if s := l.Snapshot(); s.Phase != Closed || !s.Since.Equal(t0) {
		t.Errorf("before Run: %+v", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	s := waitSeq(t, ctx, l, 0)
	if !s.Since.Equal(t0) {
		t.Errorf("session since %s, want the clock's %s", s.Since, t0)
	}
	if snap := l.Snapshot(); snap.Phase != Up || snap.Seq != 1 || snap.Err != nil {
		t.Errorf("up: %+v", snap)
	}
	l.Restart("test")
	waitSeq(t, ctx, l, 1)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	var phases []Phase
	for _, s := range seen {
		phases = append(phases, s.Phase)
		if !s.Since.Equal(t0) {
			t.Errorf("%s since %s, want the clock's %s", s.Phase, s.Since, t0)
		}
		if s.Phase == Settling && (!errors.Is(s.Err, at.ErrClosed) || !strings.Contains(s.Err.Error(), "session 1 ended")) {
			t.Errorf("settling after the restart: err %v", s.Err)
		}
	}
	want := []Phase{Opening, Booting, Initialising, Up, Settling, Opening, Booting, Initialising, Up, Closed}
	if !slices.Equal(phases, want) {
		t.Errorf("phases %v, want %v", phases, want)
	}
	if snap := l.Snapshot(); snap.Phase != Closed {
		t.Errorf("after Run: %+v", snap)
	}
}

// A port that cannot be opened is retried with back-off and reported once
// per outage, not once per attempt.
func TestOpenFailuresReportedOncePerOutage(t *testing.T) {
	m := startSim(t)
	var mu sync.Mutex
	fails := 0
	open := func(path string, baud int) (io.ReadWriteCloser, error) {
		mu.Lock()
		defer mu.Unlock()
		if fails < 4 {
			fails++
			return nil, errors.New("no such device")
		}
		return New(Config{}).cfg.Open(path, baud)
	}
	var ch changes
	l := New(Config{Path: m.Path(), Open: open, MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, OnChange: ch.record})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go l.Run(ctx)
	waitSeq(t, ctx, l, 0)
	if up, down := ch.counts(); up != 1 || down != 1 {
		t.Errorf("changes: %d up, %d down; want 1 and 1", up, down)
	}
}

// A modem left at the SMS prompt by a predecessor that died between
// AT+CMGS and its PDU takes every command as message text; the first
// session's fence must close the prompt, or the session never comes up.
func TestSessionAfterAbandonedSMSPrompt(t *testing.T) {
	m := startSim(t)
	raw, err := New(Config{}).cfg.Open(m.Path(), 115200)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Write([]byte("AT+CMGS=17\r")); err != nil {
		t.Fatal(err)
	}
	buf, got := make([]byte, 64), ""
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(got, "> ") {
		if time.Now().After(deadline) {
			t.Fatalf("no prompt; got %q", got)
		}
		n, err := raw.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got += string(buf[:n])
	}
	raw.Close()

	l := New(Config{Path: m.Path(), MinBackoff: 50 * time.Millisecond, ReadyTimeout: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go l.Run(ctx)
	s := waitSeq(t, ctx, l, 0)
	if _, err := s.AT.Command(ctx, "AT"); err != nil {
		t.Fatalf("session after the abandoned prompt: %v", err)
	}
	if sent := m.SentMessages(); len(sent) != 0 {
		t.Errorf("the fence sent an SMS: %+v", sent)
	}
}

// Sessions that end with the port gone leave no descriptors behind: a
// gateway whose modem re-enumerates daily must not run out of files.
func TestNoDescriptorLeakAcrossHangUps(t *testing.T) {
	m := startSim(t)
	l := New(Config{Path: m.Path(), MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go l.Run(ctx)
	waitSeq(t, ctx, l, 0)
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd here")
		}
		return len(ents)
	}
	before := fds()
	for i := 1; i <= 4; i++ {
		if err := m.HangUp(100 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		waitSeq(t, ctx, l, i)
	}
	if after := fds(); after > before+1 {
		t.Errorf("%d descriptors open after 4 hang-ups, %d before", after, before)
	}
}
