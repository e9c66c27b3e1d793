package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"cellagent/modem/at"
	"cellagent/modem/bg96"
	"cellagent/modem/clock"
	"cellagent/modem/port"
	"cellagent/transport/localapi"
)

// portFlags are shared by every command that talks to a modem.
type portFlags struct {
	path    string
	baud    int
	trace   bool
	verbose bool
	wait    time.Duration
	// level is the engine's log level; ready quiets it while a booting
	// modem's timeouts are expected.
	level slog.LevelVar
}

func (p *portFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&p.path, "port", "p", "", "serial port of the modem's AT interface, e.g. /dev/ttyUSB2, /dev/ttyS1, the simulator's link, or auto (the BG96's AT port, found in sysfs as run finds it)")
	fs.IntVar(&p.baud, "baud", port.DefaultBaud, "baud rate")
	fs.BoolVar(&p.trace, "trace", false, "log the raw AT traffic to stderr")
	fs.BoolVarP(&p.verbose, "verbose", "v", false, "log debug detail to stderr")
	fs.DurationVar(&p.wait, "wait", time.Minute, "how long to wait for a modem that is starting up (after a power-up or a reboot)")
}

// ready waits, within --wait, for a modem that is starting up: silent for
// seconds, then its start-up URCs, then SIM busy while the SIM
// initialises. The first part is the wait `cellagent run` does
// (bg96.WaitReady); a modem that is up passes at once. On a terminal a
// line says what is going on when it takes more than a second.
func (p *portFlags) ready(ctx context.Context, e *env, a *at.AT) error {
	wctx, cancel := context.WithTimeout(ctx, p.wait)
	defer cancel()
	done := make(chan struct{})
	var wg sync.WaitGroup
	if isTerminal(e.stderr) {
		wg.Go(func() {
			t := time.NewTimer(time.Second)
			defer t.Stop()
			select {
			case <-t.C:
				fmt.Fprintf(e.stderr, "waiting for the modem on %s to start up (at most %s)...\n", p.path, p.wait)
			case <-done:
			}
		})
	}
	defer wg.Wait()
	defer close(done)
	// A booting modem ignores the polls: their timeouts are no news,
	// except with --verbose.
	if l := p.level.Level(); l < slog.LevelError && !p.verbose && !p.trace {
		p.level.Set(slog.LevelError)
		defer p.level.Set(l)
	}
	if err := bg96.WaitReady(wctx, a, a); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("modem not answering on %s within --wait %s: %w", p.path, p.wait, err)
		}
		return err
	}
	// +CPIN: READY can come before the SIM answers: retry SIM busy
	// (+CME ERROR: 14) on a command that reads the SIM.
	for n := 1; ; n++ {
		_, err := a.Command(wctx, "AT+CIMI")
		var cme *at.CMEError
		if !errors.As(err, &cme) || cme.Code != 14 {
			return nil
		}
		if clock.Sleep(wctx, clock.Backoff(250*time.Millisecond, 2*time.Second, n)) != nil {
			return fmt.Errorf("SIM on %s still busy after --wait %s", p.path, p.wait)
		}
	}
}

// open opens the port and starts an engine on it.
func (p *portFlags) open(e *env, opts ...at.Option) (*at.AT, error) {
	if p.path == "" {
		return nil, usageError{errors.New("--port is required")}
	}
	p.level.Set(slog.LevelWarn)
	if p.verbose || p.trace {
		p.level.Set(slog.LevelDebug)
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: &p.level}))
	if p.path == "auto" {
		found, err := port.Find(port.SysfsRoot)
		if err != nil {
			return nil, err
		}
		p.path = found
	}
	sp, err := port.Open(p.path, p.baud)
	if err != nil {
		return nil, err
	}
	opts = append(append(bg96.EngineOptions(), at.WithLogger(log)), opts...)
	if p.trace {
		opts = append(opts, at.WithTrace(log))
	}
	return at.New(sp, opts...), nil
}

// explain turns an engine error into advice for a person at a terminal.
func explain(path string, err error) error {
	switch {
	case errors.Is(err, at.ErrTimeout):
		return fmt.Errorf("modem not answering on %s: %w", path, err)
	case errors.Is(err, at.ErrClosed):
		return fmt.Errorf("port %s went away: %w", path, err)
	}
	return err
}

func runAT(ctx context.Context, e *env, args []string) error {
	var pf portFlags
	var af agentFlags
	var timeout time.Duration
	var body string
	var force bool
	fs := newFlags(e, "at", "[--port PORT] [flags] [COMMAND...]",
		`Send AT commands and print the modem's answer. With COMMANDs, each is sent
in turn and the command fails at the first error; without, an interactive
session reads commands from standard input and prints unsolicited result
codes as they arrive. After AT+CMGS=/AT+CMGW= the session asks for the PDU.

While the agent runs (no --port, or the port is the agent's), COMMANDs go
through it, in turn with its own, if its [api] at_commands is on. Commands
that would break its hold on the modem (ATE1, AT+CMGF=1, AT+CFUN=…,
AT+QPOWD, …) are refused unless --force; queries (?) and tests (=?) are
free. The interactive session needs the port.

Examples:
  cellagent at --port /tmp/ttyBG96 AT+CSQ
  cellagent at --port /dev/ttyUSB2 'AT+COPS?' 'AT+QNWINFO'
  cellagent at --port /tmp/ttyBG96 --body 0011000B91...  AT+CMGS=23`)
	pf.register(fs)
	fs.DurationVar(&timeout, "timeout", 0, "time limit per command (default: the command's own, e.g. 180s for AT+COPS=, 5s for queries)")
	fs.StringVar(&body, "body", "", "SMS body (PDU hex) for AT+CMGS/AT+CMGW given on the command line")
	fs.BoolVar(&force, "force", false, "through the agent: send a command that changes state the agent relies on")
	af.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if timeout < 0 {
		return usageError{fmt.Errorf("--timeout %s: want a positive duration (or 0 for each command's own)", timeout)}
	}
	var opts []at.CommandOption
	if timeout > 0 {
		opts = append(opts, at.WithTimeout(timeout))
	}
	out := &syncWriter{w: e.stdout}
	// A program killed mid-command (the agent stopping, an earlier `at`)
	// may leave its answer on the line, arriving after the port's input was
	// flushed: fence it off, as status and sms do.
	engineOpts := []at.Option{at.WithInitialFence()}
	if fs.NArg() == 0 {
		// The interactive session shows URCs as they arrive; one-shot
		// output is the command's answer alone, so scripts can parse it.
		engineOpts = append(engineOpts, at.WithUnhandled(func(lines []string) {
			out.println(lines...)
		}))
	}
	var a *at.AT
	var err error
	if pf.path != "" {
		a, err = pf.open(e, engineOpts...)
	}
	if pf.path == "" || errors.Is(err, port.ErrBusy) {
		c, cerr := viaAgent(&af, pf.path != "", err)
		if cerr != nil {
			return cerr
		}
		if fs.NArg() == 0 {
			return usageError{errors.New("the interactive session needs the port, which the agent holds; give the commands as arguments")}
		}
		return atViaAgent(ctx, c, out, fs.Args(), timeout, force)
	}
	if err != nil {
		return err
	}
	defer a.Close()

	if fs.NArg() == 0 {
		return repl(ctx, e, a, pf.path, out, opts)
	}
	if err := pf.ready(ctx, e, a); err != nil {
		return err
	}
	for _, cmd := range fs.Args() {
		var info []string
		var err error
		if isSMSWrite(cmd) {
			if body == "" {
				return usageError{fmt.Errorf("%s needs --body with the PDU in hex", cmd)}
			}
			info, err = a.SMSCommand(ctx, cmd, body, opts...)
		} else {
			info, err = a.Command(ctx, cmd, opts...)
		}
		out.println(info...)
		if err != nil {
			return explain(pf.path, err)
		}
		out.println("OK")
	}
	return nil
}

// atViaAgent sends each command through the agent, printing as the port
// path does: the information lines, then OK; the first failure ends it.
func atViaAgent(ctx context.Context, c *localapi.Client, out *syncWriter, cmds []string, timeout time.Duration, force bool) error {
	for _, cmd := range cmds {
		r, err := c.AT(ctx, localapi.ATRequest{Command: cmd, TimeoutMS: int(timeout / time.Millisecond), Force: force})
		if err != nil {
			return err
		}
		out.println(r.Lines...)
		if !r.OK {
			return errors.New(r.Result)
		}
		out.println("OK")
	}
	return nil
}

func repl(ctx context.Context, e *env, a *at.AT, path string, out *syncWriter, opts []at.CommandOption) error {
	fmt.Fprintf(e.stderr, "connected to %s; type AT commands, 'quit' or Ctrl-D to leave\n", path)
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(e.stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func() (string, bool, error) {
		select {
		case l, ok := <-lines:
			return strings.TrimSpace(l), ok, nil
		case <-a.Closed():
			return "", false, explain(path, a.Err())
		case <-ctx.Done():
			return "", false, nil
		}
	}
	for {
		cmd, ok, err := next()
		if err != nil || !ok {
			return err
		}
		switch strings.ToLower(cmd) {
		case "":
			continue
		case "quit", "exit":
			return nil
		}
		var info []string
		if isSMSWrite(cmd) {
			out.print("> ")
			body, ok, err := next()
			if err != nil || !ok {
				return err
			}
			info, err = a.SMSCommand(ctx, cmd, body, opts...)
			out.println(info...)
			report(out, err)
			continue
		}
		info, err = a.Command(ctx, cmd, opts...)
		out.println(info...)
		report(out, err)
		if errors.Is(err, at.ErrClosed) {
			return explain(path, err)
		}
	}
}

// report prints the final result the way a terminal session shows it.
func report(out *syncWriter, err error) {
	var cme *at.CMEError
	var cms *at.CMSError
	var res *at.ResultError
	switch {
	case err == nil:
		out.println("OK")
	case errors.Is(err, at.ErrError), errors.As(err, &cme), errors.As(err, &cms), errors.As(err, &res):
		var final interface{ Error() string } = at.ErrError
		switch {
		case cme != nil:
			final = cme
		case cms != nil:
			final = cms
		case res != nil:
			final = res
		}
		out.println(final.Error())
	default:
		out.println("error: " + err.Error())
	}
}

func isSMSWrite(cmd string) bool {
	u := strings.ToUpper(cmd)
	return strings.HasPrefix(u, "AT+CMGS=") || strings.HasPrefix(u, "AT+CMGW=")
}

// syncWriter keeps URC lines from the engine's goroutine and answers from
// the command loop from interleaving mid-line.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) println(lines ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range lines {
		fmt.Fprintln(s.w, l)
	}
}

func (s *syncWriter) print(text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprint(s.w, text)
}
