package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"cellagent/agent/atsession"
	"cellagent/agent/event"
	"cellagent/modem/at"
)

// poll gathers one observation and updates the verdict.
func (s *Supervisor) poll(ctx context.Context) {
	sess, err := s.deps.Link.Current()
	after := 0
	if err == nil {
		o := s.observe(ctx, sess)
		if o.session != 0 {
			s.observed(o)
			return
		}
		// The session closed under the probe, and the link may not have
		// noticed yet: wait for a newer one, or a fake clock would spin
		// through hours of polls on the dead session.
		after = sess.Seq
	}
	// The port is gone (USB re-enumeration, a cable) or the link is
	// reopening it: say so, unless the link is still opening its first
	// session, then give it its time in real time, since a fake clock
	// must not skip ahead of a reopening port.
	if s.health.seen {
		s.observed(observation{at: s.clock.Now()})
	}
	sess, err = s.awaitSession(ctx, after)
	switch {
	case err == nil:
		s.observed(s.observe(ctx, sess))
	case ctx.Err() == nil:
		s.observed(observation{at: s.clock.Now(), linkGone: true})
	}
}

func (s *Supervisor) observed(o observation) {
	s.lastPoll, s.nextPoll = o.at, o.at.Add(s.cfg.Poll.Duration)
	if s.deps.ConfigFault != nil {
		o.fault = s.deps.ConfigFault()
	}
	s.health.update(o)
	cleared := s.health.quotaExhausted && s.health.ok()
	if cleared {
		s.health.quotaExhausted = false
	}
	v := s.health.verdict(o.at)
	s.publish()
	if cleared {
		s.emit(event.Quota, "info", "connectivity is back; the quota is no longer taken as exhausted", nil)
		if s.deps.Bearer != nil {
			s.deps.Bearer.SetQuota(false)
		}
	}
	s.setVerdict(v)
}

// atCtx bounds n of the supervisor's own AT commands. The cause makes a
// deadline read as the engine's ErrTimeout.
func (s *Supervisor) atCtx(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, time.Duration(n)*s.cfg.ATTimeout.Duration, at.ErrTimeout)
}

func (s *Supervisor) observe(ctx context.Context, sess *atsession.Session) observation {
	o := observation{at: s.clock.Now(), session: sess.Seq}
	s.watchURCs(sess)
	if sess.Identity.ICCID != "" {
		s.iccid = sess.Identity.ICCID
	}
	o.dataPath, o.dataErr = s.probeData(ctx)
	pctx, cancel := s.atCtx(ctx, 1)
	_, err := sess.AT.Command(pctx, "AT", at.WithTimeout(s.cfg.ATTimeout.Duration))
	cancel()
	if err != nil {
		if errors.Is(err, at.ErrClosed) {
			// The session is ending; the link reopens it.
			o.session = 0
			return o
		}
		o.atErr = err.Error()
		return o
	}
	o.atOK = true
	rctx, cancel := s.atCtx(ctx, 3)
	reg, _ := sess.Modem.Registration(rctx)
	cancel()
	if reg.CS != nil || reg.GPRS != nil || reg.EPS != nil {
		o.reg = &reg
	}
	actx, cancel := s.atCtx(ctx, 1)
	if att, err := sess.Modem.Attached(actx); err == nil {
		o.attached = &att
	}
	cancel()
	sctx, cancel := s.atCtx(ctx, 2)
	o.signal, _ = sess.Modem.Signal(sctx)
	cancel()
	return o
}

// watchURCs wakes Run on registration URCs, so a lost or regained
// registration is seen at once rather than at the next poll.
func (s *Supervisor) watchURCs(sess *atsession.Session) {
	if s.urcSeq == sess.Seq {
		return
	}
	s.dropURCs()
	for _, p := range []string{"+CREG", "+CGREG", "+CEREG"} {
		s.removeURC = append(s.removeURC, sess.AT.AddIndication(p, func([]string) { s.poke() }))
	}
	s.urcSeq = sess.Seq
}

func (s *Supervisor) dropURCs() {
	for _, r := range s.removeURC {
		r()
	}
	s.removeURC, s.urcSeq = nil, 0
}

// probeData checks the data path: the bearer's interface as the kernel
// reports it, then a TCP connect to probe_host, or else the MQTT state
// the daemon reports; nil when nothing is known. A bearer that is down
// settles it without a probe that could only time out.
func (s *Supervisor) probeData(ctx context.Context) (*bool, string) {
	ok := func(v bool) *bool { return &v }
	var bearerUp *bool
	if s.deps.Bearer != nil {
		up, why := s.deps.Bearer.Evidence()
		if up != nil && !*up {
			return up, "bearer: " + why
		}
		bearerUp = up
	}
	if host := s.cfg.ProbeHost; host != "" {
		dctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeTimeout.Duration)
		defer cancel()
		var d net.Dialer
		c, err := d.DialContext(dctx, "tcp", host)
		if err != nil {
			return ok(false), fmt.Sprintf("TCP connect to %s: %v", host, err)
		}
		c.Close()
		return ok(true), ""
	}
	switch s.dataPath.Load() {
	case 1:
		return ok(true), ""
	case 2:
		return ok(false), "MQTT connection down"
	}
	return bearerUp, ""
}

// awaitSession waits, in real time up to modem_timeout, for a session
// newer than after (0: any).
func (s *Supervisor) awaitSession(ctx context.Context, after int) (*atsession.Session, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ModemTimeout.Duration)
	defer cancel()
	for {
		ch := s.deps.Link.Changed()
		if cur, err := s.deps.Link.Current(); err == nil && cur.Seq > after {
			return cur, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no modem session within %s: %w", s.cfg.ModemTimeout.Duration, ctx.Err())
		case <-ch:
		}
	}
}

// restartLink ends session seq so the link opens a fresh one: after a
// reboot the old session is useless even when the port survived. A newer
// session is left alone.
func (s *Supervisor) restartLink(seq int, reason string) {
	if cur, err := s.deps.Link.Current(); err == nil && cur.Seq == seq {
		s.deps.Link.Restart(reason)
	}
}

// regOK says whether the last observation found the modem registered.
func (s *Supervisor) regOK() bool {
	r := s.health.last.reg
	return r != nil && r.Registered()
}
