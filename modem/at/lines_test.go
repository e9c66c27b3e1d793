package at

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func split(chunks ...string) []string {
	var s splitter
	var out []string
	for _, c := range chunks {
		s.feed([]byte(c), func(t token) {
			if t.kind == tokPrompt {
				out = append(out, ">")
				return
			}
			out = append(out, t.line)
		})
	}
	return out
}

func TestSplitter(t *testing.T) {
	cases := []struct {
		in   []string
		want string
	}{
		{[]string{"\r\nOK\r\n"}, "OK"},
		{[]string{"AT+CSQ\r\r\n+CSQ: 1,2\r\n\r\nOK\r\n"}, "AT+CSQ|+CSQ: 1,2|OK"},
		{[]string{"\r", "\nO", "K", "\r\n"}, "OK"},
		{[]string{"\r\n> "}, ">"},
		{[]string{"\r\n>"}, ">"},
		{[]string{"\r\n>", " "}, ">"},
		{[]string{">blatest \r\n+CMS ERROR:AT+CGATT?\r\n"}, ">|blatest|+CMS ERROR:AT+CGATT?"},
		{[]string{"00AB\x1a\r\n+CMGS: 3\r\n"}, "00AB|+CMGS: 3"},
		{[]string{"a > b\r\n"}, "a > b"},
		{[]string{"\t +CSQ: 28,0 \r\n"}, "+CSQ: 28,0"},
		{[]string{"partial"}, ""},
	}
	for _, c := range cases {
		if got := strings.Join(split(c.in...), "|"); got != c.want {
			t.Errorf("split(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSplitterBoundsLines(t *testing.T) {
	long := strings.Repeat("x", MaxLineLength+1)
	got := split(long, "\r\nOK\r\n", strings.Repeat("y", MaxLineLength), "\r\n")
	if len(got) != 2 || got[0] != "OK" || len(got[1]) != MaxLineLength {
		t.Errorf("got %d lines, first %.10q", len(got), got)
	}
}

func TestDerivePrefixes(t *testing.T) {
	cases := map[string]string{
		"AT+CSQ":        "+CSQ:",
		"at+creg?":      "+CREG:",
		"AT+CMGS=23":    "+CMGS:",
		`AT+QCFG="x",1`: "+QCFG:",
		"AT+COPS=?":     "+COPS:",
		"ATI":           "",
		"ATE0":          "",
		"AT":            "",
		"AT^SYSINFO":    "^SYSINFO:",
	}
	for cmd, want := range cases {
		if got := strings.Join(derivePrefixes(cmd), ","); got != want {
			t.Errorf("derivePrefixes(%q) = %q, want %q", cmd, got, want)
		}
	}
}

func TestTimeoutFor(t *testing.T) {
	c := defaultConfig()
	for _, o := range []Option{
		WithCommandTimeout("+COPS", 180*time.Second),
		WithCommandTimeout("+cops?", 5*time.Second),
		WithCommandTimeout("+CMGS", 120*time.Second),
		WithCommandTimeout("+CFUN", 15*time.Second),
	} {
		o(&c)
	}
	// The longest matching key wins, whatever the case of command or key.
	cases := map[string]time.Duration{
		"AT+COPS=0":   180 * time.Second,
		"AT+COPS?":    5 * time.Second,
		"at+cmgs=23":  120 * time.Second,
		"AT+CFUN=1,1": 15 * time.Second,
		"AT+CSQ":      5 * time.Second,
	}
	for cmd, want := range cases {
		if got := c.timeoutFor(cmd); got != want {
			t.Errorf("timeoutFor(%q) = %s, want %s", cmd, got, want)
		}
	}
}

// FuzzSplitter checks that no input breaks the framing invariants, and that
// where the port happens to cut the stream does not change the lines.
func FuzzSplitter(f *testing.F) {
	for _, s := range []string{
		"AT+CSQ\r\r\n+CSQ: 18,99\r\n\r\nOK\r\n",
		"\r\n> ",
		">blatest \r\n+CMS ERROR:AT+CGATT?\r\n",
		"\r\n+CMT: ,24\r\n07911326040000F0\r\n",
		"\x00\xff\r\r\n\n\n>",
	} {
		f.Add(s, uint8(3))
	}
	f.Fuzz(func(t *testing.T, in string, cut uint8) {
		whole := split(in)
		for _, l := range whole {
			if l == "" || len(l) > MaxLineLength*3 || strings.ContainsAny(l, "\r\n") {
				t.Fatalf("bad line %q", l)
			}
		}
		n := int(cut) % (len(in) + 1)
		if got := split(in[:n], in[n:]); strings.Join(got, "\x00") != strings.Join(whole, "\x00") {
			// A '>' at a cut is still a prompt and a following space is
			// still eaten, so the result must not depend on the cut.
			t.Fatalf("cut at %d: %q, whole: %q", n, got, whole)
		}
	})
}

// FuzzFinalResult checks the final-result parser never panics and that
// every error it returns prints something.
func FuzzFinalResult(f *testing.F) {
	for _, s := range []string{"OK", "ERROR", "+CME ERROR: 10", "+CMS ERROR: memory full", "CME Error: unknown", "+CME ERROR:", "NO CARRIER", "+CMS ERROR: -1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		ok, err := finalResult(line)
		if !ok && err != nil {
			t.Fatalf("%q: error without final", line)
		}
		if err != nil && err.Error() == "" {
			t.Fatalf("%q: empty error text", line)
		}
	})
}

// pipePort feeds fuzzed modem output to an engine and swallows its writes.
type pipePort struct {
	r *io.PipeReader
}

func (p pipePort) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p pipePort) Write(b []byte) (int, error) { return len(b), nil }
func (p pipePort) Close() error                { return p.r.Close() }

// FuzzEngine throws arbitrary modem output at a running command: whatever
// arrives, the command ends (answer, error or timeout) and nothing panics.
func FuzzEngine(f *testing.F) {
	for _, s := range []string{
		"\r\n+CSQ: 18,99\r\n\r\nOK\r\n",
		"\r\n+CMT: ,3\r\n\r\nOK\r\n",
		"\r\n+CMTI: \"SM\",1\r\n+CSQ: 1,1\r\nERROR\r\n",
		"\r\n> \r\n+CME ERROR: 3\r\n",
		"RDY\r\nAPP RDY\r\n+CSQ: 1\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, out string) {
		pr, pw := io.Pipe()
		a := New(pipePort{pr}, WithUnhandled(func([]string) {}))
		a.AddIndication("+CMTI", func([]string) {})
		defer a.Close()
		go func() {
			_, _ = pw.Write([]byte(out))
			_, _ = pw.Write([]byte("\r\nOK\r\n"))
		}()
		_, err := a.Command(context.Background(), "AT+CSQ", WithTimeout(200*time.Millisecond))
		if err != nil && !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrClosed) && !isFinalErr(err) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

func isFinalErr(err error) bool {
	var cme *CMEError
	var cms *CMSError
	var res *ResultError
	return errors.Is(err, ErrError) || errors.As(err, &cme) || errors.As(err, &cms) || errors.As(err, &res)
}

// BenchmarkSplitter feeds a typical answer with a URC in it through the
// line framing, the engine's per-byte hot path.
func BenchmarkSplitter(b *testing.B) {
	chunk := []byte("AT+QCSQ\r\r\n+QCSQ: \"CAT-M1\",-65,-95,160,-11\r\n\r\n+CMTI: \"SM\",3\r\n\r\nOK\r\n")
	var s splitter
	n := 0
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.feed(chunk, func(token) { n++ })
	}
	if n == 0 {
		b.Fatal("no tokens")
	}
}

// BenchmarkRoute measures classifying lines against a running command,
// with handlers registered as the agent will have them.
func BenchmarkRoute(b *testing.B) {
	a := &AT{cfg: defaultConfig(), urcs: make(chan urc, 1)}
	for _, p := range []string{"+CMTI", "+CEREG", "+CREG", "+CGREG", "RDY", "+QIND"} {
		a.AddIndication(p, func([]string) {})
	}
	lines := []string{"AT+QCSQ", `+QCSQ: "CAT-M1",-65,-95,160,-11`, "OK"}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r := &request{cmd: "AT+QCSQ", echo: "AT+QCSQ", prefixes: []string{"+QCSQ:"}, done: make(chan error, 1)}
		a.cur = r
		for _, l := range lines {
			a.route(token{kind: tokLine, line: l})
		}
		if err := <-r.done; err != nil {
			b.Fatal(err)
		}
	}
}
