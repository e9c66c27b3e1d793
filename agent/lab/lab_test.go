package lab

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	wsms "github.com/warthog618/sms"
	"github.com/warthog618/sms/encoding/pdumode"
	"github.com/warthog618/sms/encoding/tpdu"

	"cellagent/modem/bg96emu"
	"cellagent/modem/sms"
	"cellagent/transport/bsc/bscemu"
)

// sent turns the agent's encoded PDUs into what the modem simulator hands
// OnSubmit, decoded the way the simulator decodes them.
func sent(t *testing.T, pdus []sms.PDU, at time.Time) []bg96emu.SentMessage {
	t.Helper()
	var out []bg96emu.SentMessage
	for i, p := range pdus {
		b, err := hex.DecodeString(p.Hex)
		if err != nil {
			t.Fatal(err)
		}
		pm, err := pdumode.UnmarshalBinary(b)
		if err != nil {
			t.Fatal(err)
		}
		tp, err := wsms.Unmarshal(pm.TPDU, wsms.AsMO)
		if err != nil {
			t.Fatal(err)
		}
		m := bg96emu.SentMessage{MR: i, PDU: b, TPDU: tp, To: tp.DA.Number(), Time: at}
		if txt, err := wsms.Decode([]*tpdu.TPDU{tp}); err == nil {
			m.Text = string(txt)
		}
		out = append(out, m)
	}
	return out
}

func TestMO(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	opts := sms.Options{SMSC: "+882285000016860", Refs: sms.NewMemoryRefs(42)}

	pdus, err := sms.EncodeText("5432145", "hello [platform] €", opts)
	if err != nil {
		t.Fatal(err)
	}
	mo, err := MO(sent(t, pdus, at)[0])
	if err != nil {
		t.Fatal(err)
	}
	want := bscemu.MO{Dest: "5432145", Text: "hello [platform] €", DCS: bscemu.DCSGSM7, SubmitTime: at}
	if mo.Dest != want.Dest || mo.Text != want.Text || mo.DCS != want.DCS || mo.PartNo != 0 || mo.Total != 0 || !mo.SubmitTime.Equal(at) || mo.Data != nil {
		t.Errorf("GSM 7-bit: %+v, want %+v", mo, want)
	}

	pdus, err = sms.EncodeData("+491701234567", []byte{0x00, 0xff, 0x1a}, opts)
	if err != nil {
		t.Fatal(err)
	}
	mo, err = MO(sent(t, pdus, at)[0])
	if err != nil {
		t.Fatal(err)
	}
	if mo.Dest != "+491701234567" || mo.DCS != bscemu.DCS8Bit || string(mo.Data) != "\x00\xff\x1a" || mo.Text != "" {
		t.Errorf("8-bit: %+v", mo)
	}

	long := strings.Repeat("0123456789", 20) // two GSM 7-bit parts
	pdus, err = sms.EncodeText("5432145", long, opts)
	if err != nil || len(pdus) != 2 {
		t.Fatalf("long text: %v, %d parts", err, len(pdus))
	}
	var joined string
	for i, s := range sent(t, pdus, at) {
		mo, err := MO(s)
		if err != nil {
			t.Fatal(err)
		}
		if mo.PartNo != i+1 || mo.Total != 2 || mo.Identifier != 42 || mo.DCS != bscemu.DCSGSM7 {
			t.Errorf("part %d: %+v, want part %d of 2 with identifier 42", i+1, mo, i+1)
		}
		joined += mo.Text
	}
	if joined != long {
		t.Errorf("parts join to %q", joined)
	}

	pdus, err = sms.EncodeText("5432145", "emoji 🛰️", opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MO(sent(t, pdus, at)[0]); !errors.Is(err, ErrUnsupportedDCS) || !strings.Contains(err.Error(), "UCS-2") {
		t.Errorf("UCS-2: err %v, want ErrUnsupportedDCS naming UCS-2", err)
	}
	if _, err := MO(bg96emu.SentMessage{To: "5432145"}); err == nil {
		t.Error("a message without a TPDU was converted")
	}
}
