package bg96_test

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"cellagent/modem/at"
	"cellagent/modem/bg96"
	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
)

func simSession(t *testing.T, cfg bg96emu.Config) (*bg96emu.Modem, *at.AT) {
	t.Helper()
	cfg.BootDelay, cfg.RegisterDelay = 300*time.Millisecond, 100*time.Millisecond
	m := bg96emutest.Start(t, cfg)
	return m, bg96emutest.Engine(t, m)
}

func u64(v uint64) *uint64 { return &v }

// The profile against the simulator's NVRAM: a first start writes each
// differing setting once, a second start writes nothing, a changed
// profile writes only the change, and NVRAM survives a reboot.
func TestApplyProfileWritesOnlyDifferences(t *testing.T) {
	m, a := simSession(t, bg96emu.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	no := false
	p := bg96.Profile{
		APN: "internet.m2m", PDPType: "IP", Auth: bg96.AuthCHAP, Username: "gw", Password: "s3cret",
		RAT:       []bg96.RAT{bg96.RATLTEM, bg96.RATNBIoT},
		LTEMBands: u64(0x80084), Roaming: &no,
	}
	res, err := bg96.ApplyProfile(ctx, a, p)
	if err != nil {
		t.Fatal(err)
	}
	first := m.NVWrites()
	want := map[string]int{"pdp_context": 1, "apn_auth": 1, "nwscanseq": 1, "nwscanmode": 1, "band": 1, "roamservice": 1}
	// iotopmode is already 2 (both) on a BG96 as shipped: not written.
	if !maps.Equal(first, want) {
		t.Errorf("first start wrote %v, want %v", first, want)
	}
	if !res.Restarted || len(res.Changes) != 6 {
		t.Errorf("first start: %+v", res)
	}
	for _, c := range res.Changes {
		if c.Setting == "apn_auth" && (c.From != "" || c.To != "") {
			t.Errorf("credentials in a change: %+v", c)
		}
	}
	for _, s := range res.Settings {
		if s.Setting == "apn_auth" && s.Actual != "2,gw,***" {
			t.Errorf("auth state %+v", s)
		}
	}

	// A reboot keeps NVRAM; the second start writes nothing.
	w := bg96.Expect(a, "APP RDY")
	if err := bg96.New(a).Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	res, err = bg96.ApplyProfile(ctx, a, p)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.NVWrites(); !maps.Equal(got, first) || res.Restarted || len(res.Changes) != 0 {
		t.Errorf("second start wrote %v (restart %v, changes %v)", got, res.Restarted, res.Changes)
	}

	// One change, one write; the APN compares without case.
	p.APN = "INTERNET.M2M"
	p.LTEMBands = u64(0x80000)
	res, err = bg96.ApplyProfile(ctx, a, p)
	if err != nil {
		t.Fatal(err)
	}
	got := m.NVWrites()
	want["band"] = 2
	if !maps.Equal(got, want) || res.Restarted || len(res.Changes) != 1 || res.Changes[0].Setting != "band" ||
		res.Changes[0].From != "0xf,0x80084,0xa0e189f" || res.Changes[0].To != "0xf,0x80000,0xa0e189f" {
		t.Errorf("changed band wrote %v; %+v", got, res)
	}
}

// A RAT setting that excludes the network's technology keeps the modem
// from registering, as on a real BG96 set to NB-IoT under LTE-M cover.
func TestProfileRATPreventsRegistration(t *testing.T) {
	_, a := simSession(t, bg96emu.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := bg96.ApplyProfile(ctx, a, bg96.Profile{RAT: []bg96.RAT{bg96.RATNBIoT}}); err != nil {
		t.Fatal(err)
	}
	reg, err := bg96.New(a).Registration(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if reg.Registered() {
		t.Errorf("registered on LTE-M with NB-IoT only: %+v", reg)
	}
	if _, err := bg96.ApplyProfile(ctx, a, bg96.Profile{RAT: []bg96.RAT{bg96.RATLTEM}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		reg, _ := bg96.New(a).Registration(ctx)
		if reg.Registered() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not registered with LTE-M allowed: %+v", reg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestUnlockSIM(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	m, a := simSession(t, bg96emu.Config{})
	if err := bg96.UnlockSIM(ctx, a, "1234"); err != nil {
		t.Errorf("unlocked SIM: %v", err)
	}
	m.SetPIN("1234", 3)
	w := bg96.Expect(a, "APP RDY")
	if err := bg96.New(a).Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bg96.UnlockSIM(ctx, a, ""); !errors.Is(err, bg96.ErrPINNeeded) {
		t.Errorf("no PIN configured: %v", err)
	}
	if err := bg96.UnlockSIM(ctx, a, "0000"); !errors.Is(err, bg96.ErrPINWrong) {
		t.Errorf("wrong PIN: %v", err)
	}
	// Two attempts left: the right PIN goes in.
	if err := bg96.UnlockSIM(ctx, a, "1234"); err != nil {
		t.Errorf("right PIN: %v", err)
	}

	// One attempt left: the PIN is not entered, even a right one.
	m.SetPIN("1234", 1)
	if err := bg96.UnlockSIM(ctx, a, "1234"); !errors.Is(err, bg96.ErrPINLastAttempt) {
		t.Errorf("last attempt: %v", err)
	}
}

func TestParseQPINCAndCEER(t *testing.T) {
	if pin, puk, err := bg96.ParseQPINC(`+QPINC: "SC",3,10`); err != nil || pin != 3 || puk != 10 {
		t.Errorf("QPINC %d %d %v", pin, puk, err)
	}
	for _, bad := range []string{`+QPINC: "SC",3`, `+QPINC: "SC",x,10`, `+QPINC: "SC",30,10`, `+CPIN: 3`} {
		if _, _, err := bg96.ParseQPINC(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	for in, want := range map[string]string{
		`+CEER: "Missing or unknown APN"`:    "Missing or unknown APN",
		`+CEER: 27,"Missing or unknown APN"`: "27, Missing or unknown APN",
	} {
		if got, err := bg96.ParseCEER(in); err != nil || got != want {
			t.Errorf("CEER %q = %q %v", in, got, err)
		}
	}
	if _, err := bg96.ParseCEER(`+CEER: ""`); err == nil {
		t.Error("empty cause parsed")
	}
}

func TestConfigCause(t *testing.T) {
	for cause, want := range map[string]bool{
		"Missing or unknown APN": true, "27, Missing or unknown APN": true, "User authentication failed": true,
		"33, requested service option not subscribed": true, "No network service": false, "Lost connection": false, "": false,
	} {
		if bg96.ConfigCause(cause) != want {
			t.Errorf("ConfigCause(%q) = %v", cause, !want)
		}
	}
}

// BenchmarkApplyProfileUnchanged is the cost the profile adds to every
// initialisation once the modem has it: one read per setting, no write,
// over a real pty at 115200 baud against the simulator.
func BenchmarkApplyProfileUnchanged(b *testing.B) {
	m := bg96emutest.Start(b, bg96emu.Config{BootDelay: 300 * time.Millisecond, RegisterDelay: 100 * time.Millisecond})
	a := bg96emutest.Engine(b, m)
	ctx := context.Background()
	no := false
	p := bg96.Profile{APN: "internet.m2m", Auth: bg96.AuthNone, RAT: []bg96.RAT{bg96.RATLTEM, bg96.RATNBIoT}, LTEMBands: u64(0x80084), Roaming: &no}
	if _, err := bg96.ApplyProfile(ctx, a, p); err != nil {
		b.Fatal(err)
	}
	writes := m.NVWrites()
	cmds := m.Stats().Commands
	b.ResetTimer()
	for range b.N {
		if _, err := bg96.ApplyProfile(ctx, a, p); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if !maps.Equal(m.NVWrites(), writes) {
		b.Fatalf("writes while unchanged: %v -> %v", writes, m.NVWrites())
	}
	b.ReportMetric(float64(m.Stats().Commands-cmds)/float64(b.N), "cmds/op")
}
