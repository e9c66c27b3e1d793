// Package lab wires the project's simulators together for the bench and
// for end-to-end tests: a BG96 simulator (modem/bg96emu) becomes the device
// behind a SIM of the operator-platform simulator (transport/bsc/bscemu).
// MT SMS posted to the platform's API land on the modem, MO SMS the modem
// accepts are forwarded to the application as the platform's JSON, and a
// platform reset makes the modem deregister and re-register.
//
// It lives under agent because the layering allows only cmd and agent to
// import both modem/* and transport/*; the simulators stay unaware of each
// other, and `cellbench platform` and the tests share this one wiring.
package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/warthog618/sms/encoding/tpdu"

	"cellagent/modem/bg96emu"
	"cellagent/transport/bsc/bscemu"
)

// ErrUnsupportedDCS is returned for MO SMS the platform's forwarder has no
// form for: its JSON carries dcs 0 (GSM 7-bit) and 4 (8-bit) only (as
// transport/bsc/receiver decodes it), so a UCS-2 message is refused rather
// than passed off as one of them.
var ErrUnsupportedDCS = errors.New("lab: data coding scheme the platform forwarder does not carry")

// MO converts an SMS-SUBMIT the modem simulator accepted into the message
// the platform forwards: destination, text (DCS 0) or data (DCS 4), PID,
// the concatenation header and the submit time. Source stays empty, so the
// platform fills in the SIM's MSISDN as it does for real devices.
func MO(msg bg96emu.SentMessage) (bscemu.MO, error) {
	t := msg.TPDU
	if t == nil {
		return bscemu.MO{}, errors.New("lab: MO SMS without a decoded TPDU")
	}
	mo := bscemu.MO{Dest: msg.To, PID: int(t.PID), SubmitTime: msg.Time}
	alpha, err := t.Alphabet()
	if err != nil {
		return bscemu.MO{}, fmt.Errorf("lab: MO SMS to %s, DCS %#02x: %w", msg.To, byte(t.DCS), err)
	}
	switch alpha {
	case tpdu.Alpha7Bit:
		if msg.Text == "" && len(t.UD) > 0 {
			return bscemu.MO{}, fmt.Errorf("lab: MO SMS to %s: GSM 7-bit user data does not decode", msg.To)
		}
		mo.DCS, mo.Text = bscemu.DCSGSM7, msg.Text
	case tpdu.Alpha8Bit:
		mo.DCS, mo.Data = bscemu.DCS8Bit, append([]byte(nil), t.UD...)
	default:
		return bscemu.MO{}, fmt.Errorf("%w: MO SMS to %s in %s (DCS %#02x)", ErrUnsupportedDCS, msg.To, alphabetName(alpha), byte(t.DCS))
	}
	if total, seq, ref, ok := t.ConcatInfo(); ok && total > 1 {
		mo.PartNo, mo.Total, mo.Identifier = seq, total, ref
	}
	return mo, nil
}

func alphabetName(a tpdu.Alphabet) string {
	if a == tpdu.AlphaUCS2 {
		return "UCS-2"
	}
	return fmt.Sprintf("alphabet %d", a)
}

// StartModem starts a BG96 simulator from cfg whose MO SMS are forwarded by
// srv, and registers it with srv under its ICCID, which must be one of
// srv's SIMs. cfg.OnSubmit, if set, still runs after the forwarding. The
// caller closes the modem (before or after srv: both orders are safe).
func StartModem(ctx context.Context, srv *bscemu.Server, cfg bg96emu.Config, log *slog.Logger) (*bg96emu.Modem, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// m is set before Start, and OnSubmit only runs on the modem's input
	// goroutine, which Start creates, so the closure sees it.
	var m *bg96emu.Modem
	next := cfg.OnSubmit
	cfg.OnSubmit = func(s bg96emu.SentMessage) {
		forward(srv, m.ICCID(), s, log)
		if next != nil {
			next(s)
		}
	}
	m = bg96emu.New(cfg)
	if err := m.Start(ctx); err != nil {
		return nil, fmt.Errorf("lab: start modem: %w", err)
	}
	if err := srv.Register(m); err != nil {
		m.Close()
		return nil, fmt.Errorf("lab: %w", err)
	}
	return m, nil
}

// forward runs on the modem's input goroutine; ForwardMO only queues, so
// the modem is not held up by a slow application. The modem has already
// answered +CMGS, as a real SMSC acknowledges before delivery, so a message
// that cannot be forwarded is logged: there is nobody left to tell.
func forward(srv *bscemu.Server, iccid string, s bg96emu.SentMessage, log *slog.Logger) {
	mo, err := MO(s)
	if err == nil {
		err = srv.ForwardMO(iccid, mo)
	}
	if err != nil {
		log.Warn("lab: MO SMS not forwarded to the application", "iccid", iccid, "mr", s.MR, "to", s.To, "err", err)
		return
	}
	log.Debug("lab: MO SMS forwarded", "iccid", iccid, "mr", s.MR, "to", s.To, "dcs", mo.DCS, "part", mo.PartNo, "of", mo.Total)
}
