package chaos

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// moTo are the destinations of MO requests.
var moTo = []string{"5432145", "+491701234567", "+4915112345678"}

// driver takes the random decisions of one tick: traffic and faults, each
// with its own chance, in a fixed order so a seed replays the schedule.
type driver struct {
	r      *rig
	f      *faults
	rng    *rand.Rand
	n      *counts
	mt, mo int
}

// newDriver builds a run's rig and driver on the seed of -chaos.seed, or
// one from the clock; stream keeps the runs' random streams apart.
func newDriver(t *testing.T, name string, stream uint64) (*driver, uint64) {
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano()%999_999) + 1
	}
	rng := rand.New(rand.NewPCG(seed, stream))
	r := newRig(t, name)
	n := &counts{}
	return &driver{r: r, f: newFaults(r, rng, n), rng: rng, n: n}, seed
}

// tick waits one tick, ends the faults whose time is up, restarts an
// agent that died on its own and publishes again what was never answered.
func (d *driver) tick() {
	time.Sleep(tick)
	d.f.advance()
	d.r.alive()
	d.r.obs.ops.resend(time.Now(), 2)
}

// chance is the probability per tick of each action.
type chance struct {
	mt, mo, garbage, broker, hangup, silence, cms, bsc, coverage, recover float64
}

func (d *driver) step(p chance) {
	if d.rng.Float64() < p.mt {
		d.injectMT()
	}
	if d.rng.Float64() < p.mo {
		d.requestMO()
	}
	if d.rng.Float64() < p.garbage {
		d.f.garbage()
	}
	if d.rng.Float64() < p.broker {
		d.f.brokerOutage(4, 16)
	}
	if d.rng.Float64() < p.hangup {
		d.f.hangUp(1, 8)
	}
	if d.rng.Float64() < p.silence {
		d.f.silence(4, 20)
	}
	if d.rng.Float64() < p.cms {
		d.f.cmsWindow(4, 12)
	}
	if d.rng.Float64() < p.bsc {
		d.f.bscFault()
	}
	if d.rng.Float64() < p.coverage {
		d.f.coverage(8, 40)
	}
	if d.rng.Float64() < p.recover {
		d.requestRecovery()
	}
}

// force injects fault kind i (of forced), so a short run sees each one.
func (d *driver) force(i int) {
	switch i {
	case 0:
		d.f.brokerOutage(4, 16)
	case 1:
		d.f.hangUp(1, 8)
	case 2:
		d.f.silence(4, 20)
	case 3:
		d.f.garbage()
	case 4:
		d.f.cmsWindow(4, 12)
	case 5:
		d.f.bscFault()
	case 6:
		d.f.coverage(8, 40)
	case 7:
		d.requestRecovery()
	}
}

const forced = 8

// clockGrain: the agents' clock offsets are whole multiples of it, so an
// event's stamp tells which offset it was made under (see realTime).
const clockGrain = 2 * time.Hour

// clockOffsets run from a clock 20 years slow (an RTC-less board that
// boots at its image's build date) to one three days fast: steps longer
// than every budget window and than the 24 h a concatenated SMS waits
// for its parts.
const (
	clockSlow = -20 * 365 * 12 * clockGrain
	clockFast = 36 * clockGrain
)

var clockOffsets = []time.Duration{0, clockGrain, -clockGrain, 5 * clockGrain, -5 * clockGrain, clockFast, clockSlow}

// clockStep sets the clock of the next incarnation: the wall clock
// stepped while the agent was down, as NTP steps it on a gateway without
// an RTC. The first restarts step it forward, then back, so a short run
// sees both.
func (d *driver) clockStep(restart int) {
	var off time.Duration
	switch {
	case restart == 1:
		off = clockFast
	case restart == 2:
		off = clockSlow
	case d.rng.Float64() < 0.2:
		off = clockOffsets[d.rng.IntN(len(clockOffsets))]
	default:
		return
	}
	if off != d.r.offset {
		d.r.offset = off
		d.n.ClockSteps++
	}
}

func (d *driver) injectMT() {
	d.mt++
	d.f.mt(d.r.obs.ops, d.mt)
}

// requestMO asks for an MO SMS: mostly one part, sometimes two.
func (d *driver) requestMO() {
	d.mo++
	ops := d.r.obs.ops
	id := fmt.Sprintf("mo-%d-%d", ops.run, d.mo)
	text := fmt.Sprintf("mo %d-%d %s", ops.run, d.mo, words(d.rng, 3+d.rng.IntN(10)))
	if d.rng.IntN(5) == 0 {
		text += " " + words(d.rng, 40)
		text = text[:min(len(text), 161+d.rng.IntN(140))]
	}
	ops.send(id, moTo[d.rng.IntN(len(moTo))], text, d.rng.IntN(3) == 0)
}

func (d *driver) requestRecovery() {
	d.n.Recover++
	d.r.obs.publish("recover", fmt.Sprintf(`{"id":"rc-%d-%d","step":%q}`, d.r.obs.ops.run, d.n.Recover, steps[d.rng.IntN(len(steps))]))
}

// chaosChances: a fault of some kind every few seconds, two SMS a second
// or so in each direction at most.
var chaosChances = chance{mt: 0.12, mo: 0.08, garbage: 0.02, broker: 0.012, hangup: 0.012, silence: 0.01, cms: 0.015, bsc: 0.02, coverage: 0.006, recover: 0.01}

// TestChaos runs the agent through -chaos.cycles kill cycles: in each the
// agent runs for 1.5 to 5 s under seeded faults and traffic, then dies by
// SIGKILL and is restarted at once on the same state, as systemd's
// Restart=on-failure would. After the last cycle the faults stop, and a
// quiet period lets everything drain before the invariants are checked.
//
// Clock steps are made between incarnations: each runs with its own
// offset from the machine's clock, from 20 years slow to 3 days fast.
// Within a process Go measures elapsed time on the monotonic clock,
// which no step moves; what a step can break is what outlives the
// process.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("kill cycles of the real agent (about a minute)")
	}
	d, seed := newDriver(t, "chaos", 0x636861)
	r, n, rng := d.r, d.n, d.rng
	cycles := *flagCycles
	t.Logf("chaos: seed %d, %d cycles (replay: scripts/chaos %d %d)", seed, cycles, cycles, seed)
	began := time.Now()
	r.start()
	for c := 1; c <= cycles; c++ {
		run := 6 + rng.IntN(15) // 1.5 to 5 s
		for i := range run {
			d.tick()
			if i == 0 && c <= forced {
				d.force(c - 1)
			}
			d.step(chaosChances)
		}
		if c == cycles {
			d.f.clear()
		}
		n.Kills++
		r.kill()
		d.clockStep(c)
		r.start()
		if c%10 == 0 || c == cycles {
			t.Logf("cycle %d/%d after %s: MT %d, MO %d, broker restarts %d, hang-ups %d, silences %d", c, cycles,
				time.Since(began).Round(time.Second), d.mt, d.mo, n.BrokerRestarts, n.HangUps, n.Silences)
		}
	}
	chaosTime := time.Since(began)
	o, clean := r.drain(t, cycles > 50)
	invs, f := r.check(o, clean)
	head := fmt.Sprintf("chaos: seed %d, %d kill cycles, %s of chaos + %s quiet (replay: scripts/chaos %d %d)\nBSC API calls %d, token requests %d\n",
		seed, cycles, chaosTime.Round(time.Second), (time.Since(began) - chaosTime).Round(time.Second), cycles, seed,
		r.platform.APIRequests(), r.platform.TokenRequests())
	report(t, head, n, f, invs)
}

// drain is the quiet period: no faults, no new traffic; the operator keeps
// re-publishing what was never answered until everything has settled (or
// the time is up: an MO that met transient errors waits out the outbox's
// back-off, 30 s doubling). Then the agent is stopped with SIGTERM, and
// what its store still holds is read.
func (r *rig) drain(t *testing.T, long bool) (outcome, error) {
	limit := 3 * time.Minute
	if long {
		limit = 10 * time.Minute
	}
	began := time.Now()
	for {
		time.Sleep(500 * time.Millisecond)
		r.alive()
		r.obs.ops.resend(time.Now(), 4)
		if r.outcome().settled() {
			t.Logf("quiet period: settled after %s", time.Since(began).Round(time.Second))
			break
		}
		if time.Since(began) > limit {
			t.Logf("quiet period: not settled after %s", limit)
			break
		}
	}
	// Late redeliveries still count as duplicates.
	time.Sleep(2 * time.Second)
	clean := r.stop(15 * time.Second)
	time.Sleep(500 * time.Millisecond)
	o := r.outcome()
	r.unfinished(&o)
	return o, clean
}
