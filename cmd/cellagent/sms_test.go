package main

import (
	"strings"
	"testing"
	"time"

	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
	"cellagent/modem/sms"
)

func TestSMSSend(t *testing.T) {
	// A SIM of some other operator, with its own service centre.
	m := bg96emutest.Start(t, bg96emu.Config{BootDelay: 200 * time.Millisecond, RegisterDelay: 100 * time.Millisecond, SMSC: "+491710760000"})
	// By default the SIM's SMSC carries the message: the PDU names none.
	o := cli(t, "", "sms", "send", "--port", m.PTY(), "--to", "5432145", "--text", "hello")
	if o.code != 0 || o.stdout != "1 part, GSM 7-bit\nservice centre +491710760000 (the SIM's)\nmessage reference: 0\n" {
		t.Fatalf("code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
	sent := m.SentMessages()
	if len(sent) != 1 || sent[0].To != "5432145" || sent[0].Text != "hello" {
		t.Fatalf("sent %+v", sent)
	}
	if got := sms.Decode(sent[0].PDU).SMSC; got != "" || sent[0].SMSC != "+491710760000" {
		t.Errorf("SMSC field %q, carried by %q; want the SIM's", got, sent[0].SMSC)
	}
	// --smsc overrides it, written into every part.
	long := strings.Repeat("emoji 🛰️ ", 40)
	o = cli(t, "", "sms", "send", "--port", m.PTY(), "--to", "+491701234567", "--text", long, "--smsc", "+882 285 00001 6860", "--report")
	if o.code != 0 || !strings.HasPrefix(o.stdout, "6 parts, UCS-2\nservice centre +882 285 00001 6860 (--smsc)\nmessage references: 1, 2, 3, 4, 5, 6\n") {
		t.Fatalf("code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
	if last := m.SentMessages()[6]; sms.Decode(last.PDU).SMSC != "+882285000016860" || last.SMSC != "+882285000016860" {
		t.Errorf("--smsc part: %+v", last)
	}
	o = cli(t, "", "sms", "send", "--port", m.PTY(), "--to", "5432145", "--hex", "00ff1a")
	if o.code != 0 || !strings.HasPrefix(o.stdout, "1 part, 8-bit data\n") {
		t.Fatalf("code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
	if s := m.SentMessages()[7]; s.TPDU.DCS != 4 || string(s.TPDU.UD) != "\x00\xff\x1a" {
		t.Errorf("8-bit sent %+v", s.TPDU)
	}
}

func TestSMSListAndDelete(t *testing.T) {
	m := startSim(t)
	o := cli(t, "", "sms", "list", "--port", m.PTY())
	if o.code != 0 || o.stdout != "no messages stored\n" {
		t.Fatalf("empty list: code %d stdout %q stderr %q", o.code, o.stdout, o.stderr)
	}
	long := strings.Repeat("A long message, joined again. ", 8)
	for _, f := range []func() error{
		func() error { return m.DeliverText("+491701234567", "hi there €") },
		func() error { return m.DeliverText("+491701234567", long) },
		func() error { return m.DeliverParts("+491709999999", long, 2) },
		func() error {
			return m.DeliverRawPDU("07912143658709F1040B918100551512F20000111010214365000BE8329BFD4697D9EC37")
		},
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	o = cli(t, "", "sms", "list", "--port", m.PTY())
	if o.code != 0 {
		t.Fatalf("code %d stderr %q", o.code, o.stderr)
	}
	for _, want := range []string{"hi there €", long, "from   +491701234567", "INCOMPLETE: missing 1", "error  sms: SMS-DELIVER", "pdu    07912143658709F1", "index  1, 2 (REC UNREAD)"} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("list lacks %q:\n%s", want, o.stdout)
		}
	}
	o = cli(t, "", "sms", "list", "--port", m.PTY(), "--json")
	var list smsListJSON
	if err := strictJSON(o.stdout, &list); err != nil || len(list.Messages) != 4 {
		t.Fatalf("json: %v\n%s", err, o.stdout)
	}
	items := list.Messages
	if items[0].Text != "hi there €" || items[0].Stat != "REC READ" || items[1].Text != long || len(items[1].Indexes) != 2 {
		t.Errorf("json items %+v", items[:2])
	}
	if items[3].Error == "" || len(items[3].PDUs) != 1 || len(items[2].Missing) != 1 {
		t.Errorf("json items %+v", items[2:])
	}

	o = cli(t, "", "sms", "delete", "--port", m.PTY(), "--index", "0")
	if o.code != 0 || o.stdout != "deleted message 0\n" || len(m.Stored()) != 4 {
		t.Fatalf("delete: code %d stdout %q stderr %q stored %d", o.code, o.stdout, o.stderr, len(m.Stored()))
	}
	o = cli(t, "", "sms", "delete", "--port", m.PTY(), "--index", "99")
	if o.code != 1 || !strings.Contains(o.stderr, "+CMS ERROR 321 (invalid memory index)") {
		t.Errorf("bad index: code %d stderr %q", o.code, o.stderr)
	}
	o = cli(t, "", "sms", "delete", "--port", m.PTY(), "--all")
	if o.code != 0 || len(m.Stored()) != 0 {
		t.Fatalf("delete --all: code %d stderr %q stored %d", o.code, o.stderr, len(m.Stored()))
	}
}

func TestSMSErrors(t *testing.T) {
	m := startSim(t)
	p := m.PTY()
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"sms"}, 2, "missing subcommand"},
		{[]string{"sms", "fly"}, 2, `unknown subcommand "fly"`},
		{[]string{"sms", "send", "--port", p, "--text", "x"}, 2, "--to is required"},
		{[]string{"sms", "send", "--port", p, "--to", "5432145"}, 2, "exactly one of --text and --hex"},
		{[]string{"sms", "send", "--port", p, "--to", "+49abc", "--text", "x"}, 2, `invalid number "+49abc"`},
		{[]string{"sms", "send", "--port", p, "--to", "5432145", "--text", "x", "--smsc", "smsc"}, 2, `SMSC: invalid number "smsc"`},
		{[]string{"sms", "send", "--port", p, "--to", "5432145", "--hex", "xyz"}, 2, "--hex"},
		{[]string{"sms", "send", "--port", p, "--to", "5432145", "--text", strings.Repeat("x", 153*255+1)}, 2, "text too long: 39016 characters need 256 parts in GSM 7-bit, at most 255"},
		{[]string{"sms", "delete", "--port", p}, 2, "exactly one of --index and --all"},
		{[]string{"sms", "delete", "--port", p, "--index", "1", "--all"}, 2, "exactly one of --index and --all"},
		{[]string{"sms", "list"}, 2, "--port is required"},
		{[]string{"sms", "list", "--port", "/dev/nonexistent-ttyX"}, 1, "no such port"},
	}
	for _, c := range cases {
		o := cli(t, "", c.args...)
		if o.code != c.code || !strings.Contains(o.stderr, c.want) {
			t.Errorf("%v: code %d stderr %q, want %d and %q", c.args, o.code, o.stderr, c.code, c.want)
		}
	}
	if err := m.CMSErrorOn("+CMGS", 330); err != nil {
		t.Fatal(err)
	}
	o := cli(t, "", "sms", "send", "--port", p, "--to", "5432145", "--text", "x", "--smsc", "")
	if o.code != 1 || !strings.Contains(o.stderr, "part 1 of 1 not sent (permanent): +CMS ERROR 330 (SMSC address unknown): the modem has no service centre number") {
		t.Errorf("330: code %d stderr %q", o.code, o.stderr)
	}
	if err := m.SetRegistration(bg96emu.AllDomains, bg96emu.Registration{Stat: bg96emu.Searching}); err != nil {
		t.Fatal(err)
	}
	m.ClearFaults()
	o = cli(t, "", "sms", "send", "--port", p, "--to", "5432145", "--text", "x")
	if o.code != 1 || !strings.Contains(o.stderr, "(transient): +CMS ERROR 331 (no network service)") {
		t.Errorf("331: code %d stderr %q", o.code, o.stderr)
	}
	for _, sub := range []string{"send", "list", "delete"} {
		o := cli(t, "", "sms", sub, "--help")
		if o.code != 0 || !strings.Contains(o.stdout, "Usage: cellagent sms "+sub) {
			t.Errorf("sms %s --help: code %d stdout %q", sub, o.code, o.stdout)
		}
	}
}
