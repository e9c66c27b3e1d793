package bg96emu

import (
	"bufio"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// The data port: AT answers OK, ATD*99***1# CONNECT while registered,
// and a coverage loss drops the call with NO CARRIER; the escape
// sequence goes back to command mode.
func TestDataPortDialAndCarrierLoss(t *testing.T) {
	m := New(Config{BootDelay: 100 * time.Millisecond, RegisterDelay: 50 * time.Millisecond})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.StartDataPort(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(m.DataPath(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				lines <- l
			}
		}
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case l := <-lines:
			if !strings.HasPrefix(l, want) {
				t.Fatalf("got %q, want %q", l, want)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("no %q", want)
		}
	}
	send := func(s string) {
		t.Helper()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	send("AT\r")
	expect("OK")
	send("ATD*99***1#\r")
	expect("CONNECT")
	send("~\x7d\x23\xc0\x21~") // PPP bytes are swallowed in data mode
	deadline := time.Now().Add(3 * time.Second)
	for _, _, n := m.DataStats(); n != 6; _, _, n = m.DataStats() {
		if time.Now().After(deadline) {
			t.Fatalf("%d data bytes taken", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := m.SetRegistration(AllDomains, Registration{Stat: Searching}); err != nil {
		t.Fatal(err)
	}
	expect("NO CARRIER")
	if dials, online, n := m.DataStats(); dials != 1 || online || n != 6 {
		t.Errorf("stats: %d dials, online %v, %d data bytes", dials, online, n)
	}
	// Without coverage the dial fails at once, with the cause in AT+CEER.
	send("ATD*99***1#\r")
	expect("NO CARRIER")
	m.mu.Lock()
	cause := m.st.ceer
	m.mu.Unlock()
	if cause != "No network service" {
		t.Errorf("cause %q", cause)
	}
	if err := m.SetRegistration(AllDomains, Registration{Stat: Home, Area: "1A2B", Cell: "01A2B3C", AcT: ActEMTC}); err != nil {
		t.Fatal(err)
	}
	send("ATD*99***1#\r")
	expect("CONNECT")
	send("+++")
	expect("OK")
	send("ATH\r")
	expect("OK")
}
