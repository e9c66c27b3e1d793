package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"cellagent/agent/fleetload"
	"cellagent/modem/bg96emu"
)

func runFleet(ctx context.Context, e *env, args []string) error {
	var (
		o                 fleetload.Options
		cpuProf, heapProf string
		asJSON, verbose   bool
	)
	fs := newFlags(e, "fleet", "--count N --broker URL --allow-plaintext [flags]",
		`Run N simulated BG96 modems, each on its own pty with its own agent (own
store, own device id: the SIM's ICCID), in this one process, against an MQTT
broker, with a fleet reader following them as 'cellagent fleet watch --json'
does. Seeded random signal changes, outages (registration lost, then back)
and incoming SMS keep the fleet busy. After every gateway is online and a
warm-up, it measures over a window: CPU and memory of this process (and of
the broker with --broker-pid), broker messages per second, and the latency
of telemetry to the reader. Telemetry is accelerated (poll and heartbeat
below) so a short window sees steady traffic.

The broker must be tcp:// on loopback: the latency is taken from the
agents' PUBLISH packets on the wire. scripts/bench-fleet starts mosquitto
and prints a table for several N.

Example:
  cellbench fleet --count 100 --broker tcp://127.0.0.1:1883 --allow-plaintext`)
	fs.IntVarP(&o.Count, "count", "n", 0, "number of gateways")
	fs.StringVar(&o.Broker, "broker", "", "broker URL, tcp://host:port")
	fs.BoolVar(&o.AllowPlaintext, "allow-plaintext", false, "allow the tcp:// broker (required)")
	fs.DurationVar(&o.Duration, "duration", time.Minute, "measurement window")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the random events")
	fs.DurationVar(&o.Warmup, "warmup", 10*time.Second, "wait after every gateway is online, before the window")
	fs.Float64Var(&o.StartRate, "start-rate", 100, "gateways started per second")
	fs.DurationVar(&o.Poll, "poll", 5*time.Second, "agent telemetry poll (the agent's default is 60s)")
	fs.DurationVar(&o.Heartbeat, "heartbeat", time.Minute, "agent telemetry heartbeat (the agent's default is 30m)")
	fs.DurationVar(&o.SignalEvery, "signal-every", 30*time.Second, "mean time between signal changes of one gateway; negative: none")
	fs.DurationVar(&o.OutageEvery, "outage-every", 5*time.Minute, "mean time between outages (5-30 s without registration) of one gateway; negative: none")
	fs.DurationVar(&o.SMSEvery, "sms-every", 5*time.Minute, "mean time between incoming SMS of one gateway; negative: none")
	fs.IntVar(&o.Baud, "baud", bg96emu.NoPacing, "pace the simulated lines to this rate; -1 unpaced (pacing spins up to 1.5 ms per write in the simulator)")
	fs.IntVar(&o.BrokerPID, "broker-pid", 0, "measure this process (the broker) over the window too")
	fs.StringVar(&cpuProf, "cpuprofile", "", "write a CPU profile of the window here (labels: part=agent|modem|driver|reader)")
	fs.StringVar(&heapProf, "memprofile", "", "write a heap profile at the end of the window here")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	fs.BoolVarP(&verbose, "verbose", "v", false, "log progress")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	switch {
	case o.Count <= 0:
		return usageError(errors.New("--count is required and must be positive"))
	case o.Broker == "":
		return usageError(errors.New("--broker is required, e.g. --broker tcp://127.0.0.1:1883 --allow-plaintext"))
	case strings.HasPrefix(o.Broker, "tcp://") && !o.AllowPlaintext:
		return usageError(fmt.Errorf("--broker %s is plain tcp://: add --allow-plaintext (the simulation runs on loopback)", o.Broker))
	case o.Duration <= 0:
		return usageError(fmt.Errorf("--duration %s: want a positive window", o.Duration))
	case o.Warmup == 0:
		o.Warmup = -1 // zero means none here, not the default
	}
	o.Logger = logger(e.stderr, verbose)
	for _, p := range []struct {
		path string
		w    *io.Writer
	}{{cpuProf, &o.CPUProfile}, {heapProf, &o.HeapProfile}} {
		if p.path == "" {
			continue
		}
		f, err := os.Create(p.path)
		if err != nil {
			return err
		}
		defer f.Close()
		*p.w = f
	}
	res, err := fleetload.Run(ctx, o)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		type settings struct {
			Poll, Heartbeat, SignalEvery, OutageEvery, SMSEvery time.Duration
			Baud                                                int
			Seed                                                uint64
		}
		return enc.Encode(struct {
			fleetload.Result
			KeepsUp  bool
			Settings settings
		}{res, res.KeepsUp(), settings{o.Poll, o.Heartbeat, o.SignalEvery, o.OutageEvery, o.SMSEvery, o.Baud, o.Seed}})
	}
	printFleet(e.stdout, o, res)
	return nil
}

func printFleet(w io.Writer, o fleetload.Options, r fleetload.Result) {
	n := float64(r.Count)
	win := r.Window.Seconds()
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	pace := "unpaced"
	if o.Baud > 0 {
		pace = fmt.Sprintf("paced at %d baud", o.Baud)
	}
	fmt.Fprintf(w, "fleet simulation: %d gateways (simulated BG96 on ptys, %s; agents in this process) against %s\n", r.Count, pace, o.Broker)
	fmt.Fprintf(w, "accelerated telemetry: poll %s (agent default 60s), heartbeat %s (default 30m); per gateway on average a signal change every %s, an outage every %s, an SMS every %s; seed %d\n",
		o.Poll, o.Heartbeat, o.SignalEvery, o.OutageEvery, o.SMSEvery, o.Seed)
	fmt.Fprintf(w, "all online after %s; window %.1f s\n\n", r.StartUp.Round(100*time.Millisecond), win)
	fmt.Fprintf(w, "process   RSS %.1f MiB: %.3f MiB per gateway (%.3f above the %.1f MiB before the first)\n",
		mib(r.Process.RSSMax), mib(r.Process.RSSMax)/n, (mib(r.Process.RSSMax)-mib(r.BaseRSS))/n, mib(r.BaseRSS))
	cpu := r.Process.CPU.Seconds() / win
	fmt.Fprintf(w, "          CPU %.1f %% of a core: %.4f %% per gateway\n", 100*cpu, 100*cpu/n)
	fmt.Fprintf(w, "          %d threads, %d open files, %d goroutines, %.1f MiB heap in use\n", r.Threads, r.FDs, r.Goroutines, mib(r.HeapInuse))
	if b := r.Broker; b != nil {
		bc := b.CPU.Seconds() / win
		fmt.Fprintf(w, "broker    RSS %.1f MiB (%.1f KiB per gateway), CPU %.1f %% of a core (%.4f %% per gateway)\n",
			mib(b.RSSMax), float64(b.RSSMax)/1024/n, 100*bc, 100*bc/n)
	}
	fmt.Fprintf(w, "messages  %.1f/s into the broker from the gateways (%.1f/s telemetry), %.1f/s out to the reader\n",
		float64(r.Published)/win, float64(r.Telemetry)/win, float64(r.Delivered)/win)
	lat := func(name string, l fleetload.Latency) {
		fmt.Fprintf(w, "          %-17s p50 %s  p99 %s  max %s  (n=%d)\n", name, ms(l.P50), ms(l.P99), ms(l.Max), l.N)
	}
	fmt.Fprintln(w, "latency   to the reader's output line, from")
	lat("agent's PUBLISH", r.PubToReader)
	lat("reading (QCSQ)", r.ReadToReader)
	fmt.Fprintf(w, "          %-17s the signal change waited %s for the next poll on average\n", "", ms(r.PollWait))
	lat("SMS to the modem", r.SMS)
	verdict := "no"
	if r.KeepsUp() {
		verdict = "yes"
	}
	fmt.Fprintf(w, "reader    keeps up: %s (backlog max %d, left %d; publish lag p99 %s in the first quarter, %s in the last; gaps %d; output queue max %d)\n",
		verdict, r.BacklogMax, r.BacklogEnd, ms(r.LagEarly), ms(r.LagLate), r.Gaps, r.PendingMax)
	fmt.Fprintf(w, "events    %d signal changes, %d outages, %d SMS sent, %d seen; %d agent warnings\n",
		r.SignalChanges, r.Outages, r.SMSSent, r.SMSSeen, r.Warnings)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
