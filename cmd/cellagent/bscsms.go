package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"cellagent/transport/bsc"
	"cellagent/transport/bsc/receiver"
	"cellagent/transport/secret"
	"cellagent/transport/smscmd"
)

func runBSCSMS(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "send" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(e.stdout, "Usage: cellagent bsc sms send --iccid I (--text T | --command C) [flags]")
			return nil
		}
		return usageError{errors.New("bsc sms: want the subcommand send")}
	}
	var (
		af                     apiFlags
		text, command, keyFile string
		from                   string
		asJSON                 bool
	)
	fs := newFlags(e, "bsc sms send", "--iccid ICCID (--text T | --command C) [flags]",
		`Send an MT SMS to the SIM through the platform's API (POST
/v1/sims/{iccid}/sms). With --command the text is a signed command for the
agent's [sms_commands] (status, ping, mqtt-reconnect, recover <step>),
signed with the device's key from --key-file; its counter is the time in
microseconds, so each command is fresh and a replay is refused. The reply
comes back as an MO SMS: see 'cellagent bsc receive'.

--from is the sender the SIM sees; it must be in the device's
sms_commands.allow_from.

Examples:
  cellagent bsc sms send --iccid 89882280666012345678 --text "hello"
  cellagent bsc sms send --iccid 89882280666012345678 --from +4915112345678 \
      --command status --key-file /etc/cellagent-fleet/89882280666012345678.key
  cellagent bsc sms send --iccid 89882280666012345678 --from +4915112345678 \
      --command "recover reattach" --key-file dev.key`)
	af.register(fs)
	fs.StringVar(&text, "text", "", "plain text to send")
	fs.StringVar(&command, "command", "", `a command: "status", "ping", "mqtt-reconnect" or "recover STEP"`)
	fs.StringVar(&keyFile, "key-file", "", "the device's command key (hex, mode 0600); needed with --command")
	fs.StringVar(&from, "from", "", "source_address: the sender number the SIM sees")
	fs.BoolVar(&asJSON, "json", false, "print the platform's answer as JSON")
	if err := parseNoArgs(fs, args[1:]); err != nil {
		return err
	}
	if (text == "") == (command == "") {
		return usageError{errors.New("give exactly one of --text and --command")}
	}
	if command != "" && keyFile == "" {
		return usageError{errors.New("--command needs --key-file (the device's key)")}
	}
	s, cancel, err := af.session(ctx, e)
	if err != nil {
		return err
	}
	defer cancel()
	ctx = s.ctx
	var sent smscmd.Message
	payload := text
	if command != "" {
		raw, err := secret.Read(keyFile)
		if err != nil {
			return fmt.Errorf("--key-file: %w", err)
		}
		key, err := smscmd.ParseKey(raw)
		if err != nil {
			return fmt.Errorf("--key-file %s: %w", keyFile, err)
		}
		f := strings.Fields(command)
		if len(f) == 0 {
			return usageError{errors.New("--command is empty")}
		}
		sent = smscmd.Message{Kind: smscmd.Command, Counter: uint64(time.Now().UnixMicro()), Verb: f[0], Args: f[1:]}
		if payload, err = smscmd.Sign(key, s.iccid, sent); err != nil {
			return usageError{fmt.Errorf("--command %q: %w", command, err)}
		}
	}
	a, err := s.client.SendSMS(ctx, s.iccid, bsc.MTSMS{Payload: payload, SourceAddress: from})
	if err != nil {
		return s.explain(err)
	}
	if asJSON {
		out := struct {
			V       int    `json:"v"`
			ICCID   string `json:"iccid"`
			ID      string `json:"id"`
			Status  string `json:"status"`
			Command string `json:"command,omitempty"`
			Counter uint64 `json:"counter,omitempty"`
			Sent    string `json:"sent"`
		}{1, s.iccid, string(a.ID), a.Status, command, sent.Counter, time.Now().UTC().Format(time.RFC3339Nano)}
		return json.NewEncoder(e.stdout).Encode(out)
	}
	fmt.Fprintf(e.stdout, "SMS %s to SIM %s accepted by the platform (status %s)", a.ID, s.iccid, a.Status)
	if command != "" {
		fmt.Fprintf(e.stdout, ": command %q, counter %d", command, sent.Counter)
	}
	fmt.Fprintln(e.stdout)
	return nil
}

func runBSCReceive(ctx context.Context, e *env, args []string) error {
	var (
		listen, storePath, secretFile, header, user string
		certFile, keyFile, keyDir                   string
		asJSON, allowPlain                          bool
	)
	fs := newFlags(e, "bsc receive", "--listen ADDR --secret-file F [flags]",
		`Receive what the platform's SMS forwarder sends to the application: MO SMS
(POST, multi-part messages reassembled from multi_part_info, dcs 0 and 4)
and delivery reports for MT SMS (PATCH). Each is committed to --store
(fsync) before the 2xx, and de-duplicated by its id, so the platform's
re-transmissions store nothing twice and a crash loses nothing. Replies to
signed commands are verified with the SIM's key (--key-dir/<ICCID>.key)
and shown decoded. Records stored but not yet shown (a crash between the
two) are shown at the next start.

Callers authenticate with a shared secret in a header (--auth-header), or
with basic auth (--basic-user); the secret comes from --secret-file. Plain
HTTP is served only on loopback unless --allow-plaintext; give --tls-cert
and --tls-key for HTTPS.

Output: a table, or with --json one JSON object per line ("v": 1; see
README, "The application side of the BSC interface").

Examples:
  cellagent bsc receive --listen 127.0.0.1:9000 --secret-file /etc/cellagent-fleet/fwd.secret \
      --key-dir /etc/cellagent-fleet --store /var/lib/cellagent-fleet/receive.db
  cellagent bsc receive --listen :9443 --tls-cert c.pem --tls-key k.pem --basic-user bsc \
      --secret-file fwd.secret --json`)
	fs.StringVar(&listen, "listen", "", "address to listen on, e.g. 127.0.0.1:9000")
	fs.StringVar(&storePath, "store", "bsc-receive.db", "the durable store of received forwards")
	fs.StringVar(&secretFile, "secret-file", "", "the shared secret or basic-auth password (mode 0600)")
	fs.StringVar(&header, "auth-header", "X-Cellagent-Token", "header carrying the shared secret")
	fs.StringVar(&user, "basic-user", "", "use basic auth with this user instead of the header")
	fs.StringVar(&certFile, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	fs.StringVar(&keyFile, "tls-key", "", "the certificate's key (PEM)")
	fs.StringVar(&keyDir, "key-dir", "", "directory of the devices' command keys, one <ICCID>.key each")
	fs.BoolVar(&asJSON, "json", false, "print one JSON object per line")
	fs.BoolVar(&allowPlain, "allow-plaintext", false, "serve plain HTTP on a non-loopback address")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if listen == "" || secretFile == "" {
		return usageError{errors.New("--listen and --secret-file are required")}
	}
	if (certFile == "") != (keyFile == "") {
		return usageError{errors.New("--tls-cert and --tls-key go together")}
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return usageError{fmt.Errorf("--listen %q: %w", listen, err)}
	}
	if certFile == "" && !allowPlain && !bsc.IsLoopback(host) {
		return usageError{fmt.Errorf("--listen %s: plain HTTP would carry the secret and every SMS in clear; give --tls-cert/--tls-key or --allow-plaintext", listen)}
	}
	sec, err := secret.Read(secretFile)
	if err != nil {
		return fmt.Errorf("--secret-file: %w", err)
	}
	st, err := receiver.Open(storePath)
	if err != nil {
		return err
	}
	defer st.Close()
	log := logger(e.stderr, false)
	kick := make(chan struct{}, 1)
	h := &receiver.Handler{Store: st, Auth: receiver.Auth{Header: header, User: user, Secret: sec}, Log: log,
		Stored: func() {
			select {
			case kick <- struct{}{}:
			default:
			}
		}}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
	errc := make(chan error, 1)
	go func() {
		if certFile != "" {
			errc <- srv.ServeTLS(ln, certFile, keyFile)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	scheme := "http"
	if certFile != "" {
		scheme = "https"
	}
	fmt.Fprintf(e.stderr, "receiving forwards at %s://%s\n", scheme, ln.Addr())
	keys := dirKeys(keyDir)
	show := func() error {
		for {
			recs, err := st.Unshown(64)
			if err != nil || len(recs) == 0 {
				return err
			}
			for _, r := range recs {
				printRecord(e.stdout, receiver.Decorate(r, keys), asJSON)
			}
			if err := st.MarkShown(recs[len(recs)-1].Seq); err != nil {
				return err
			}
		}
	}
	if !asJSON {
		fmt.Fprintln(e.stdout, "RECEIVED              ICCID                 KIND             FROM             DETAIL")
	}
	for {
		if err := show(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			return show()
		case err := <-errc:
			return fmt.Errorf("serving %s: %w", listen, err)
		case <-kick:
		}
	}
}

// dirKeys reads a SIM's key from dir/<ICCID>.key when a reply is shown.
func dirKeys(dir string) receiver.Keys {
	if dir == "" {
		return nil
	}
	return func(iccid string) ([]byte, error) {
		if bsc.ValidateICCID(iccid) != nil {
			return nil, errors.New("not an ICCID")
		}
		raw, err := secret.Read(filepath.Join(dir, iccid+".key"))
		if err != nil {
			return nil, err
		}
		return smscmd.ParseKey(raw)
	}
}

func printRecord(w io.Writer, r receiver.Record, asJSON bool) {
	if asJSON {
		_ = json.NewEncoder(w).Encode(r)
		return
	}
	var detail string
	switch {
	case r.Kind == receiver.KindDeliveryReport:
		detail = fmt.Sprintf("MT SMS %s %s at %s", r.ID, r.Status, r.FinalDate)
	case r.Reply != nil:
		res := "ok"
		if !r.Reply.OK {
			res = "FAILED"
		}
		detail = fmt.Sprintf("verified reply to %s (counter %d): %s %s", r.Reply.Command, r.Reply.Counter, res, strings.Join(r.Reply.Fields, " "))
	case r.Kind == receiver.KindReply:
		detail = "UNVERIFIED reply: " + r.ReplyError
	case r.DataHex != "":
		detail = "data " + r.DataHex
	default:
		detail = fmt.Sprintf("%q", r.Text)
	}
	if r.Parts > 1 {
		detail += fmt.Sprintf(" (%d parts)", r.Parts)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Received.Format("2006-01-02 15:04:05"), r.ICCID, r.Kind, orDash(r.From), detail)
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
