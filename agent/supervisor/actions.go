package supervisor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"cellagent/agent/atsession"
	"cellagent/agent/event"
	"cellagent/modem/at"
	"cellagent/modem/bg96"
	"cellagent/transport/bsc"
)

// BG96 power timings the power-cycle step waits on, in real time.
const (
	// powerOffWait is how long a PWRKEY power-off may take to make the
	// USB port vanish: the modem needs 2–5 s to shut down.
	powerOffWait = 10 * time.Second
	// supplyOff is how long a supply cut lasts. Quectel gives no figure
	// and the rail's fall depends on the board's capacitors; 5 s leaves a
	// wide margin for a rare, last-resort step.
	supplyOff = 5 * time.Second
)

func (s *Supervisor) needAT() string {
	if _, err := s.deps.Link.Current(); err != nil {
		return "no AT session with the modem"
	}
	return ""
}

func (s *Supervisor) needBSC() string {
	if s.deps.BSC == nil {
		return "the operator API is not configured ([bsc] base_url)"
	}
	return ""
}

func (s *Supervisor) needBearer() string {
	if s.deps.Bearer == nil || !s.deps.Bearer.Dials() {
		return "the agent does not own the data bearer ([data] mode = \"ppp\")"
	}
	return ""
}

// redial hangs the data bearer up and dials again: one PDP activation,
// the cheapest thing to try on a data path that failed while the modem
// stays registered.
func (s *Supervisor) redial(context.Context) outcome {
	if err := s.deps.Bearer.Redial("recovery ladder"); err != nil {
		return failed("%v", err)
	}
	return outcome{result: resultDone, detail: "the bearer hangs up and dials again"}
}

func (s *Supervisor) needPower() string {
	if s.deps.Power == nil {
		return "no power lines are configured ([power])"
	}
	return ""
}

func failed(format string, args ...any) outcome {
	return outcome{result: resultFailed, detail: fmt.Sprintf(format, args...)}
}

// noAnswer says whether err means the modem did not answer, as opposed to
// answering with an error.
func noAnswer(err error) bool {
	return errors.Is(err, at.ErrTimeout) || errors.Is(err, at.ErrClosed) || errors.Is(err, context.DeadlineExceeded)
}

// commands sends cmds in order within modem_timeout; an error answer is
// noted and the next command still sent, no answer ends the step.
func (s *Supervisor) commands(ctx context.Context, cmds ...string) outcome {
	sess, err := s.deps.Link.Current()
	if err != nil {
		return failed("no AT session: %v", err)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, s.cfg.ModemTimeout.Duration, at.ErrTimeout)
	defer cancel()
	var notes []string
	for _, c := range cmds {
		_, err := sess.AT.Command(ctx, c)
		switch {
		case err == nil:
			notes = append(notes, c+": OK")
		case noAnswer(err):
			return failed("%s: no answer: %v", c, err)
		default:
			notes = append(notes, err.Error())
		}
	}
	return outcome{result: resultDone, detail: strings.Join(notes, "; ")}
}

// reattach detaches and attaches the packet domain of a registered modem;
// one without registration is told to select a network again instead,
// since detaching it would only leave it detached when the network comes
// back.
func (s *Supervisor) reattach(ctx context.Context) outcome {
	if s.regOK() {
		return s.commands(ctx, "AT+CGATT=0", "AT+CGATT=1")
	}
	return s.commands(ctx, "AT+COPS=0", "AT+CGATT=1")
}

// cfunReset switches radio and SIM off and on. CFUN=0 rather than flight
// mode (4) makes the modem read the SIM again, which flushes SIM-side
// network state that flight mode keeps; its OK comes once both are off,
// so no pause is needed before CFUN=1.
func (s *Supervisor) cfunReset(ctx context.Context) outcome {
	return s.commands(ctx, "AT+CFUN=0", "AT+CFUN=1")
}

func (s *Supervisor) simICCID() string {
	if s.deps.ICCID != "" {
		return s.deps.ICCID
	}
	return s.iccid
}

// bscFailed classifies an operator API error: 429 is a delay the
// platform asked for, anything else makes the API unreachable for the
// rest of the climb.
func (s *Supervisor) bscFailed(what string, err error) outcome {
	var th *bsc.ThrottledError
	if errors.As(err, &th) {
		wait := th.RetryAfter
		if wait <= 0 {
			wait = s.cfg.BackoffMin.Duration
		}
		return outcome{result: resultThrottled, retryAt: s.clock.Now().Add(wait),
			detail: fmt.Sprintf("%s: the operator API asked to wait %s", what, wait),
			attrs:  event.Attrs{"retry_after": wait.String()}}
	}
	out := failed("%s: operator API unreachable: %v", what, err)
	out.bscDown = err.Error()
	return out
}

// checkQuota asks the operator for the SIM's allowances. Only the data
// quota stops the climb: an outage of the data link is what the ladder
// fights, and an empty SMS bundle cannot cause one.
func (s *Supervisor) checkQuota(ctx context.Context) outcome {
	iccid := s.simICCID()
	if iccid == "" {
		return failed("the SIM's ICCID is unknown (no session has read it yet)")
	}
	data, err := s.deps.BSC.DataQuota(ctx, iccid)
	if err != nil && !errors.Is(err, bsc.ErrQuotaUnavailable) {
		return s.bscFailed("data quota", err)
	}
	sms, smsErr := s.deps.BSC.SMSQuota(ctx, iccid)
	attrs := event.Attrs{}
	describe := func(kind string, q *bsc.Quota, err error) {
		if err != nil {
			attrs[kind+"_error"] = err.Error()
			return
		}
		attrs[kind+"_status"] = q.Status
		attrs[kind+"_left"] = q.Remaining
		attrs[kind+"_total"] = q.Total
		attrs[kind+"_used_pct"] = math.Round(q.UsedPercent()*10) / 10
	}
	describe("data", data, err)
	describe("sms", sms, smsErr)
	exhausted := data != nil && data.Exhausted()
	now := s.clock.Now()
	was := s.health.quotaExhausted
	s.health.quotaExhausted = exhausted
	v := s.health.verdict(now)
	s.publish()

	level, msg := "info", "quota available"
	switch {
	case exhausted:
		level, msg = "error", "data quota exhausted: the link cannot recover until it is topped up; no resets until then"
	case data == nil:
		level, msg = "warn", "data quota unknown: the platform gave none"
	case was:
		msg = "data quota available again"
	case sms != nil && sms.Exhausted():
		level, msg = "warn", "SMS quota exhausted (the data quota is available)"
	}
	s.emit(event.Quota, level, msg, attrs)
	if s.deps.Bearer != nil && exhausted != was {
		s.deps.Bearer.SetQuota(exhausted)
	}
	s.setVerdict(v)
	if exhausted {
		return outcome{result: resultExhausted, detail: msg, attrs: attrs}
	}
	return outcome{result: resultDone, detail: msg, attrs: attrs}
}

// bscReset asks for the network-side reset. Its answer means queued, not
// done: the step's wait is there to see it happen.
func (s *Supervisor) bscReset(ctx context.Context) outcome {
	iccid := s.simICCID()
	if iccid == "" {
		return failed("the SIM's ICCID is unknown (no session has read it yet)")
	}
	r, err := s.deps.BSC.Reset(ctx, iccid)
	if err != nil {
		return s.bscFailed("reset", err)
	}
	return outcome{result: resultDone, detail: fmt.Sprintf("queued by the platform (id %s, status %s)", r.ID, r.Status),
		attrs: event.Attrs{"reset_id": string(r.ID)}}
}

// reboot resets the modem with AT+CFUN=1,1 and waits for its new session.
func (s *Supervisor) reboot(ctx context.Context) outcome {
	sess, err := s.deps.Link.Current()
	if err != nil {
		return failed("no AT session: %v", err)
	}
	actx, cancel := s.atCtx(ctx, 1)
	err = sess.Modem.Reboot(actx)
	cancel()
	if err != nil {
		return failed("%v", err)
	}
	s.restartLink(sess.Seq, "reboot (AT+CFUN=1,1)")
	return s.comeBack(ctx, sess.Seq, "rebooted")
}

// comeBack waits for a session newer than seq.
func (s *Supervisor) comeBack(ctx context.Context, seq int, what string) outcome {
	start := time.Now()
	ns, err := s.awaitSession(ctx, seq)
	if err != nil {
		return failed("%s, but the modem did not come back: %v", what, err)
	}
	return outcome{result: resultDone, detail: fmt.Sprintf("%s; the modem came back (session %d) after %s", what, ns.Seq, time.Since(start).Round(100*time.Millisecond))}
}

// powerCycle powers the modem down as gently as it will go and up again,
// in the order Quectel recommends: AT+QPOWD=1, else a PWRKEY power-off
// press; RESET_N, then a supply cut, only when those failed, because
// cutting power while the modem writes its flash has bricked modems. It
// never powers down a modem it could not power up again.
func (s *Supervisor) powerCycle(ctx context.Context) outcome {
	lines := s.deps.PowerLines
	pc := &cycle{s: s, p: s.deps.Power, lines: lines}
	if sess, err := s.deps.Link.Current(); err == nil {
		pc.sess, pc.seq = sess, sess.Seq
	}
	for _, means := range []struct {
		wired bool
		try   func(context.Context) bool
	}{
		{lines.PWRKey || lines.Supply, pc.gently},
		{lines.ResetN, pc.reset},
		{lines.Supply, pc.cut},
	} {
		if ctx.Err() != nil {
			pc.note("%v", ctx.Err())
			break
		}
		if means.wired && means.try(ctx) {
			return outcome{result: resultDone, detail: strings.Join(pc.notes, "; ")}
		}
	}
	return failed("%s", strings.Join(pc.notes, "; "))
}

// cycle is one power-cycle's progress: each means notes what it did and
// says whether the modem came back.
type cycle struct {
	s     *Supervisor
	p     Power
	lines PowerLines
	sess  *atsession.Session // nil when the port was already gone
	seq   int
	notes []string
}

func (c *cycle) note(format string, args ...any) {
	c.notes = append(c.notes, fmt.Sprintf(format, args...))
}

// back restarts the old session and waits for a new one.
func (c *cycle) back(ctx context.Context, what string) bool {
	c.s.restartLink(c.seq, "power-cycle: "+what)
	out := c.s.comeBack(ctx, c.seq, what)
	c.note("%s", out.detail)
	return out.result == resultDone
}

// gently powers down with AT+QPOWD=1, or a PWRKEY press confirmed by the
// port vanishing, then up again.
func (c *cycle) gently(ctx context.Context) bool {
	if c.sess == nil {
		// Without a port the modem may be off already: nobody can tell.
		// A power-on press wakes an off modem and, being shorter than a
		// power-off press, leaves a running one alone, where a power-off
		// press would switch either to the other state.
		if !c.lines.PWRKey {
			return false
		}
		if err := c.p.PowerOn(ctx); err != nil {
			c.note("PWRKEY on: %v", err)
			return false
		}
		return c.back(ctx, "no port; power-on press")
	}
	off := false
	if err := c.s.powerDown(ctx, c.sess); err != nil {
		c.note("AT+QPOWD=1: %v", err)
	} else {
		off = true
		c.note("AT+QPOWD=1: POWERED DOWN")
	}
	if !off && c.lines.PWRKey {
		switch err := c.p.PowerOff(ctx); {
		case err != nil:
			c.note("PWRKEY off: %v", err)
		case c.s.portVanished(ctx, c.seq):
			off = true
			c.note("PWRKEY off: the port vanished")
		default:
			c.note("PWRKEY off: the port is still there")
		}
	}
	if !off {
		return false
	}
	// A modem without PWRKEY (typical of USB cards) starts by itself when
	// its supply comes back.
	var err error
	if c.lines.PWRKey {
		err = c.p.PowerOn(ctx)
	} else {
		err = c.p.CutPower(ctx, supplyOff)
	}
	if err != nil {
		c.note("power on: %v", err)
		return false
	}
	return c.back(ctx, "powered down and up")
}

func (c *cycle) reset(ctx context.Context) bool {
	if err := c.p.Reset(ctx); err != nil {
		c.note("RESET_N: %v", err)
		return false
	}
	return c.back(ctx, "RESET_N pulsed")
}

func (c *cycle) cut(ctx context.Context) bool {
	err := c.p.CutPower(ctx, supplyOff)
	if err == nil && c.lines.PWRKey {
		err = c.p.PowerOn(ctx)
	}
	if err != nil {
		c.note("supply cut: %v", err)
		return false
	}
	return c.back(ctx, "supply cut and restored")
}

// powerDown is bg96.Modem.PowerDownAndWait with the supervisor's own
// limit on the command, so a hung modem costs at_timeout, not the
// engine's limit, before the PWRKEY fallback.
func (s *Supervisor) powerDown(ctx context.Context, sess *atsession.Session) error {
	w := bg96.Expect(sess.AT, "POWERED DOWN")
	defer w.Stop()
	cctx, cancel := s.atCtx(ctx, 1)
	_, err := sess.AT.Command(cctx, "AT+QPOWD=1")
	cancel()
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, bg96.PowerDownTimeout)
	defer cancel()
	if _, err := w.Wait(wctx); err != nil {
		return fmt.Errorf("no POWERED DOWN: %w", err)
	}
	return nil
}

// portVanished waits for session seq to end, as a USB modem's port does
// when it powers off. A modem on a UART keeps its port, and one that was
// already without a session gives no sign: both read as "still there",
// which sends the step to its harder means.
func (s *Supervisor) portVanished(ctx context.Context, seq int) bool {
	if seq == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, min(powerOffWait, s.cfg.ModemTimeout.Duration))
	defer cancel()
	for {
		ch := s.deps.Link.Changed()
		if cur, err := s.deps.Link.Current(); err != nil || cur.Seq != seq {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}
