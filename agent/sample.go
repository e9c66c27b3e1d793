package agent

import (
	"fmt"

	"cellagent/modem/bg96"
	"cellagent/transport/mqtt"
)

// sample turns the modem's status into a telemetry body. Values the modem
// could not give stay nil or empty, so "unknown" never reads as a number.
func sample(st bg96.Status) mqtt.Telemetry {
	t := mqtt.Telemetry{
		Reg: mqtt.Registration{
			CS:  regName(st.Registration.CS),
			PS:  regName(st.Registration.GPRS),
			EPS: regName(st.Registration.EPS),
		},
		Attached: st.Attached,
	}
	if n := st.Network; n != nil && !n.NoService {
		t.Act, t.Operator, t.Band = n.AcT, n.Operator, n.Band
	}
	if t.Act == "" && st.Signal.QCSQ != nil && st.Signal.QCSQ.Mode != bg96.ModeNoService {
		t.Act = string(st.Signal.QCSQ.Mode)
	}
	if t.Operator == "" && st.Operator != nil {
		t.Operator = st.Operator.Name
	}
	// The cell is the one of the domain the modem is registered in; on
	// LTE-M that is EPS, whatever CREG says.
	var cell *bg96.Reg
	switch st.RegDomain {
	case bg96.DomainEPS:
		cell = st.Registration.EPS
	case bg96.DomainGPRS:
		cell = st.Registration.GPRS
	case bg96.DomainCS:
		cell = st.Registration.CS
	}
	if cell != nil {
		if cell.CI != nil {
			t.Cell = fmt.Sprintf("%X", *cell.CI)
		}
		if cell.LAC != nil {
			t.TAC = fmt.Sprintf("%X", *cell.LAC)
		}
	}
	if q := st.Signal.QCSQ; q != nil {
		t.RSSI, t.RSRP, t.RSRQ, t.SINR = q.RSSI, q.RSRP, q.RSRQ, q.SINR
	}
	if t.RSSI == nil && st.Signal.CSQ != nil {
		t.RSSI = st.Signal.CSQ.RSSI
	}
	return t
}

func regName(r *bg96.Reg) string {
	if r == nil {
		return ""
	}
	return r.Stat.String()
}
