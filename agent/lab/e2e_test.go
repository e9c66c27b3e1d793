package lab_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cellagent/agent/lab"
	"cellagent/agent/messaging"
	"cellagent/agent/store"
	"cellagent/modem/at"
	"cellagent/modem/bg96"
	"cellagent/modem/bg96emu"
	"cellagent/modem/port"
	"cellagent/transport/bsc"
	"cellagent/transport/bsc/bscemu"
	"cellagent/transport/bsc/bscemu/bscemutest"
)

const (
	iccid  = "89882280666012345678"
	msisdn = "882285100012345"
	sender = "+491701234567"
)

// forwarded is one request the platform made to the application, with the
// fields transport/bsc/OPERATOR.md §4 lists.
type forwarded struct {
	Method        string
	ID            int64  `json:"id"`
	Payload       string `json:"payload"`
	SubmitDate    string `json:"submit_date"`
	FinalDate     string `json:"final_date"`
	DestAddress   string `json:"dest_address"`
	SourceAddress string `json:"source_address"`
	DCS           *int   `json:"dcs"`
	PID           *int   `json:"pid"`
	Endpoint      struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	} `json:"endpoint"`
	MultiPartInfo *struct {
		PartNo     int   `json:"partno"`
		Total      int   `json:"total"`
		Identifier int64 `json:"identifier"`
	} `json:"multi_part_info"`
	Status struct {
		Status string `json:"status"`
	} `json:"status"`
}

// app is the bench application: it takes the platform's MO POSTs and
// delivery-report PATCHes on loopback.
func app(t *testing.T) (*httptest.Server, <-chan forwarded) {
	got := make(chan forwarded, 32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		var f forwarded
		if err == nil {
			err = json.Unmarshal(body, &f)
		}
		if err != nil {
			t.Errorf("application got a bad %s: %v: %s", r.Method, err, body)
			http.Error(w, "bad JSON", http.StatusBadRequest)
			return
		}
		f.Method = r.Method
		got <- f
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func next(t *testing.T, ch <-chan forwarded, method string) forwarded {
	t.Helper()
	for {
		select {
		case f := <-ch:
			if f.Method == method {
				return f
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("the application got no %s from the platform", method)
		}
	}
}

// regURCs records the +CEREG URCs the agent's engine routes.
type regURCs struct {
	mu    sync.Mutex
	lines []string
}

func (r *regURCs) add(lines []string) {
	r.mu.Lock()
	r.lines = append(r.lines, lines...)
	r.mu.Unlock()
}

func (r *regURCs) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, " | ")
}

// TestEndToEnd runs the "must show": a bench application posts an
// MT SMS to the platform API, the platform delivers it into the simulated
// BG96, and the agent's inbox, on a real pty, stores it; the agent's outbox
// sends MO SMS, which the platform forwards to the application as its
// forwarder's JSON (transport/bsc/receiver decodes it); a platform reset makes the modem drop and regain its
// registration, and SMS flow again afterwards.
func TestEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	application, fromPlatform := app(t)

	platform := bscemutest.Start(t, bscemu.Config{
		Users:      map[string]string{"admin": "s3cret-pw"},
		SIMs:       []bscemu.SIMConfig{{ICCID: iccid, MSISDN: msisdn}},
		AppURL:     application.URL,
		ResetDelay: 200 * time.Millisecond,
		RetryBase:  50 * time.Millisecond,
	}, nil)

	// The SIM reports its ICCID with the filler F, as AT+QCCID prints it;
	// the platform still knows it by the 20 digits.
	modem, err := lab.StartModem(ctx, platform, bg96emu.Config{
		ICCID: iccid + "F", BootDelay: 200 * time.Millisecond, RegisterDelay: 500 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer modem.Close()

	// The agent's side: a real serial port on the pty, the AT engine, the
	// init script, and the SMS path over a store in a temporary directory.
	sp, err := port.Open(modem.Path(), port.DefaultBaud)
	if err != nil {
		t.Fatal(err)
	}
	engine := at.New(sp)
	defer engine.Close()
	if err := bg96.Init(ctx, engine, bg96.InitConfig{SMSC: bg96.OperatorSMSC}); err != nil {
		t.Fatal(err)
	}
	var reg regURCs
	defer engine.AddIndication("+CEREG", reg.add)()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	inbound := make(chan messaging.Inbound, 8)
	inbox := messaging.NewInbox(engine, messaging.InboxConfig{
		Store: st,
		Publish: func(_ context.Context, m messaging.Inbound) error {
			inbound <- m
			return nil
		},
	})
	outbox, err := messaging.NewOutbox(engine, messaging.OutboxConfig{Store: st, SMSC: bg96.OperatorSMSC, BaseDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	for _, run := range []func(context.Context) error{inbox.Run, outbox.Run} {
		wg.Go(func() { _ = run(runCtx) })
	}
	defer wg.Wait()
	defer stop()

	client, err := bsc.New(bsc.Config{BaseURL: platform.URL(), Username: "admin", Password: "s3cret-pw"})
	if err != nil {
		t.Fatal(err)
	}
	receive := func(text string) {
		t.Helper()
		acc, err := client.SendSMS(ctx, iccid, bsc.MTSMS{Payload: text, SourceAddress: sender})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-inbound:
			if m.Text != text || m.From != sender || m.Error != "" {
				t.Errorf("agent stored %+v, want %q from %s", m, text, sender)
			}
		case <-ctx.Done():
			t.Fatalf("MT SMS %s never reached the agent's store", acc.ID)
		}
		dlr := next(t, fromPlatform, http.MethodPatch)
		if dlr.Status.Status != "DELIVERED" || dlr.Endpoint.Name != iccid || dlr.FinalDate == "" {
			t.Errorf("delivery report %+v", dlr)
		}
	}

	// MT: one short message, and one the platform must split and the
	// agent must join again.
	receive("hello gateway")
	receive(strings.Repeat("A long command for the gateway. ", 8))
	waitFor(t, "the SIM emptied by the inbox", func() bool { return len(modem.Stored()) == 0 })

	// MO: a text, 8-bit data, and a text in two parts.
	send := func(req messaging.Request) {
		t.Helper()
		if _, _, err := outbox.Submit(req); err != nil {
			t.Fatal(err)
		}
	}
	send(messaging.Request{To: "5432145", Text: "status ok"})
	mo := next(t, fromPlatform, http.MethodPost)
	checkMO(t, mo, "status ok", 0)
	if mo.MultiPartInfo.PartNo != 1 || mo.MultiPartInfo.Total != 1 || mo.MultiPartInfo.Identifier != mo.ID {
		t.Errorf("single-part multi_part_info %+v for id %d", mo.MultiPartInfo, mo.ID)
	}
	if _, err := time.Parse("2006-01-02 15:04:05", mo.SubmitDate); err != nil {
		t.Errorf("submit_date %q: %v", mo.SubmitDate, err)
	}

	send(messaging.Request{To: "5432145", Data: []byte{0x01, 0xAB, 0xFF}})
	checkMO(t, next(t, fromPlatform, http.MethodPost), "01abff", 4)

	long := strings.Repeat("Telemetry follows in two parts. ", 6)
	send(messaging.Request{To: "5432145", Text: long})
	p1, p2 := next(t, fromPlatform, http.MethodPost), next(t, fromPlatform, http.MethodPost)
	checkMO(t, p1, "", 0)
	checkMO(t, p2, "", 0)
	// The application reassembles by the identifier, so both parts must
	// carry the same one, also when the UDH reference is 0 (the outbox's
	// first reference for a destination).
	if p1.MultiPartInfo.PartNo != 1 || p2.MultiPartInfo.PartNo != 2 || p1.MultiPartInfo.Total != 2 ||
		p2.MultiPartInfo.Total != 2 || p1.MultiPartInfo.Identifier != p2.MultiPartInfo.Identifier {
		t.Errorf("parts %+v and %+v, want 1 and 2 of 2 with one identifier", p1.MultiPartInfo, p2.MultiPartInfo)
	}
	if p1.Payload+p2.Payload != long {
		t.Errorf("parts join to %q", p1.Payload+p2.Payload)
	}

	// Reset: queued only, then the network detaches the SIM and the modem
	// registers again, which the agent sees in URCs and in a query.
	q, err := client.Reset(ctx, iccid)
	if err != nil || q.Status != "QUEUED" {
		t.Fatalf("reset: %+v, %v", q, err)
	}
	waitFor(t, "+CEREG: 2 (searching) after the reset", func() bool { return strings.Contains(reg.String(), "+CEREG: 2") })
	r, err := bg96.New(engine).Registration(ctx)
	if err != nil || r.EPS == nil || r.EPS.Stat != bg96.RegSearching {
		t.Errorf("registration during the reset: %+v, %v", r, err)
	}
	waitFor(t, "+CEREG: 1 (home) after the reset", func() bool {
		_, after, _ := strings.Cut(reg.String(), "+CEREG: 2")
		return strings.Contains(after, "+CEREG: 1,")
	})
	if r, err := bg96.New(engine).Registration(ctx); err != nil || !r.Registered() {
		t.Errorf("registration after the reset: %+v, %v", r, err)
	}
	events, err := client.Events(ctx, iccid)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	if got := strings.Join(types, " "); !strings.Contains(got, "RESET_QUEUED") || !strings.Contains(got, "RESET_DONE") {
		t.Errorf("events after the reset: %s", got)
	}
	receive("back online?")
	send(messaging.Request{To: "5432145", Text: "yes"})
	checkMO(t, next(t, fromPlatform, http.MethodPost), "yes", 0)
}

func checkMO(t *testing.T, mo forwarded, payload string, dcs int) {
	t.Helper()
	// Hex payloads are compared without case: the platform may send either.
	if payload != "" && !strings.EqualFold(mo.Payload, payload) {
		t.Errorf("payload %q, want %q", mo.Payload, payload)
	}
	if mo.DestAddress != "5432145" || mo.SourceAddress != msisdn || mo.Endpoint.Name != iccid {
		t.Errorf("MO addresses: dest %q source %q endpoint %+v", mo.DestAddress, mo.SourceAddress, mo.Endpoint)
	}
	if mo.DCS == nil || *mo.DCS != dcs || mo.PID == nil || *mo.PID != 0 || mo.MultiPartInfo == nil {
		t.Errorf("MO dcs %v pid %v multi_part_info %v, want dcs %d, pid 0 and the part info", mo.DCS, mo.PID, mo.MultiPartInfo, dcs)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 15s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
