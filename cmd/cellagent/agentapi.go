package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"cellagent/modem/clock"
	"cellagent/modem/sms"
	"cellagent/transport/localapi"
)

// errNoAgent: no agent answers on the socket, so the modem's port is the
// way in.
var errNoAgent = errors.New("no agent running")

// agentFlags find the running agent's socket.
type agentFlags struct {
	runtimeDir, socket string
}

func (a *agentFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&a.runtimeDir, "runtime-dir", "", "the agent's runtime directory (default $RUNTIME_DIRECTORY or /run/cellagent)")
	fs.StringVar(&a.socket, "socket", "", "the agent's API socket (default api.sock in the runtime directory)")
}

func (a *agentFlags) dir() string {
	switch {
	case a.runtimeDir != "":
		return a.runtimeDir
	case os.Getenv("RUNTIME_DIRECTORY") != "":
		return os.Getenv("RUNTIME_DIRECTORY")
	}
	return "/run/cellagent"
}

func (a *agentFlags) path() string {
	if a.socket != "" {
		return a.socket
	}
	return filepath.Join(a.dir(), localapi.SocketName)
}

// client returns a client of the running agent, or errNoAgent when no
// agent listens. A socket the user may not open is an error of its own:
// falling back to the port would only fail on the lock.
func (a *agentFlags) client() (*localapi.Client, error) {
	path := a.path()
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err == nil {
		c.Close()
		return localapi.NewClient(path), nil
	}
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
		return nil, fmt.Errorf("%w (no socket at %s)", errNoAgent, path)
	}
	if errors.Is(err, os.ErrPermission) {
		return nil, fmt.Errorf("agent socket %s: %w (join the socket's group, cellagent)", path, err)
	}
	return nil, fmt.Errorf("agent socket %s: %w", path, err)
}

// viaAgent decides the path of a command that can use either the port or
// the agent: the agent when no port was given, or when the port is held
// (by the agent, as it turns out). portErr is the error of opening the
// port, nil when none was tried.
func viaAgent(a *agentFlags, portGiven bool, portErr error) (*localapi.Client, error) {
	c, err := a.client()
	switch {
	case err == nil:
		return c, nil
	case !portGiven && errors.Is(err, errNoAgent):
		return nil, usageError{fmt.Errorf("--port is required when no agent runs: %v", err)}
	case portErr != nil && errors.Is(err, errNoAgent):
		return nil, portErr
	}
	return nil, err
}

// apiCall bounds one call to the agent.
func apiCall(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 30*time.Second)
}

// newKey is an idempotency key for one `sms send`: its retries reuse it,
// so a message whose answer was lost is not queued twice.
func newKey() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "cli-" + hex.EncodeToString(b)
}

// sendViaAgent queues req with the agent, retrying with the same key
// while the agent cannot be reached (it may be restarting), then with
// wait > 0 follows the message to its outcome.
func sendViaAgent(ctx context.Context, e *env, c *localapi.Client, req localapi.SMSRequest, wait time.Duration) error {
	var q localapi.SMSQueued
	var err error
	for try := 0; ; try++ {
		actx, cancel := apiCall(ctx)
		q, err = c.SendSMS(actx, req)
		cancel()
		var ae *localapi.APIError
		if err == nil || errors.As(err, &ae) || try == 4 || ctx.Err() != nil {
			break
		}
		_ = clock.Sleep(ctx, clock.Backoff(time.Second, 8*time.Second, try+1)) // ctx's end is seen above
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "queued by the agent as %s\n", q.ID)
	if wait <= 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := c.SMS(wctx, q.ID)
		if err != nil {
			return err
		}
		if st.Final(req.Report) {
			return printOutcome(e, st)
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("no outcome within %s: the message is %s (ask again with the id %s)", wait, st.State, q.ID)
		case <-tick.C:
		}
	}
}

// printOutcome prints a final state the way the port path prints a send.
func printOutcome(e *env, st localapi.SMSStatus) error {
	if len(st.Refs) > 0 {
		fmt.Fprintf(e.stdout, "message reference%s: %s\n", map[bool]string{true: "s"}[len(st.Refs) > 1], joinInts(st.Refs))
	}
	switch st.State {
	case "delivered":
		fmt.Fprintln(e.stdout, "delivered")
	case "failed":
		if st.Code != 0 {
			return fmt.Errorf("not sent: %s (code %d)", st.Reason, st.Code)
		}
		return fmt.Errorf("not sent: %s", st.Reason)
	}
	return nil
}

// alphabetOf reads the alphabet's name back, as the inbox stores it.
func alphabetOf(name string) sms.Alphabet {
	for _, a := range []sms.Alphabet{sms.GSM7, sms.Data8, sms.UCS2} {
		if a.String() == name {
			return a
		}
	}
	return sms.GSM7
}
