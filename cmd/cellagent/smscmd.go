package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"cellagent/agent/jsonout"
	"cellagent/modem/at"
	"cellagent/modem/bg96"
	"cellagent/modem/port"
	"cellagent/modem/sms"
	"cellagent/transport/localapi"
)

const smsUsage = `Usage: cellagent sms <send|list|delete> [--port PORT] [flags]

Send, list and delete SMS in PDU mode. While the agent runs, send and list
go through it (its local API) instead of the port, which it holds.

  send     send a text or 8-bit data; prints the parts and message references
  list     show the messages stored on the SIM, or the agent's inbox
  delete   delete one stored message or all of them (port only)

Run 'cellagent sms <subcommand> --help' for its flags.
`

func runSMS(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, smsUsage)
		return usageError{errors.New("missing subcommand: send, list or delete")}
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(e.stdout, smsUsage)
		return nil
	case "send":
		return runSMSSend(ctx, e, args[1:])
	case "list":
		return runSMSList(ctx, e, args[1:])
	case "delete":
		return runSMSDelete(ctx, e, args[1:])
	}
	return usageError{fmt.Errorf("unknown subcommand %q: want send, list or delete", args[0])}
}

// smsSession opens the port and puts the modem into the state the SMS
// commands need: PDU mode and verbose errors, so a failure reads as
// "+CMS ERROR 330 (SMSC address unknown)" rather than a bare number.
func smsSession(ctx context.Context, e *env, pf *portFlags) (*at.AT, error) {
	a, err := pf.open(e, at.WithInitialFence())
	if err != nil {
		return nil, err
	}
	if err := pf.ready(ctx, e, a); err != nil {
		a.Close()
		return nil, err
	}
	if _, err := a.Command(ctx, "AT", at.WithTimeout(2*time.Second)); err != nil {
		a.Close()
		return nil, explain(pf.path, err)
	}
	// Optional: without it errors are numeric or a bare ERROR, still
	// classified, just less readable.
	_, _ = a.Command(ctx, "AT+CMEE=2")
	if _, err := a.Command(ctx, "AT+CMGF=0"); err != nil {
		a.Close()
		return nil, fmt.Errorf("switching the modem to PDU mode: %w", explain(pf.path, err))
	}
	return a, nil
}

func runSMSSend(ctx context.Context, e *env, args []string) error {
	var pf portFlags
	var af agentFlags
	var to, text, hexData, smsc string
	var report bool
	fs := newFlags(e, "sms send", "[--port PORT] --to NUMBER (--text TEXT | --hex HEX) [flags]",
		`Send an SMS. Text goes in the GSM 7-bit alphabet when every character is in
it or its extension table (€ [ ] { } ^ ~ \ |), else in UCS-2; text that does
not fit one SMS is split into concatenated parts (at most 255). --hex sends
the bytes as 8-bit data (DCS 4). The number of parts and the alphabet are
printed before sending, the message reference of each part after.

The service centre (SMSC) is by default the SIM's own (AT+CSCA), which
suits any operator; it is printed before sending. --smsc writes another
into each PDU, e.g. Business Smart Connect's `+bg96.OperatorSMSC+`.

While the agent runs (no --port, or the port is the agent's), the message
goes into the agent's durable outbox: the id it was queued under is
printed once it is on disk, and with --wait given the outcome once it is
known, waiting up to that long
(the message references, or why it failed; with --report the delivery
report). The agent uses its own SMSC setting and rate limits.

Examples:
  cellagent sms send --to 5432145 --text "hello" --wait 2m
  cellagent sms send --port /tmp/ttyBG96 --to 5432145 --text "hello"
  cellagent sms send --port /dev/ttyUSB2 --to +491701234567 --hex 0102FF --report
  cellagent sms send --port /dev/ttyUSB2 --to 5432145 --text "hi" --smsc "+882 285 00001 6860"`)
	pf.register(fs)
	fs.StringVar(&to, "to", "", "destination: +<country code><number>, or a national number or short code such as 5432145 (required)")
	fs.StringVar(&text, "text", "", "message text")
	fs.StringVar(&hexData, "hex", "", "8-bit data in hex instead of text")
	fs.StringVar(&smsc, "smsc", "", "service centre written into each PDU (default: the SIM's own, AT+CSCA)")
	fs.BoolVar(&report, "report", false, "ask the network for a delivery status report (arrives later as +CDS)")
	af.register(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if to == "" {
		return usageError{errors.New("--to is required")}
	}
	if (text == "") == (hexData == "") {
		return usageError{errors.New("give exactly one of --text and --hex")}
	}
	o := sms.Options{SMSC: smsc, StatusReport: report}
	var pdus []sms.PDU
	var err error
	alpha := sms.Data8
	var data []byte
	if hexData != "" {
		var herr error
		data, herr = hex.DecodeString(strings.TrimSpace(hexData))
		if herr != nil {
			return usageError{fmt.Errorf("--hex: %w", herr)}
		}
		pdus, err = sms.EncodeData(to, data, o)
	} else {
		var n int
		n, alpha = sms.Parts(text)
		if n > sms.MaxParts {
			return usageError{fmt.Errorf("text too long: %d characters need %d parts in %s, at most %d are possible", len([]rune(text)), n, alpha, sms.MaxParts)}
		}
		pdus, err = sms.EncodeText(to, text, o)
	}
	if err != nil {
		if errors.Is(err, sms.ErrInvalidNumber) || errors.Is(err, sms.ErrTooLong) {
			return usageError{err}
		}
		return err
	}
	var a *at.AT
	if pf.path != "" {
		a, err = smsSession(ctx, e, &pf)
	}
	if pf.path == "" || errors.Is(err, port.ErrBusy) {
		c, cerr := viaAgent(&af, pf.path != "", err)
		if cerr != nil {
			return cerr
		}
		fmt.Fprintf(e.stdout, "%s, %s\n", plural(len(pdus), "part"), alpha)
		req := localapi.SMSRequest{To: to, Text: text, Report: report, IdempotencyKey: newKey()}
		if hexData != "" {
			req.Text, req.Data = "", data
		}
		// --wait, given, also waits that long for the outcome.
		var wait time.Duration
		if fs.Changed("wait") {
			wait = pf.wait
		}
		return sendViaAgent(ctx, e, c, req, wait)
	}
	if err != nil {
		return err
	}
	defer a.Close()
	fmt.Fprintf(e.stdout, "%s, %s\n", plural(len(pdus), "part"), alpha)
	if smsc != "" {
		fmt.Fprintf(e.stdout, "service centre %s (--smsc)\n", smsc)
	} else {
		sim, err := bg96.New(a).SMSC(ctx)
		switch {
		case err != nil:
			return fmt.Errorf("reading the SIM's service centre: %w", explain(pf.path, err))
		case sim == "":
			return errors.New("the SIM names no service centre (AT+CSCA is empty): give one with --smsc")
		}
		fmt.Fprintf(e.stdout, "service centre %s (the SIM's)\n", sim)
	}
	mrs, err := sms.Send(ctx, a, pdus...)
	if len(mrs) > 0 {
		fmt.Fprintf(e.stdout, "message reference%s: %s\n", map[bool]string{true: "s"}[len(mrs) > 1], joinInts(mrs))
	}
	var se *sms.SendError
	if errors.As(err, &se) {
		return fmt.Errorf("part %d of %d not sent (%s): %s", se.Part, se.Parts, se.Class, sms.Meaning(explain(pf.path, se.Err)))
	}
	return err
}

func runSMSList(ctx context.Context, e *env, args []string) error {
	var pf portFlags
	var af agentFlags
	var asJSON bool
	var after uint64
	fs := newFlags(e, "sms list", "[--port PORT] [--json]",
		`List every message stored on the SIM (AT+CMGL=4), decoded. The parts of
a concatenated message are joined; one with parts missing is shown as
incomplete with the parts it lacks; a PDU that does not decode is shown raw
with the reason. Unread messages become read; nothing is deleted.

While the agent runs, it takes messages off the SIM as they arrive: the
list is then its inbox (the messages it received, newest 5000 records of
its feed), each with the feed's seq; --after SEQ lists only later ones.

Examples:
  cellagent sms list --port /tmp/ttyBG96
  cellagent sms list --port /dev/ttyUSB2 --json`)
	pf.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print JSON instead of text")
	fs.Uint64Var(&after, "after", 0, "through the agent: only messages after this feed seq")
	af.register(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	var a *at.AT
	var err error
	if pf.path != "" {
		a, err = smsSession(ctx, e, &pf)
	}
	if pf.path == "" || errors.Is(err, port.ErrBusy) {
		c, cerr := viaAgent(&af, pf.path != "", err)
		if cerr != nil {
			return cerr
		}
		items, err := agentInbox(ctx, c, after)
		if err != nil {
			return err
		}
		return showItems(e, items, asJSON)
	}
	if err != nil {
		return err
	}
	defer a.Close()
	entries, err := sms.List(ctx, a, sms.All)
	if err != nil && entries == nil {
		return explain(pf.path, err)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "warning: odd lines in the modem's answer: %v\n", err)
	}
	return showItems(e, listItems(entries), asJSON)
}

func showItems(e *env, items []listItem, asJSON bool) error {
	if asJSON {
		out := smsListJSON{V: jsonout.Version, Messages: make([]listItem, 0, len(items))}
		for _, it := range items {
			if it.SCTS != nil {
				// The sender's zone is in the text view; JSON has one form.
				t := jsonout.UTC(*it.SCTS)
				it.SCTS = &t
			}
			out.Messages = append(out.Messages, it)
		}
		return jsonout.Write(e.stdout, out)
	}
	printItems(e.stdout, items)
	return nil
}

// agentInbox reads the agent's inbox after the cursor, every page.
func agentInbox(ctx context.Context, c *localapi.Client, after uint64) ([]listItem, error) {
	items := []listItem{}
	for {
		actx, cancel := apiCall(ctx)
		in, err := c.Inbox(actx, after, 0)
		cancel()
		if err != nil {
			return nil, err
		}
		for _, ev := range in.Messages {
			m := ev.SMS
			if m == nil {
				continue
			}
			it := listItem{Seq: ev.Seq, Stat: "received by the agent", ID: m.ID, Kind: sms.Deliver, From: m.From,
				Alphabet: alphabetOf(m.Alphabet), Text: m.Text, Parts: m.Parts, Missing: m.Missing, Error: m.Error, PDUs: m.PDUs}
			if !m.SCTS.IsZero() {
				scts := m.SCTS
				it.SCTS = &scts
			}
			if m.Data != nil {
				it.DataHex = strings.ToUpper(hex.EncodeToString(m.Data))
			}
			items = append(items, it)
		}
		if len(in.Messages) == 0 || in.Next == after {
			return items, nil
		}
		after = in.Next
	}
}

// listItem is one message as the list shows it: a single PDU or the joined
// parts of a concatenated message, with the SIM slots it occupies.
type listItem struct {
	Indexes  []int        `json:"indexes"`
	Seq      uint64       `json:"seq,omitempty"` // the agent's feed, when listed through it
	Stat     string       `json:"stat"`
	ID       string       `json:"id"`
	Kind     sms.Kind     `json:"kind"`
	From     string       `json:"from,omitempty"`
	To       string       `json:"to,omitempty"`
	SCTS     *time.Time   `json:"scts,omitempty"`
	Alphabet sms.Alphabet `json:"alphabet"`
	Text     string       `json:"text,omitempty"`
	DataHex  string       `json:"data_hex,omitempty"`
	Parts    int          `json:"parts"`
	Missing  []int        `json:"missing,omitempty"`
	Report   *sms.Report  `json:"report,omitempty"`
	Error    string       `json:"error,omitempty"`
	PDUs     []string     `json:"pdus"`
}

func listItems(entries []sms.Entry) []listItem {
	byID := map[string][]sms.Entry{}
	// The listing is a snapshot: no part arrives while we look, so the
	// timeout is irrelevant and Flush gives what is incomplete.
	asm := sms.NewAssembler(0, nil)
	var out []sms.Assembled
	for _, en := range entries {
		byID[en.ID] = append(byID[en.ID], en)
		if m, ok := asm.Add(en.Message, time.Time{}); ok {
			out = append(out, m)
		}
	}
	out = append(out, asm.Flush()...)
	items := make([]listItem, 0, len(out))
	for _, m := range out {
		first := m.Parts[0]
		it := listItem{ID: m.ID, Kind: first.Kind, From: m.From, To: first.To, Alphabet: m.Alphabet,
			Text: m.Text, Parts: m.Total, Missing: m.Missing, Report: first.Report}
		if !m.SCTS.IsZero() {
			it.SCTS = &m.SCTS
		}
		if m.Data != nil {
			it.DataHex = strings.ToUpper(hex.EncodeToString(m.Data))
		}
		if m.Err != nil {
			it.Error = m.Err.Error()
		}
		stats := map[string]bool{}
		for _, p := range m.Parts {
			it.PDUs = append(it.PDUs, p.PDU)
			for _, en := range byID[p.ID] {
				it.Indexes = append(it.Indexes, en.Index)
				stats[en.Stat.String()] = true
			}
		}
		names := make([]string, 0, len(stats))
		for s := range stats {
			names = append(names, s)
		}
		sort.Strings(names)
		it.Stat = strings.Join(names, "+")
		items = append(items, it)
	}
	// In SIM order, which is arrival order on a store that is emptied.
	sort.SliceStable(items, func(i, j int) bool { return firstIndex(items[i]) < firstIndex(items[j]) })
	return items
}

func firstIndex(it listItem) int {
	if len(it.Indexes) == 0 {
		return -1
	}
	return slices.Min(it.Indexes)
}

func printItems(w io.Writer, items []listItem) {
	if len(items) == 0 {
		fmt.Fprintln(w, "no messages stored")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, it := range items {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		if it.Seq > 0 {
			fmt.Fprintf(tw, "seq\t%d (%s)\n", it.Seq, it.Stat)
		} else {
			fmt.Fprintf(tw, "index\t%s (%s)\n", joinInts(it.Indexes), it.Stat)
		}
		switch {
		case it.Report != nil:
			fmt.Fprintf(tw, "status report\tmessage reference %d to %s: status %d (%s)\n", it.Report.MR, it.Report.Recipient, it.Report.Status, reportText(it.Report))
		case it.To != "":
			fmt.Fprintf(tw, "to\t%s\n", it.To)
		case it.From != "":
			fmt.Fprintf(tw, "from\t%s\n", it.From)
		}
		if it.SCTS != nil {
			fmt.Fprintf(tw, "time\t%s\n", it.SCTS.Format("2006-01-02 15:04:05 -07:00"))
		}
		if it.Parts > 1 {
			p := fmt.Sprintf("%d, %s", it.Parts, it.Alphabet)
			if len(it.Missing) > 0 {
				p += fmt.Sprintf(", INCOMPLETE: missing %s", joinInts(it.Missing))
			}
			fmt.Fprintf(tw, "parts\t%s\n", p)
		}
		switch {
		case it.Error != "":
			fmt.Fprintf(tw, "error\t%s\n", it.Error)
			for _, p := range it.PDUs {
				fmt.Fprintf(tw, "pdu\t%s\n", p)
			}
		case it.DataHex != "":
			fmt.Fprintf(tw, "data\t%s\n", it.DataHex)
		case it.Report == nil:
			fmt.Fprintf(tw, "text\t%s\n", strings.ReplaceAll(it.Text, "\n", "\n\t"))
		}
	}
	tw.Flush()
}

func reportText(r *sms.Report) string {
	switch {
	case r.Delivered():
		return "delivered"
	case r.Final():
		return "failed"
	}
	return "SMSC still trying"
}

func runSMSDelete(ctx context.Context, e *env, args []string) error {
	var pf portFlags
	var index int
	var all bool
	fs := newFlags(e, "sms delete", "--port PORT (--index I | --all)",
		`Delete one stored message by its SIM index (as 'sms list' shows it), or
every stored message, read or not.

Examples:
  cellagent sms delete --port /tmp/ttyBG96 --index 3
  cellagent sms delete --port /dev/ttyUSB2 --all`)
	pf.register(fs)
	fs.IntVar(&index, "index", -1, "SIM index to delete")
	fs.BoolVar(&all, "all", false, "delete every stored message")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if all == fs.Changed("index") {
		return usageError{errors.New("give exactly one of --index and --all")}
	}
	if !all && index < 0 {
		return usageError{fmt.Errorf("--index %d: must be 0 or more", index)}
	}
	if pf.path == "" {
		return usageError{errors.New("--port is required")}
	}
	a, err := smsSession(ctx, e, &pf)
	if err != nil {
		return err
	}
	defer a.Close()
	if all {
		err = sms.DeleteAll(ctx, a)
	} else {
		err = sms.Delete(ctx, a, index)
	}
	if err != nil {
		return errors.New(sms.Meaning(explain(pf.path, err)))
	}
	if all {
		fmt.Fprintln(e.stdout, "deleted all stored messages")
	} else {
		fmt.Fprintf(e.stdout, "deleted message %d\n", index)
	}
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

// smsListJSON is `sms list --json` (SCHEMA.md, command-line JSON).
type smsListJSON struct {
	V        int        `json:"v"`
	Messages []listItem `json:"messages"`
}
