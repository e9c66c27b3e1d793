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
	fenceCmd       string
	fencePrefix    string
	fenceTimeout   time.Duration
	fenceSettle    time.Duration
	initialFence   bool
	twoLine        []string
	bareURCs       []string
	unhandled      Handler
	queueLen       int
}

func defaultConfig() config {
	t := make(map[string]time.Duration, len(defaultTimeouts))
	for k, v := range defaultTimeouts {
		t[k] = v
	}
	return config{
		log:            slog.New(slog.DiscardHandler),
		defaultTimeout: 5 * time.Second,
		timeouts:       t,
		fenceCmd:       "AT+CMEE?",
		fencePrefix:    "+CMEE:",
		fenceTimeout:   3 * time.Second,
		fenceSettle:    100 * time.Millisecond,
		twoLine:        []string{"+CMT:", "+CDS:", "+CBM:"},
		bareURCs:       []string{"RDY", "APP RDY", "POWERED DOWN", "NORMAL POWER DOWN", "PSM POWER DOWN", "RING"},
		queueLen:       256,
	}
}

// defaultTimeouts are the longest answer times Quectel documents for the
// BG96 (and that its vendor driver uses), keyed by the command without "AT".
// The longest matching key wins, so "+COPS?" is a quick query while
// "+COPS=" may scan for three minutes.
var defaultTimeouts = map[string]time.Duration{
	"+COPS":    180 * time.Second,
	"+COPS?":   5 * time.Second,
	"+CGATT":   140 * time.Second,
	"+CGATT?":  5 * time.Second,
	"+CGACT":   150 * time.Second,
	"+CGACT?":  5 * time.Second,
	"+QIACT":   150 * time.Second,
	"+QIACT?":  5 * time.Second,
	"+QIDEACT": 40 * time.Second,
	"+CMGS":    120 * time.Second,
	"+CMGW":    10 * time.Second,
	"+CMGL":    30 * time.Second,
	"+CMGD":    30 * time.Second,
	"+CFUN":    15 * time.Second,
	"+CFUN?":   5 * time.Second,
	"+QPOWD":   5 * time.Second,
	"+CPIN":    5 * time.Second,
	"+CLCK":    15 * time.Second,
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

// WithDefaultTimeout sets the time limit for commands not in the per-command
// table.
func WithDefaultTimeout(d time.Duration) Option {
	return func(c *config) { c.defaultTimeout = d }
}

// WithCommandTimeout sets the time limit for commands starting with cmd
// (given without "AT", e.g. "+COPS=" or "+CMGS").
func WithCommandTimeout(cmd string, d time.Duration) Option {
	return func(c *config) { c.timeouts[strings.ToUpper(cmd)] = d }
}

// WithFence changes the command used to resynchronise after a timeout. It
// must answer with an information line starting with prefix, which lets the
// engine tell its final result from a late one.
func WithFence(cmd, prefix string, timeout time.Duration) Option {
	return func(c *config) {
		c.fenceCmd, c.fencePrefix, c.fenceTimeout = cmd, prefix, timeout
	}
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

// WithQueueLength bounds the URCs waiting for their handlers. URCs beyond it
// are logged and dropped rather than stalling the reader, which would stall
// every command.
func WithQueueLength(n int) Option {
	return func(c *config) { c.queueLen = n }
}

// CommandOption configures one command.
type CommandOption func(*request)

// WithTimeout overrides the time limit of one command.
func WithTimeout(d time.Duration) CommandOption {
	return func(r *request) { r.timeout = d }
}

// WithPrefix sets the prefixes of the information lines that belong to the
// command, replacing the one derived from its name (AT+CSQ → "+CSQ:"). Lines
// with any other "+XXX:" prefix are treated as unsolicited.
func WithPrefix(prefixes ...string) CommandOption {
	return func(r *request) { r.prefixes = prefixes }
}

// IndicationOption configures a URC handler.
type IndicationOption func(*indication)

// WithTrailingLines says the URC is followed by n more lines that belong to
// it, as the PDU line follows "+CMT:".
func WithTrailingLines(n int) IndicationOption {
	return func(i *indication) { i.trailing = n }
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
