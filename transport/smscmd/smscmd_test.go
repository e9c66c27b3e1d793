package smscmd

import (
	"errors"
	"strings"
	"testing"
)

var (
	key   = []byte(strings.Repeat("k", 32))
	other = []byte(strings.Repeat("o", 32))
)

const iccid = "89882280666012345678"

func TestSignVerifyRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Kind: Command, Counter: 1, Verb: "status"},
		{Kind: Command, Counter: 1733350000123, Verb: "recover", Args: []string{"reattach"}},
		{Kind: Command, Counter: 18446744073709551615, Verb: "mqtt-reconnect"},
		{Kind: Reply, Counter: 7, Verb: "ping", Args: []string{"ok"}},
		{Kind: Reply, Counter: 7, Verb: "status", Args: []string{"ok", "reg=home", "rssi=-71", "q=3/0/1"}},
	} {
		text, err := Sign(key, iccid, m)
		if err != nil {
			t.Fatalf("Sign(%+v): %v", m, err)
		}
		if len(text) > MaxLen {
			t.Errorf("%q: %d characters", text, len(text))
		}
		got, err := Verify(key, iccid, text)
		if err != nil {
			t.Fatalf("Verify(%q): %v", text, err)
		}
		if got.Kind != m.Kind || got.Counter != m.Counter || got.Verb != m.Verb || strings.Join(got.Args, " ") != strings.Join(m.Args, " ") {
			t.Errorf("Verify(%q) = %+v, want %+v", text, got, m)
		}
		if !LooksLike(text) {
			t.Errorf("LooksLike(%q) = false", text)
		}
	}
}

func TestVerifyRefuses(t *testing.T) {
	good, err := Sign(key, iccid, Message{Kind: Command, Counter: 42, Verb: "recover", Args: []string{"reattach"}})
	if err != nil {
		t.Fatal(err)
	}
	body := good[:len(good)-2*MACLen-1]
	flip := good[:len(good)-1] + "0"
	if good[len(good)-1] == '0' {
		flip = good[:len(good)-1] + "1"
	}
	for _, c := range []struct {
		name, iccid, text string
		key               []byte
		want              error
	}{
		{"wrong key", iccid, good, other, ErrBadMAC},
		{"other SIM", "89882280666012345679", good, key, ErrBadMAC},
		{"flipped MAC bit", iccid, flip, key, ErrBadMAC},
		{"changed argument", iccid, strings.Replace(good, "reattach", "cfun-reset", 1), key, ErrBadMAC},
		{"changed counter", iccid, strings.Replace(good, "C42", "C43", 1), key, ErrBadMAC},
		{"command passed as reply", iccid, strings.Replace(good, "C42", "R42", 1), key, ErrBadMAC},
		{"truncated", iccid, good[:len(good)-5], key, ErrMalformed},
		{"MAC cut off", iccid, body, key, ErrMalformed},
		{"oversized", iccid, good + strings.Repeat(" x", 80), key, ErrTooLong},
		{"plain SMS", iccid, "hello world", key, ErrNotCommand},
		{"tag only", iccid, "#CA1", key, ErrMalformed},
		{"other version", iccid, "#CA12 C1 status 000000000000000000000000", key, ErrMalformed},
		{"double space", iccid, strings.Replace(good, " recover", "  recover", 1), key, ErrMalformed},
		{"leading zero counter", iccid, strings.Replace(good, "C42", "C042", 1), key, ErrMalformed},
		{"zero counter", iccid, "#CA1 C0 status 000000000000000000000000", key, ErrMalformed},
		{"counter overflow", iccid, "#CA1 C18446744073709551616 status 000000000000000000000000", key, ErrMalformed},
		{"unknown verb", iccid, "#CA1 C5 reboot-now 000000000000000000000000", key, ErrMalformed},
		{"missing argument", iccid, "#CA1 C5 recover 000000000000000000000000", key, ErrMalformed},
		{"extra argument", iccid, "#CA1 C5 status now 000000000000000000000000", key, ErrMalformed},
		{"upper-case MAC", iccid, strings.ToUpper(good[:len(good)-24]) + strings.ToUpper(good[len(good)-24:]), key, ErrMalformed},
		{"bad character", iccid, "#CA1 C5 recover re@ttach 000000000000000000000000", key, ErrMalformed},
		{"short key", iccid, good, key[:16], ErrKey},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Verify(c.key, c.iccid, c.text)
			if !errors.Is(err, c.want) {
				t.Errorf("Verify(%q) = %v, want %v", c.text, err, c.want)
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		m    Message
		key  []byte
		want error
	}{
		{"unknown verb", Message{Kind: Command, Counter: 1, Verb: "shell"}, key, ErrMalformed},
		{"no counter", Message{Kind: Command, Verb: "ping"}, key, ErrMalformed},
		{"bad kind", Message{Kind: 'X', Counter: 1, Verb: "ping"}, key, ErrMalformed},
		{"empty reply", Message{Kind: Reply, Counter: 1, Verb: "ping"}, key, ErrMalformed},
		{"space in argument", Message{Kind: Command, Counter: 1, Verb: "recover", Args: []string{"re attach"}}, key, ErrMalformed},
		{"too long", Message{Kind: Reply, Counter: 1, Verb: "status", Args: strings.Fields(strings.Repeat("abcdefghij ", 14))}, key, ErrTooLong},
		{"long key", Message{Kind: Command, Counter: 1, Verb: "ping"}, make([]byte, 65), ErrKey},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Sign(c.key, iccid, c.m); !errors.Is(err, c.want) {
				t.Errorf("Sign(%+v) = %v, want %v", c.m, err, c.want)
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{strings.Repeat("ab", 32), true},
		{" " + strings.Repeat("AB", 64) + "\n", true},
		{strings.Repeat("ab", 31), false},
		{strings.Repeat("ab", 65), false},
		{strings.Repeat("zz", 32), false},
		{"", false},
	} {
		_, err := ParseKey(c.in)
		if (err == nil) != c.ok {
			t.Errorf("ParseKey(%q) = %v, want ok %v", c.in, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrKey) {
			t.Errorf("ParseKey(%q) = %v, not ErrKey", c.in, err)
		}
	}
}

// The worst-case command still fits one SMS: the largest counter, the
// longest verb and a 40-character argument.
func TestLongestCommandFits(t *testing.T) {
	m := Message{Kind: Command, Counter: ^uint64(0), Verb: "recover", Args: []string{strings.Repeat("x", 40)}}
	text, err := Sign(key, iccid, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(text) > MaxLen {
		t.Fatalf("%d characters", len(text))
	}
}

// FuzzVerify checks that no text crashes the parser, that whatever
// verifies re-signs to exactly itself (one encoding per message, so no
// malleability), and that the MAC is over the whole text.
func FuzzVerify(f *testing.F) {
	for _, m := range []Message{
		{Kind: Command, Counter: 1, Verb: "status"},
		{Kind: Command, Counter: 99, Verb: "recover", Args: []string{"reattach"}},
		{Kind: Reply, Counter: 99, Verb: "recover", Args: []string{"ok", "queued"}},
	} {
		text, err := Sign(key, iccid, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(text)
	}
	f.Add("#CA1")
	f.Add("hello")
	f.Fuzz(func(t *testing.T, text string) {
		m, err := Verify(key, iccid, text)
		if _, _, _, perr := parse(text); perr != nil && err == nil {
			t.Fatalf("Verify accepted what parse refused: %q", text)
		}
		if err != nil {
			return
		}
		again, err := Sign(key, iccid, m)
		if err != nil {
			t.Fatalf("verified %q does not re-sign: %v", text, err)
		}
		if again != text {
			t.Fatalf("verified %q re-signs as %q", text, again)
		}
	})
}
