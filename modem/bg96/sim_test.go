package bg96_test

import (
	"context"
	"testing"
	"time"

	"cellagent/modem/bg96"
	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
)

// The dialect against the BG96 simulator over a real pty: the same path a
// gateway takes from power-on to a status report.
func TestAgainstSimulator(t *testing.T) {
	m := bg96emutest.Start(t, bg96emu.Config{BootDelay: 300 * time.Millisecond, RegisterDelay: 100 * time.Millisecond})
	a := bg96emutest.Engine(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Started after the modem booted: an answered AT is enough.
	if err := bg96.WaitReady(ctx, a, a); err != nil {
		t.Fatalf("WaitReady on a booted modem: %v", err)
	}
	if err := bg96.Init(ctx, a, bg96.InitConfig{SMSC: bg96.OperatorSMSC}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	info, err := a.Command(ctx, "AT+CSCA?")
	if err != nil || len(info) != 1 || info[0] != `+CSCA: "+882285000016860",145` {
		t.Errorf("SMSC after init: %q %v", info, err)
	}

	mod := bg96.New(a)
	st := mod.Status(ctx)
	if len(st.Errors) > 0 {
		t.Errorf("status errors: %v", st.Errors)
	}
	if st.Identity.IMEI != "866425031234567" || st.Identity.ICCID != "89882280666012345678" || !st.Registered {
		t.Errorf("status %+v", st)
	}

	// A reboot: the modem goes deaf, then announces itself; WaitReady must
	// wait for the SIM and SMS to be ready rather than the first OK.
	w := bg96.Expect(a, "POWERED DOWN")
	if err := mod.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	w.Stop()
	if err := bg96.WaitReady(ctx, a, a); err != nil {
		t.Fatalf("WaitReady after reboot: %v", err)
	}
	if err := bg96.Init(ctx, a, bg96.InitConfig{}); err != nil {
		t.Fatalf("Init after reboot: %v", err)
	}

	// Radio off and on, and detach, as the recovery ladder will do.
	if err := mod.RadioOff(ctx); err != nil {
		t.Fatal(err)
	}
	reg, err := mod.Registration(ctx)
	if err != nil || reg.Registered() {
		t.Errorf("registered with the radio off: %+v %v", reg, err)
	}
	if err := mod.RadioOn(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		reg, err := mod.Registration(ctx)
		if err == nil && reg.Registered() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not registered again: %+v %v", reg, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := mod.SetAttach(ctx, false); err != nil {
		t.Fatal(err)
	}
	if att, err := mod.Attached(ctx); err != nil || att {
		t.Errorf("attached after detach: %v %v", att, err)
	}
	if err := mod.PowerDownAndWait(ctx, a); err != nil {
		t.Fatalf("power down: %v", err)
	}
}
