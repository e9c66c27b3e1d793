package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"cellagent/agent/config"
	"cellagent/agent/jsonout"
	"cellagent/transport/bsc"
	"cellagent/transport/secret"
)

const bscUsage = `Usage: cellagent bsc <quota|reset|sms|receive> [flags]

Talk to the operator's Business Smart Connect (BSC) platform. A simulator of
it for the bench is 'cellbench platform'.

  quota   show the SIM's data and SMS allowance
  reset   ask for a network-side connectivity reset (the platform only queues it)
  sms     send an MT SMS, or a signed command, to the SIM (sms send)
  receive the application endpoint for the platform's MO SMS and delivery reports

quota and reset take the base URL, the username and the password file from
the [bsc] section of the configuration file; a password is never a flag.

Run 'cellagent bsc <subcommand> --help' for its flags.
`

const defaultConfig = "/etc/cellagent/cellagent.toml"

func runBSC(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, bscUsage)
		return usageError{errors.New("missing subcommand: quota, reset, sms or receive")}
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(e.stdout, bscUsage)
		return nil
	case "quota":
		return runBSCQuota(ctx, e, args[1:])
	case "reset":
		return runBSCReset(ctx, e, args[1:])
	case "sms":
		return runBSCSMS(ctx, e, args[1:])
	case "receive":
		return runBSCReceive(ctx, e, args[1:])
	}
	return usageError{fmt.Errorf("unknown subcommand %q: want quota, reset, sms or receive", args[0])}
}

// apiFlags are shared by the subcommands that call the platform's API.
type apiFlags struct {
	config, iccid string
	verbose       bool
	timeout       time.Duration
}

// defaultAPITimeout bounds a CLI call to the platform, retries included:
// two of the client's 15 s request timeouts, not four.
const defaultAPITimeout = 30 * time.Second

func (a *apiFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&a.config, "config", "c", defaultConfig, "configuration file with the [bsc] section")
	fs.DurationVar(&a.timeout, "timeout", defaultAPITimeout, "time limit for the whole command, retries included")
	fs.StringVar(&a.iccid, "iccid", "", "the SIM's ICCID (default: iccid in the [bsc] section)")
	fs.BoolVarP(&a.verbose, "verbose", "v", false, "log every API call (the audit lines) to stderr")
}

// apiSession is a client and what error messages need to name.
type apiSession struct {
	ctx          context.Context // bounded by --timeout
	client       *bsc.Client
	iccid, user  string
	base, config string
}

// session opens the API session of one command, its context bounded by
// --timeout with a cause that explain reports; cancel releases it.
func (a *apiFlags) session(ctx context.Context, e *env) (*apiSession, context.CancelFunc, error) {
	if a.timeout <= 0 {
		return nil, nil, usageError{fmt.Errorf("--timeout %s: want a positive duration", a.timeout)}
	}
	s, err := a.open(e)
	if err != nil {
		return nil, nil, err
	}
	var cancel context.CancelFunc
	s.ctx, cancel = context.WithTimeoutCause(ctx, a.timeout, fmt.Errorf("no answer from the platform within --timeout %s", a.timeout))
	return s, cancel, nil
}

// open reads the configuration and the password file and builds a client.
// No request is made yet, so configuration mistakes come first and alone.
func (a *apiFlags) open(e *env) (*apiSession, error) {
	cfg, err := config.Load(a.config)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w (give the configuration file with --config)", err)
		}
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	b := cfg.BSC
	if b.BaseURL == "" {
		return nil, fmt.Errorf("%s: the BSC API is not configured: set base_url, username and password_file in its [bsc] section", a.config)
	}
	iccid := a.iccid
	if iccid == "" {
		iccid = b.ICCID
	}
	if iccid == "" {
		return nil, usageError{fmt.Errorf("no ICCID: give --iccid or set iccid in the [bsc] section of %s", a.config)}
	}
	if err := bsc.ValidateICCID(iccid); err != nil {
		return nil, usageError{err}
	}
	password, err := secret.Read(b.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("bsc.password_file in %s: %w", a.config, err)
	}
	client, err := bsc.New(bsc.Config{
		BaseURL: b.BaseURL, Username: b.Username, Password: password,
		CAFile: b.CAFile, ClientCert: b.ClientCert, ClientKey: b.ClientKey,
		AllowInsecureHTTP: b.AllowInsecureHTTP,
		Timeout:           b.Timeout.Duration,
		// A person at a terminal would rather hear "retry after 2m" than
		// watch a silent wait; short pauses are still absorbed.
		Retry:  bsc.RetryPolicy{MaxRetryAfter: 10 * time.Second},
		Logger: logger(e.stderr, a.verbose),
	})
	if err != nil {
		return nil, fmt.Errorf("BSC client from %s: %w", a.config, err)
	}
	return &apiSession{client: client, iccid: iccid, user: b.Username, base: b.BaseURL, config: a.config}, nil
}

// explain turns the client's typed errors into what to do about them,
// adding only what the client's own message does not already say.
func (s *apiSession) explain(err error) error {
	if cause := context.Cause(s.ctx); cause != nil && errors.Is(s.ctx.Err(), context.DeadlineExceeded) {
		return cause
	}
	var te *bsc.ThrottledError
	switch {
	case errors.As(err, &te):
		if te.RetryAfter > 0 {
			return err // the message ends in "retry after <duration>"
		}
		return fmt.Errorf("%w; retry later", err)
	case errors.Is(err, bsc.ErrUnauthorized):
		err = fmt.Errorf("access refused for user %q (bsc.username in %s): %w", s.user, s.config, err)
		if !strings.Contains(err.Error(), "portal administrator") {
			err = fmt.Errorf("%w; only portal administrators have API access", err)
		}
		return err
	case errors.Is(err, bsc.ErrNotFound):
		return fmt.Errorf("the platform knows no SIM %s in this account: check --iccid or bsc.iccid: %w", s.iccid, err)
	case errors.Is(err, bsc.ErrQuotaUnavailable):
		return fmt.Errorf("the platform gave no usable quota for SIM %s: %w", s.iccid, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("cannot reach the BSC API at %s: %w", s.base, err)
	}
	return err
}

func runBSCQuota(ctx context.Context, e *env, args []string) error {
	var af apiFlags
	var asJSON bool
	fs := newFlags(e, "bsc quota", "[--config FILE] [--iccid ICCID] [--json]",
		`Show the SIM's data and SMS allowance as the platform reports it: status,
what is left of the total, the expiry date and the data thresholds at which
the platform notifies, throttles and cuts the SIM off.

Examples:
  cellagent bsc quota
  cellagent bsc quota --config /tmp/c.toml --iccid 89882280666012345678 --json`)
	af.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print JSON instead of text")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	s, cancel, err := af.session(ctx, e)
	if err != nil {
		return err
	}
	defer cancel()
	ctx = s.ctx
	data, err := s.client.DataQuota(ctx, s.iccid)
	if err != nil {
		return s.explain(err)
	}
	smsq, err := s.client.SMSQuota(ctx, s.iccid)
	if err != nil {
		return s.explain(err)
	}
	if asJSON {
		return jsonout.Write(e.stdout, quotaJSON{V: jsonout.Version, ICCID: s.iccid, Data: quotaOf(data), SMS: quotaOf(smsq)})
	}
	printQuota(e.stdout, s.iccid, data, smsq)
	return nil
}

func printQuota(w io.Writer, iccid string, data, smsq *bsc.Quota) {
	fmt.Fprintf(w, "SIM %s\n", iccid)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, q := range []struct {
		name string
		q    *bsc.Quota
	}{{"data", data}, {"sms", smsq}} {
		status := q.q.Status
		if q.q.Throttled() && !q.q.Exhausted() {
			status += " (throttle threshold reached)"
		}
		line := fmt.Sprintf("  %s\t%s\t%s left (%.1f%% used)", q.name, status,
			amounts(q.q.Remaining, q.q.Total, q.q.Unit), q.q.UsedPercent())
		if !q.q.Expiry.IsZero() {
			line += ", expires " + q.q.Expiry.UTC().Format("2006-01-02 15:04 MST")
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	if th := data.Thresholds; th != (bsc.Thresholds{}) {
		fmt.Fprintf(w, "  data thresholds: notify %g%%, throttle %g%%, hard limit %g%%\n", th.Notify, th.Throttle, th.HardLimit)
	}
}

// amounts prints "left of total": bytes in binary units, as the
// simulator's data=500MB and the platform's portal count them, anything
// else as plain numbers with the unit once.
func amounts(left, total float64, unit string) string {
	if unit != "bytes" {
		return fmt.Sprintf("%g of %g %s", left, total, unit)
	}
	return bytesString(left) + " of " + bytesString(total)
}

func bytesString(v float64) string {
	for _, u := range []struct {
		name string
		size float64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v >= u.size {
			return fmt.Sprintf("%.1f %s", v/u.size, u.name)
		}
	}
	return fmt.Sprintf("%g bytes", v)
}

func runBSCReset(ctx context.Context, e *env, args []string) error {
	var af apiFlags
	var asJSON bool
	fs := newFlags(e, "bsc reset", "[--config FILE] [--iccid ICCID] [--json]",
		`Ask the platform for a network-side connectivity reset of the SIM: the
network detaches it and the modem registers again. A positive answer only
means the reset was queued; watch the modem (cellagent status --watch) to see
it happen. The request is not retried once it may have reached the platform,
so a flaky link cannot cost the device two resets.

Examples:
  cellagent bsc reset
  cellagent bsc reset --config /tmp/c.toml --iccid 89882280666012345678 --json`)
	af.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print JSON instead of text")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	s, cancel, err := af.session(ctx, e)
	if err != nil {
		return err
	}
	defer cancel()
	ctx = s.ctx
	q, err := s.client.Reset(ctx, s.iccid)
	if err != nil {
		return s.explain(err)
	}
	if asJSON {
		return jsonout.Write(e.stdout, resetJSON{V: jsonout.Version, ICCID: s.iccid, ID: string(q.ID), Status: q.Status,
			RequestedAt: jsonout.UTC(q.RequestedAt.Time)})
	}
	fmt.Fprintf(e.stdout, "reset of SIM %s queued (request %s, status %s", s.iccid, q.ID, q.Status)
	if !q.RequestedAt.IsZero() {
		fmt.Fprintf(e.stdout, ", requested %s", q.RequestedAt.UTC().Format("2006-01-02 15:04:05 MST"))
	}
	fmt.Fprintln(e.stdout, ")")
	fmt.Fprintln(e.stdout, "queued only: the modem should lose and regain its registration shortly; check with 'cellagent status'")
	return nil
}

// quotaJSON is `bsc quota --json` (SCHEMA.md, command-line JSON).
type quotaJSON struct {
	V     int          `json:"v"`
	ICCID string       `json:"iccid"`
	Data  quotaAmounts `json:"data"`
	SMS   quotaAmounts `json:"sms"`
}

type quotaAmounts struct {
	Status     string         `json:"status"`
	Total      float64        `json:"total"`
	Remaining  float64        `json:"remaining"`
	Unit       string         `json:"unit"`
	UsedPct    float64        `json:"used_pct"`
	Expires    time.Time      `json:"expires,omitzero"`
	Thresholds bsc.Thresholds `json:"thresholds"`
}

func quotaOf(q *bsc.Quota) quotaAmounts {
	return quotaAmounts{Status: q.Status, Total: q.Total, Remaining: q.Remaining, Unit: q.Unit,
		UsedPct: math.Round(q.UsedPercent()*10) / 10, Expires: jsonout.UTC(q.Expiry.Time), Thresholds: q.Thresholds}
}

// resetJSON is `bsc reset --json`.
type resetJSON struct {
	V           int       `json:"v"`
	ICCID       string    `json:"iccid"`
	ID          string    `json:"id"`
	Status      string    `json:"status"`
	RequestedAt time.Time `json:"requested_at,omitzero"`
}
