package at

import (
	"log/slog"
	"strings"
	"time"
)

// Option configures an engine at construction.
type Option func(*config)

type config struct {
	log            *slog.Logger
	trace          *slog.Logger
	defaultTimeout time.Duration
	timeouts       map[string]time.Duration
	initialFence   bool
	twoLine        []string
	bareURCs       []string
	unhandled      Handler
}

// The fence that resynchronises the line after a timeout: AT+CMEE? is a
// 3GPP TS 27.007 (9.1) query every modem answers with a "+CMEE:" line,
// which lets the engine tell the fence's final result from a late one, and
// changes nothing on the modem. A command's own time limit bounds the
// fence's wait too.
const (
	fenceCmd     = "AT+CMEE?"
	fencePrefix  = "+CMEE:"
	fenceTimeout = 3 * time.Second
	// fenceSettle is how long a matched fence waits for the line to go
	// quiet before trusting it.
	fenceSettle = 100 * time.Millisecond
)

// defaultConfig knows only what the standards fix: the PDU-carrying
// indications of 3GPP TS 27.005 (3.4.1) take two lines, and RING is the
// bare-word unsolicited code of ITU-T V.250. A modem's own timeouts and
// bare-word URCs come in through WithCommandTimeout and WithBareURCs
// (modem/bg96's EngineOptions for the BG96).
func defaultConfig() config {
	return config{
		log:            slog.New(slog.DiscardHandler),
		defaultTimeout: 5 * time.Second,
		timeouts:       map[string]time.Duration{},
		twoLine:        []string{"+CMT:", "+CDS:", "+CBM:"},
		bareURCs:       []string{"RING"},
	}
}

// WithLogger sets the logger for engine events (timeouts, dropped lines,
// port failure). The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.log = l }
}

// WithTrace logs every byte sent and received at debug level, as the modem
// saw it, without changing what the engine does.
func WithTrace(l *slog.Logger) Option {
	return func(c *config) { c.trace = l }
}

// WithCommandTimeout sets the time limit for commands starting with cmd
// (given without "AT", e.g. "+COPS=" or "+CMGS").
func WithCommandTimeout(cmd string, d time.Duration) Option {
	return func(c *config) { c.timeouts[strings.ToUpper(cmd)] = d }
}

// WithBareURCs adds unsolicited result codes that are a bare word (no
// "+XXX:" prefix), such as a modem's start-up announcements: a line equal
// to one is never taken for a running command's information text.
func WithBareURCs(words ...string) Option {
	return func(c *config) { c.bareURCs = append(c.bareURCs, words...) }
}

// WithInitialFence makes the first command resynchronise the line, as after
// a timeout. Use it when another program (or an earlier run of this one
// that was killed) may have left commands unanswered on the port: their
// late answers would otherwise be taken for the first command's.
func WithInitialFence() Option {
	return func(c *config) { c.initialFence = true }
}

// WithUnhandled receives every unsolicited line no handler was registered
// for, e.g. to print URCs in an interactive session.
func WithUnhandled(h Handler) Option {
	return func(c *config) { c.unhandled = h }
}

// CommandOption configures one command.
type CommandOption func(*request)

// WithTimeout overrides the time limit of one command.
func WithTimeout(d time.Duration) CommandOption {
	return func(r *request) { r.timeout = d }
}

func (c *config) timeoutFor(cmd string) time.Duration {
	name := strings.ToUpper(strings.TrimSpace(cmd))
	if len(name) >= 2 && name[:2] == "AT" {
		name = name[2:]
	}
	best, d := -1, c.defaultTimeout
	for k, v := range c.timeouts {
		if len(k) > best && strings.HasPrefix(name, k) {
			best, d = len(k), v
		}
	}
	return d
}
