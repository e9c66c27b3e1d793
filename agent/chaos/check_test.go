package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"cellagent/agent"
	"cellagent/agent/store"
	"cellagent/modem/bg96emu"
)

// invariant is one property checked item by item: every MT, every MO,
// every recovery step. Failures keep a few examples for the report.
type invariant struct {
	name           string
	passed, failed int
	examples       []string
}

func (v *invariant) check(ok bool, format string, args ...any) {
	if ok {
		v.passed++
		return
	}
	v.failed++
	if len(v.examples) < 8 {
		v.examples = append(v.examples, fmt.Sprintf(format, args...))
	}
}

// outcome is what the run ended with, for the checks and the report.
type outcome struct {
	cmds    []moCmd
	mts     []mtMsg
	in      []smsIn
	results []outResult
	events  []event
	recover []cmdResult
	sent    []bg96emu.SentMessage
	stored  []bg96emu.StoredMessage
	pending int
	status  *agent.Status
	// waiting are accepted MO requests the agent's store still holds,
	// read after the agent stopped, with when that was.
	waiting map[string]store.OutboxItem
	stopped time.Time
}

func (r *rig) outcome() outcome {
	var o outcome
	o.cmds, o.mts = r.obs.ops.snapshot()
	o.in, o.results, o.events, o.recover = r.obs.traffic()
	o.sent, o.stored, o.pending = r.modem.SentMessages(), r.modem.Stored(), r.modem.Pending()
	if b, err := os.ReadFile(filepath.Join(r.runDir, agent.StatusFile)); err == nil {
		var st agent.Status
		if json.Unmarshal(b, &st) == nil {
			o.status = &st
		}
	}
	return o
}

// unfinished reads, from the store of the stopped agent, the accepted MO
// requests that are neither sent nor reported failed: a request that met
// transient errors waits out the outbox's back-off (30 s doubling to 30
// min), which a quiet period of minutes may not see the end of.
func (r *rig) unfinished(o *outcome) {
	o.stopped = time.Now()
	o.waiting = map[string]store.OutboxItem{}
	failed := map[string]bool{}
	for _, res := range o.results {
		failed[res.ID] = failed[res.ID] || res.State == "failed"
	}
	sent := sentTexts(o.sent)
	st, err := store.Open(filepath.Join(r.dir, "state", agent.StoreFile), store.Options{})
	if err != nil {
		r.t.Errorf("open the agent's store after the run: %v", err)
		return
	}
	defer st.Close()
	for _, c := range o.cmds {
		if c.state != accepted || sent[c.Text] > 0 || failed[c.ID] {
			continue
		}
		if it, err := st.Get(c.ID); err == nil {
			o.waiting[c.ID] = it
		}
	}
}

// settled says whether everything the run put in motion has come out:
// every command answered, every accepted MO with a final result, every MT
// published, the SIM and the network empty.
func (o outcome) settled() bool {
	final := map[string]bool{}
	for _, res := range o.results {
		if res.State == "sent" || res.State == "delivered" || res.State == "failed" {
			final[res.ID] = true
		}
	}
	for _, c := range o.cmds {
		if c.state == pending || c.state == accepted && !final[c.ID] {
			return false
		}
	}
	seen := map[string]bool{}
	for _, m := range o.in {
		seen[m.Text] = true
	}
	for _, m := range o.mts {
		if !seen[m.Text] {
			return false
		}
	}
	return len(o.stored) == 0 && o.pending == 0
}

// sentTexts joins the simulator's sent segments into whole messages:
// the outbox sends one message at a time, so a concatenated message's
// parts follow each other, and a part 1 for the same reference starts a
// new message (a resend after a restart uses a new reference anyway).
func sentTexts(sent []bg96emu.SentMessage) map[string]int {
	out := map[string]int{}
	type key struct {
		to         string
		ref, total int
	}
	open := map[key][]string{}
	for _, s := range sent {
		total, seq, ref, ok := 0, 0, 0, false
		if s.TPDU != nil {
			total, seq, ref, ok = s.TPDU.ConcatInfo()
		}
		if !ok || total <= 1 {
			out[s.Text]++
			continue
		}
		k := key{s.To, ref, total}
		if seq == 1 {
			open[k] = nil
		}
		parts := append(open[k], s.Text)
		if len(parts) == total {
			out[strings.Join(parts, "")]++
			delete(open, k)
			continue
		}
		open[k] = parts
	}
	return out
}

// figures are the MT and MO counts of the report.
type figures struct {
	mtSent, mtReceived, mtDeliveries, mtDuplicates                            int
	moCommands, moAccepted, moRefused, moUnanswered, moSent, moFailed, moLost int
	moSentTwice, moWaiting, moOverdue, published, republished, transient      int
	steps                                                                     map[string]int
	recoverOK, recoverRefused                                                 int
	budgetViolations                                                          int
}

// check runs the invariants over the outcome.
func (r *rig) check(o outcome, cleanExit error) ([]*invariant, figures) {
	var f figures
	f.steps = map[string]int{}
	mk := func(name string) *invariant { return &invariant{name: name} }
	mtDelivered, mtDedupe := mk("mt delivered whole"), mk("mt de-duplicable by id")
	moAccounted, moResult := mk("mo accepted: sent, failed or due"), mk("mo outcome on sms/out/result")
	moAnswered, moRequested := mk("mo command answered"), mk("mo sent only on request")
	simEmpty, budgets := mk("sim and network empty"), mk("recovery budgets")
	history, alive := mk("budget history kept"), mk("agent never exits on its own")
	clean := mk("clean stop at the end")

	// MT: every injected text published, complete, under one id that no
	// other text shares.
	idsOf := map[string]map[string]bool{}
	textOf := map[string]string{}
	for _, m := range o.in {
		if idsOf[m.Text] == nil {
			idsOf[m.Text] = map[string]bool{}
		}
		idsOf[m.Text][m.ID] = true
		f.mtDeliveries++
		if prev, ok := textOf[m.ID]; ok && prev != m.Text {
			mtDedupe.check(false, "id %s names two texts: %q and %q", m.ID, prev, m.Text)
		}
		textOf[m.ID] = m.Text
		if len(m.Missing) > 0 || m.Error != "" {
			mtDelivered.check(false, "published incomplete: id %s missing %v error %q", m.ID, m.Missing, m.Error)
		}
	}
	f.mtSent = len(o.mts)
	for _, m := range o.mts {
		ids := idsOf[m.Text]
		mtDelivered.check(len(ids) > 0, "MT from %s in %d parts never published: %.40q…", m.From, m.Parts, m.Text)
		if len(ids) > 0 {
			f.mtReceived++
			mtDedupe.check(len(ids) == 1, "MT %.30q… published under %d ids", m.Text, len(ids))
		}
	}
	f.mtDuplicates = f.mtDeliveries - len(idsOf)

	// MO: an accepted request is sent, or reported failed; what it ended
	// as comes out on sms/out/result; nothing is sent that nobody asked
	// for, nor what was refused.
	final := map[string]string{}
	for _, res := range o.results {
		switch res.State {
		case "failed":
			final[res.ID] = "failed"
		case "sent", "delivered":
			if final[res.ID] != "failed" {
				final[res.ID] = "sent"
			}
		}
	}
	sent := sentTexts(o.sent)
	requested := map[string]bool{}
	f.moCommands = len(o.cmds)
	for _, c := range o.cmds {
		f.published += c.publishes
		f.transient += c.transient
		moAnswered.check(c.state != pending, "command %s never answered after %d publishes", c.ID, c.publishes)
		switch c.state {
		case pending:
			f.moUnanswered++
		case refused:
			f.moRefused++
			moRequested.check(sent[c.Text] == 0, "refused command %s (%s) was sent", c.ID, c.reason)
			continue
		}
		requested[c.Text] = true
		if c.state != accepted {
			continue
		}
		f.moAccepted++
		n := sent[c.Text]
		if n > 1 {
			f.moSentTwice++
		}
		if it, ok := o.waiting[c.ID]; ok && n == 0 && final[c.ID] == "" {
			// Not lost if it is still in the outbox with its retry ahead;
			// one whose time has come should have been sent.
			due := it.State == store.Queued && it.NotBefore.After(o.stopped)
			when := "at once"
			if !it.NotBefore.IsZero() {
				when = "from " + it.NotBefore.Format(time.TimeOnly)
			}
			moAccounted.check(due, "accepted MO %s is %s in the store, attempt %d, due %s (last error %q): overdue",
				c.ID, it.State, it.Attempts, when, it.LastErr)
			if due {
				f.moWaiting++
			} else {
				f.moOverdue++
			}
			continue
		}
		switch {
		case n > 0:
			f.moSent++
		case final[c.ID] == "failed":
			f.moFailed++
		default:
			f.moLost++
		}
		moAccounted.check(n > 0 || final[c.ID] == "failed", "accepted MO %s (%d parts) neither sent nor reported failed", c.ID, c.Parts)
		moResult.check(final[c.ID] != "", "accepted MO %s has no final sms/out/result (sent %d times)", c.ID, n)
		if final[c.ID] == "sent" {
			moResult.check(n > 0, "MO %s reported sent, but the modem never got it", c.ID)
		}
	}
	f.republished = r.obs.ops.republished
	for text, n := range sent {
		moRequested.check(requested[text], "sent %d times without a request: %.40q", n, text)
	}

	simEmpty.check(len(o.stored) == 0, "%d messages left on the SIM", len(o.stored))
	simEmpty.check(o.pending == 0, "%d messages still held by the network", o.pending)

	f.budgetViolations = r.checkBudgets(o, budgets, history)
	for _, res := range o.recover {
		if res.OK {
			f.recoverOK++
		} else {
			f.recoverRefused++
		}
	}
	for _, e := range dedupeEvents(o.events) {
		if taken(e) {
			f.steps[e.attr("step")]++
		}
	}

	alive.check(len(r.crashes) == 0, "%s", strings.Join(r.crashes, "; "))
	clean.check(cleanExit == nil, "SIGTERM at the end: %v", cleanExit)
	return []*invariant{mtDelivered, mtDedupe, moAnswered, moAccounted, moResult, moRequested, simEmpty, budgets, history, alive, clean}, f
}

// dedupeEvents drops redeliveries: (topic, q) names an event across
// sessions and restarts (SCHEMA.md).
func dedupeEvents(evs []event) []event {
	seen := map[uint64]bool{}
	var out []event
	for _, e := range evs {
		if seen[e.Q] {
			continue
		}
		seen[e.Q] = true
		out = append(out, e)
	}
	return out
}

// taken says whether a recovery event reports a step the ladder took, and
// so spent budget on (done, failed or quota-exhausted; a throttled call is
// given back, a skip never spent any).
func taken(e event) bool {
	if e.Type != "recovery" {
		return false
	}
	switch e.attr("outcome") {
	case "done", "failed", "quota-exhausted":
		return true
	}
	return false
}

// checkBudgets counts the steps taken per step in every sliding hour and
// day against the configured budgets, and their spacing against
// min_interval; then it checks that the ladder's own history (the status
// file's budgets) counts at least what the events show, which it could
// not after losing its history in a crash. Events are a lower bound: a
// step cut short by SIGKILL is in the history but never reported.
func (r *rig) checkBudgets(o outcome, budgets, history *invariant) int {
	byStep := map[string][]int64{}
	violations := 0
	for _, e := range dedupeEvents(o.events) {
		if taken(e) {
			// Budgets hold in real time, whatever the agent's clock said.
			ts, ok := r.realTime(e.TS)
			if !ok {
				budgets.check(false, "%s at %d (agent clock): made under no one clock offset of the run", e.attr("step"), e.TS)
				violations++
				continue
			}
			byStep[e.attr("step")] = append(byStep[e.attr("step")], ts)
		}
	}
	for _, st := range r.cfg.Supervisor.Steps.Named() {
		ts := byStep[st.Name]
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		for i, t := range ts {
			inHour, inDay := 0, 0
			for _, u := range ts[:i+1] {
				if t-u < 3600 {
					inHour++
				}
				if t-u < 86400 {
					inDay++
				}
			}
			ok := inHour <= st.PerHour && inDay <= st.PerDay
			budgets.check(ok, "%s: %d in an hour (budget %d), %d in a day (budget %d), at %s",
				st.Name, inHour, st.PerHour, inDay, st.PerDay, time.Unix(t, 0).UTC().Format(time.TimeOnly))
			if !ok {
				violations++
			}
			if i > 0 && st.MinInterval.Duration > 0 {
				gap := time.Duration(t-ts[i-1]) * time.Second
				// Event times are whole seconds.
				ok := gap+time.Second >= st.MinInterval.Duration
				budgets.check(ok, "%s: %s after the previous one, min_interval %s", st.Name, gap, st.MinInterval.Duration)
				if !ok {
					violations++
				}
			}
		}
	}
	if o.status == nil || o.status.Supervisor == nil {
		history.check(false, "no supervisor view in %s", agent.StatusFile)
		return violations
	}
	snap := o.status.Supervisor
	at, ok := r.realTime(snap.At.Unix())
	if !ok {
		history.check(false, "the supervisor view's time %s fits no clock offset of the run", snap.At)
		return violations
	}
	for _, b := range snap.Budgets {
		n := 0
		for _, t := range byStep[b.Step] {
			if t <= at && at-t < 3600 {
				n++
			}
		}
		used := b.PerHour - b.HourLeft
		history.check(used >= n || b.PerHour == 0, "%s: the ladder counts %d in the last hour, the events show %d", b.Step, used, n)
	}
	return violations
}

// report prints the figures and the invariants, and fails the test for
// every invariant that failed.
func report(t *testing.T, head string, n *counts, f figures, invs []*invariant) {
	t.Helper()
	var b strings.Builder
	b.WriteString(head)
	bsc := 0
	var kinds []string
	for _, k := range []string{"401", "429", "500", "slow"} {
		bsc += n.BSC[k]
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n.BSC[k]))
	}
	fmt.Fprintf(&b, "faults: kills %d, broker restarts %d, hang-ups %d, silences %d, garbage %d, CMS error windows %d, BSC faults %d (%s), coverage losses %d, recover requests %d (ok %d, refused %d), clock steps %d\n",
		n.Kills, n.BrokerRestarts, n.HangUps, n.Silences, n.Garbage, n.CMSWindows, bsc, strings.Join(kinds, ", "), n.Coverage, n.Recover, f.recoverOK, f.recoverRefused, n.ClockSteps)
	var steps []string
	for _, st := range []string{"reattach", "cfun-reset", "quota", "bsc-reset", "reboot", "power-cycle"} {
		steps = append(steps, fmt.Sprintf("%s %d", st, f.steps[st]))
	}
	fmt.Fprintf(&b, "recovery steps taken (from events): %s; budget violations %d\n", strings.Join(steps, ", "), f.budgetViolations)
	fmt.Fprintf(&b, "MT: sent %d (single %d, multipart %d), received %d, deliveries %d, duplicates %d\n",
		f.mtSent, n.MTSingle, n.MTMulti, f.mtReceived, f.mtDeliveries, f.mtDuplicates)
	fmt.Fprintf(&b, "MO: commands %d, publishes %d (re-publishes %d, after rate-limit/busy %d), accepted %d, refused %d, unanswered %d, sent %d, failed %d, "+
		"in the store with a retry ahead %d, in the store but overdue %d, lost %d, sent more than once %d\n",
		f.moCommands, f.published, f.republished, f.transient, f.moAccepted, f.moRefused, f.moUnanswered, f.moSent, f.moFailed,
		f.moWaiting, f.moOverdue, f.moLost, f.moSentTwice)
	b.WriteString("invariants:\n")
	failed := false
	for _, v := range invs {
		fmt.Fprintf(&b, "  %-32s %5d passed, %d failed\n", v.name, v.passed, v.failed)
		for _, e := range v.examples {
			fmt.Fprintf(&b, "      %s\n", e)
		}
		failed = failed || v.failed > 0
	}
	t.Log("\n" + b.String())
	if failed {
		t.Error("invariants failed; see the report above")
	}
}
