// Package chaos runs the real `cellagent run` binary the way systemd does,
// against the BG96 simulator on a pty (in this process, behind a stable
// symlink), the BSC platform simulator wired to it, and a real
// mosquitto, while a driver injects faults at seeded random moments and
// plays operator: MT SMS into the simulator, MO SMS through cmd/sms/send.
// At the end it checks that nothing was lost (see check_test.go).
//
// TestChaos kills the agent with SIGKILL at every cycle's end; a short run
// is part of `go test ./...`, scripts/chaos runs a long one. TestSoak
// (scripts/soak only) runs one agent for a long time under a steady load
// and samples its memory and goroutines.
package chaos

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cellagent/agent/config"
	"cellagent/agent/lab"
	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
	"cellagent/transport/bsc/bscemu"
	"cellagent/transport/bsc/bscemu/bscemutest"
	"cellagent/transport/mqtt/mqtttest"
)

var (
	flagCycles = flag.Int("chaos.cycles", envInt("CHAOS_CYCLES", 10), "kill cycles of TestChaos (env CHAOS_CYCLES)")
	flagSeed   = flag.Uint64("chaos.seed", uint64(envInt("CHAOS_SEED", 0)), "seed of the fault schedule; 0 picks one from the clock (env CHAOS_SEED)")
	flagDir    = flag.String("chaos.dir", os.Getenv("CHAOS_DIR"), "keep the run's files (agent log, MQTT traffic, config) in this directory (env CHAOS_DIR)")
	flagSoak   = flag.Duration("soak.duration", 0, "run TestSoak this long (scripts/soak); 0 skips it")
	flagEvery  = flag.Duration("soak.every", 30*time.Second, "TestSoak's sampling interval")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// iccid is the simulated SIM as the platform knows it (the modem prints it
// with the filler F, as AT+QCCID does). The device id is set, so the
// topics do not wait for the modem to tell the ICCID.
const (
	iccid    = "89882280666012345678"
	deviceID = "chaos-gw"
	bscUser  = "admin"
	bscPass  = "chaos-platform-password"
)

// home is the registration the simulated network grants when all is well;
// a coverage loss takes it away and gives it back.
var home = bg96emu.Registration{Stat: bg96emu.Home, Area: "1A2B", Cell: "01A2B3C", AcT: bg96emu.ActEMTC}

// rig is one run's world: simulators, broker, the agent process and the
// operator's MQTT client.
type rig struct {
	t        *testing.T
	dir      string
	bin      string
	modem    *bg96emu.Modem
	platform *bscemu.Server
	broker   *mqtttest.Broker
	cfgPath  string
	cfg      config.Config
	runDir   string // the agent's --runtime-dir (status.json)
	log      *os.File
	obs      *observer

	agent  *proc
	starts int
	// offset is the wall clock of the next incarnation, ahead of the
	// machine's (behind when negative); runs records each one's.
	offset time.Duration
	runs   []incarnation
	// crashes records exits the driver did not cause: an agent must never
	// stop on its own, whatever the faults.
	crashes []string
}

// incarnation is when an agent started and how far its clock was off.
type incarnation struct {
	start  time.Time
	offset time.Duration
}

// proc is one incarnation of the agent.
type proc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	killed bool // by the driver, so its exit is expected
}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// agentBinary builds cellagent once per test binary, without the race
// detector: it is the product under test, as a gateway would run it, with
// the chaosclock tag, which lets the rig set each incarnation's clock.
func agentBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "cellagent-chaos-bin-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "cellagent")
		// Built as `make build` builds the shipped one (static, stripped):
		// a cgo build maps libc too, 1.5 MiB more in the soak's RSS.
		cmd := exec.Command("go", "build", "-tags", "chaosclock", "-trimpath", "-ldflags", "-s -w", "-o", binPath, "cellagent/cmd/cellagent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build cellagent: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// workDir is where a run keeps its files: -chaos.dir when given (kept for
// a post-mortem), else a temporary directory.
func workDir(t *testing.T, name string) string {
	t.Helper()
	if *flagDir == "" {
		return t.TempDir()
	}
	dir := filepath.Join(*flagDir, name)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newRig starts the simulators, the broker and the operator's client, and
// writes the agent's configuration; start runs the agent.
func newRig(t *testing.T, name string) *rig {
	t.Helper()
	r := &rig{t: t, dir: workDir(t, name), bin: agentBinary(t)}
	r.runDir = filepath.Join(r.dir, "run")
	if err := os.MkdirAll(r.runDir, 0o700); err != nil {
		t.Fatal(err)
	}
	var err error
	if r.log, err = os.OpenFile(filepath.Join(r.dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.log.Close() })

	r.broker = mqtttest.Start(t, mqtttest.Options{})
	r.platform = bscemutest.Start(t, bscemu.Config{
		Users:      map[string]string{bscUser: bscPass},
		SIMs:       []bscemu.SIMConfig{{ICCID: iccid}},
		ResetDelay: time.Second,
	}, nil)
	r.modem, err = lab.StartModem(context.Background(), r.platform, bg96emu.Config{
		ICCID: iccid + "F", BootDelay: 300 * time.Millisecond, RegisterDelay: 300 * time.Millisecond,
		ReportDelay: 300 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.modem.Close() })
	tty := bg96emutest.Link(t, r.modem, r.dir)
	r.writeConfig(tty)
	r.obs = newObserver(t, r.broker.URL(), "cellagent/v1/"+deviceID+"/", filepath.Join(r.dir, "mqtt.log"))
	// Registered after the broker's and the simulators' clean-ups, so it
	// runs first: no agent outlives the test.
	t.Cleanup(r.reap)
	return r
}

// writeConfig writes the agent's file: MQTT commands on, [bsc] against the
// platform simulator, limits wide enough for the traffic, and a ladder
// that acts within seconds, with budgets a long run exhausts.
func (r *rig) writeConfig(tty string) {
	pw := filepath.Join(r.dir, "bsc-password")
	if err := os.WriteFile(pw, []byte(bscPass+"\n"), 0o600); err != nil {
		r.t.Fatal(err)
	}
	body := fmt.Sprintf(`[device]
id = %q
[modem]
port = %q
[sms]
per_minute = 0
per_hour = 0
per_day = 100000
per_destination_per_day = 0
[bsc]
base_url = %q
username = %q
password_file = %q
timeout = "3s"
[mqtt]
broker = %q
allow_plaintext = true
keepalive = "10s"
commands = true
commands_per_minute = 600
[telemetry]
poll = "2s"
[supervisor]
poll = "1s"
at_timeout = "800ms"
unresponsive_after = "3s"
modem_timeout = "15s"
observe = "2s"
backoff_min = "2s"
backoff_max = "20s"
park = "10s"
[supervisor.steps.reattach]
wait = "1s"
per_hour = 6
per_day = 20
[supervisor.steps.cfun-reset]
wait = "2s"
per_hour = 4
per_day = 10
[supervisor.steps.quota]
per_hour = 6
per_day = 20
[supervisor.steps.bsc-reset]
wait = "3s"
per_hour = 2
per_day = 3
min_interval = "2m"
[supervisor.steps.reboot]
wait = "2s"
per_hour = 3
per_day = 6
min_interval = "20s"
[state]
dir = %q
[log]
level = "info"
`, deviceID, tty, r.platform.URL(), bscUser, pw, r.broker.URL(), filepath.Join(r.dir, "state"))
	r.cfgPath = filepath.Join(r.dir, "cellagent.toml")
	if err := os.WriteFile(r.cfgPath, []byte(body), 0o600); err != nil {
		r.t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(body), r.cfgPath)
	if err != nil {
		r.t.Fatalf("chaos config: %v", err)
	}
	r.cfg = cfg
}

// start runs a new incarnation of the agent on the same state directory,
// as systemd's Restart= does.
func (r *rig) start() {
	r.t.Helper()
	r.starts++
	now := time.Now()
	fmt.Fprintf(r.log, "=== chaos: start %d at %s, clock offset %s\n", r.starts, now.Format(time.RFC3339Nano), r.offset)
	r.runs = append(r.runs, incarnation{start: now, offset: r.offset})
	cmd := exec.Command(r.bin, "run", "--config", r.cfgPath, "--runtime-dir", r.runDir)
	cmd.Env = append(os.Environ(), "CELLAGENT_CHAOS_CLOCK_OFFSET="+r.offset.String())
	cmd.Stdout, cmd.Stderr = r.log, r.log
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start the agent: %v", err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	r.agent = p
}

// realTime maps a time the agents stamped (unix seconds) back to the
// machine's clock: it is that of the one offset under which some
// incarnation was running at the stamp. Offsets are whole multiples of
// clockGrain apart and a run is shorter, so at most one fits.
func (r *rig) realTime(ts int64) (int64, bool) {
	const slack = 2 // seconds: stamps are whole seconds
	var found []time.Duration
	for i, in := range r.runs {
		end := time.Now()
		if i+1 < len(r.runs) {
			end = r.runs[i+1].start
		}
		real := ts - int64(in.offset/time.Second)
		if real >= in.start.Unix()-slack && real <= end.Unix()+slack && !slices.Contains(found, in.offset) {
			found = append(found, in.offset)
		}
	}
	if len(found) != 1 {
		return 0, false
	}
	return ts - int64(found[0]/time.Second), true
}

// alive restarts an agent that exited without being told to, and records
// the exit: it is a failure of the run.
func (r *rig) alive() {
	select {
	case <-r.agent.done:
	default:
		return
	}
	if r.agent.killed {
		return
	}
	r.crashes = append(r.crashes, fmt.Sprintf("start %d exited on its own: %v", r.starts, r.agent.err))
	r.start()
}

// kill ends the agent with SIGKILL and waits for it.
func (r *rig) kill() {
	r.agent.killed = true
	_ = r.agent.cmd.Process.Kill()
	<-r.agent.done
}

// stop ends the agent as systemd stops a service, and returns how it
// exited.
func (r *rig) stop(within time.Duration) error {
	r.agent.killed = true
	if err := r.agent.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	select {
	case <-r.agent.done:
		return r.agent.err
	case <-time.After(within):
		r.kill()
		return fmt.Errorf("no exit within %s of SIGTERM", within)
	}
}

func (r *rig) reap() {
	if r.agent != nil {
		select {
		case <-r.agent.done:
		default:
			r.kill()
		}
	}
	if r.t.Failed() {
		r.t.Logf("run files in %s (agent.log, mqtt.log, cellagent.toml); keep them with -chaos.dir", r.dir)
	}
}

// pid is the running agent's process id.
func (r *rig) pid() int { return r.agent.cmd.Process.Pid }

// tick is the driver's clock: every decision is taken on a tick and every
// fault lasts a number of ticks, so a seed replays the same schedule
// whatever the agent does meanwhile.
const tick = 250 * time.Millisecond

// faults is the driver's set of injected misbehaviours: each kind runs one
// at a time, and each has a way back, so the quiet period can switch them
// all off.
type faults struct {
	r   *rig
	rng *rand.Rand
	n   *counts
	now int // ticks so far
	// until holds the last tick of each active fault; undo its way back.
	until map[string]int
	undo  map[string]func()
}

// counts are the run's figures.
type counts struct {
	Kills, BrokerRestarts, HangUps, Silences, Garbage, CMSWindows, Coverage, Recover, ClockSteps int
	BSC                                                                                          map[string]int
	MTSingle, MTMulti                                                                            int
}

func newFaults(r *rig, rng *rand.Rand, n *counts) *faults {
	n.BSC = map[string]int{}
	return &faults{r: r, rng: rng, n: n, until: map[string]int{}, undo: map[string]func(){}}
}

func (f *faults) active(kind string) bool { _, ok := f.until[kind]; return ok }

func (f *faults) begin(kind string, ticks int, undo func()) {
	f.until[kind] = f.now + ticks
	f.undo[kind] = undo
}

// advance moves the clock one tick and ends the faults whose time is up,
// in a fixed order.
func (f *faults) advance() {
	f.now++
	for _, kind := range faultKinds {
		if at, ok := f.until[kind]; ok && f.now >= at {
			f.end(kind)
		}
	}
}

var faultKinds = []string{"broker", "hangup", "silence", "cms", "coverage"}

func (f *faults) end(kind string) {
	if u := f.undo[kind]; u != nil {
		u()
	}
	delete(f.until, kind)
	delete(f.undo, kind)
}

// clear ends every fault and drops the simulators' queued ones.
func (f *faults) clear() {
	for _, kind := range faultKinds {
		if f.active(kind) {
			f.end(kind)
		}
	}
	f.r.modem.ClearFaults()
	f.r.platform.ClearFaults()
	if err := f.r.modem.SetRegistration(bg96emu.AllDomains, home); err != nil {
		f.r.t.Fatal(err)
	}
}

// ticks picks a duration of lo to hi ticks.
func (f *faults) ticks(lo, hi int) int { return lo + f.rng.IntN(hi-lo+1) }

// brokerOutage stops mosquitto (SIGTERM, which saves its sessions) and
// starts it again on the same port lo to hi ticks later.
func (f *faults) brokerOutage(lo, hi int) {
	if f.active("broker") {
		return
	}
	f.n.BrokerRestarts++
	f.r.broker.Stop()
	f.begin("broker", f.ticks(lo, hi), f.r.broker.Start)
}

// hangUp drops the modem off the bus; the simulator brings a new pty
// behind the same symlink after a while.
func (f *faults) hangUp(lo, hi int) {
	if f.active("hangup") {
		return
	}
	n := f.ticks(lo, hi)
	if err := f.r.modem.HangUp(time.Duration(n) * tick); err != nil {
		f.r.t.Fatal(err)
	}
	f.n.HangUps++
	f.begin("hangup", n, nil)
}

// silence makes the modem's firmware hang: at once, or after a few more
// answers.
func (f *faults) silence(lo, hi int) {
	if f.active("silence") {
		return
	}
	if f.rng.IntN(2) == 0 {
		f.r.modem.Silence(true)
	} else if err := f.r.modem.StopAfter(f.rng.IntN(6)); err != nil {
		f.r.t.Fatal(err)
	}
	f.n.Silences++
	f.begin("silence", f.ticks(lo, hi), func() { f.r.modem.Silence(false) })
}

// garbage puts random bytes on the line, line endings included.
func (f *faults) garbage() {
	b := make([]byte, 1+f.rng.IntN(64))
	for i := range b {
		b[i] = byte(f.rng.IntN(256))
	}
	f.r.modem.Garbage(b)
	f.n.Garbage++
}

// cmsCodes are the send failures a window picks from: transient ones
// (retried with back-off), a permanent one and an unclassified one.
var cmsCodes = []int{332, 42, 331, 21, 500}

// cmsWindow makes every AT+CMGS fail for a while. The simulator removes
// command faults only all at once, so the way back puts a silence that is
// still on back in place.
func (f *faults) cmsWindow(lo, hi int) {
	if f.active("cms") {
		return
	}
	if err := f.r.modem.CMSErrorOn("+CMGS", cmsCodes[f.rng.IntN(len(cmsCodes))]); err != nil {
		f.r.t.Fatal(err)
	}
	f.n.CMSWindows++
	f.begin("cms", f.ticks(lo, hi), func() {
		f.r.modem.ClearFaults()
		if f.active("silence") {
			f.r.modem.Silence(true)
		}
	})
}

// coverage takes the network away (all domains searching) and gives it
// back, which drives the ladder up to the operator API steps.
func (f *faults) coverage(lo, hi int) {
	if f.active("coverage") {
		return
	}
	if err := f.r.modem.SetRegistration(bg96emu.AllDomains, bg96emu.Registration{Stat: bg96emu.Searching}); err != nil {
		f.r.t.Fatal(err)
	}
	f.n.Coverage++
	f.begin("coverage", f.ticks(lo, hi), func() {
		if err := f.r.modem.SetRegistration(bg96emu.AllDomains, home); err != nil {
			f.r.t.Fatal(err)
		}
	})
}

// bscFault queues a platform misbehaviour for the agent's next API calls:
// a revoked token (401 on the next call), 429, 500, or a slow answer.
func (f *faults) bscFault() {
	p := f.r.platform
	n := 1 + f.rng.IntN(3)
	switch k := f.rng.IntN(4); k {
	case 0:
		p.RevokeTokens()
		f.n.BSC["401"]++
	case 1:
		p.InjectFault(bscemu.Fault{Kind: bscemu.FaultThrottle, Count: n, RetryAfter: strconv.Itoa(1 + f.rng.IntN(3))})
		f.n.BSC["429"]++
	case 2:
		p.InjectFault(bscemu.Fault{Kind: bscemu.FaultServerError, Count: n, Status: 500})
		f.n.BSC["500"]++
	default:
		p.InjectFault(bscemu.Fault{Kind: bscemu.FaultSlow, Count: 1, Delay: time.Duration(f.ticks(4, 20)) * tick})
		f.n.BSC["slow"]++
	}
}

// steps are the ladder steps an operator may ask for with cmd/recover.
var steps = []string{"reattach", "cfun-reset", "quota", "bsc-reset", "reboot"}

// mtFrom are the originators of MT messages.
var mtFrom = []string{"+491701234501", "+491701234502", "+4915112345678", "+447700900123"}

// mt delivers one MT SMS into the simulated network, single or
// concatenated (then sometimes with its parts out of order), and returns
// its text, which is unique in the run.
func (f *faults) mt(ops *operator, n int) {
	from := mtFrom[f.rng.IntN(len(mtFrom))]
	tag := fmt.Sprintf("mt %d-%d", ops.run, n)
	if f.rng.IntN(3) > 0 {
		text := tag + " " + words(f.rng, 5+f.rng.IntN(20))
		if err := f.r.modem.DeliverText(from, text); err != nil {
			f.r.t.Fatal(err)
		}
		ops.sentMT(text, from, 1)
		f.n.MTSingle++
		return
	}
	// 161..459 GSM 7-bit characters: two or three parts of 153.
	text := tag + " " + words(f.rng, 200)
	text = text[:161+f.rng.IntN(299)]
	parts := (len(text) + 152) / 153
	order := f.rng.Perm(parts)
	for i := range order {
		order[i]++
	}
	if err := f.r.modem.DeliverParts(from, text, order...); err != nil {
		f.r.t.Fatal(err)
	}
	ops.sentMT(text, from, parts)
	f.n.MTMulti++
}

// words makes GSM 7-bit text from a small vocabulary.
func words(rng *rand.Rand, n int) string {
	vocab := []string{"signal", "gateway", "reset", "meter", "valve", "open", "close", "status", "ok", "alarm", "42", "pump", "level", "low", "high"}
	w := make([]string, n)
	for i := range w {
		w[i] = vocab[rng.IntN(len(vocab))]
	}
	return strings.Join(w, " ")
}
