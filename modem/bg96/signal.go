package bg96

import "strings"

// CSQ is the answer to AT+CSQ (3GPP TS 27.007 §8.5). A nil field is a value
// the modem reported as unknown (99), never a number.
type CSQ struct {
	// RSSI in dBm. The scale saturates at both ends: -113 means "-113 or
	// less" and -51 means "-51 or better".
	RSSI *int `json:"rssi_dbm,omitempty"`
	// BER is the RxQual class 0..7 (GSM only; LTE modules print 99).
	BER *int `json:"ber,omitempty"`
}

// ParseCSQ parses "+CSQ: <rssi>,<ber>".
func ParseCSQ(line string) (CSQ, error) {
	f, err := fields(line, "+CSQ:")
	if err != nil {
		return CSQ{}, err
	}
	if len(f) != 2 {
		return CSQ{}, parseErr(line, "want 2 values, got %d", len(f))
	}
	rssi, err := atoi(line, "rssi", f[0])
	if err != nil {
		return CSQ{}, err
	}
	ber, err := atoi(line, "ber", f[1])
	if err != nil {
		return CSQ{}, err
	}
	var q CSQ
	switch {
	case rssi == 99:
	case rssi >= 0 && rssi <= 31:
		q.RSSI = ptr(-113 + 2*rssi)
	default:
		return CSQ{}, parseErr(line, "rssi %d outside 0..31 and 99", rssi)
	}
	switch {
	case ber == 99:
	case ber >= 0 && ber <= 7:
		q.BER = ptr(ber)
	default:
		return CSQ{}, parseErr(line, "ber %d outside 0..7 and 99", ber)
	}
	return q, nil
}

// SysMode is the radio access technology AT+QCSQ reports, normalised to
// the BG96 spelling: the BG95 prints "eMTC" and "NBIoT" for the same modes.
type SysMode string

// System modes of AT+QCSQ. LTE, WCDMA and TDSCDMA come from the EC2x/EP06
// family, which shares the command.
const (
	ModeNoService SysMode = "NOSERVICE"
	ModeGSM       SysMode = "GSM"
	ModeCatM1     SysMode = "CAT-M1"
	ModeNBIoT     SysMode = "CAT-NB1"
	ModeLTE       SysMode = "LTE"
	ModeWCDMA     SysMode = "WCDMA"
	ModeTDSCDMA   SysMode = "TDSCDMA"
)

var sysModes = map[string]SysMode{
	"NOSERVICE": ModeNoService,
	"GSM":       ModeGSM,
	"CAT-M1":    ModeCatM1,
	"EMTC":      ModeCatM1,
	"CAT-NB1":   ModeNBIoT,
	"NBIOT":     ModeNBIoT,
	"LTE":       ModeLTE,
	"WCDMA":     ModeWCDMA,
	"TDSCDMA":   ModeTDSCDMA,
}

// QCSQ is the answer to AT+QCSQ. Only the values the mode defines are set;
// a value the modem left out or printed out of range is nil.
type QCSQ struct {
	Mode SysMode `json:"mode"`
	RSSI *int    `json:"rssi_dbm,omitempty"`
	// RSRP, SINR and RSRQ are LTE (CAT-M1, CAT-NB1, LTE) measurements.
	RSRP *int     `json:"rsrp_dbm,omitempty"`
	SINR *float64 `json:"sinr_db,omitempty"`
	RSRQ *int     `json:"rsrq_db,omitempty"`
	// RSCP and EcIo are UMTS (WCDMA, TDSCDMA) measurements.
	RSCP *int `json:"rscp_dbm,omitempty"`
	EcIo *int `json:"ecio_db,omitempty"`
}

// ParseQCSQ parses the AT+QCSQ answer: "NOSERVICE", "GSM",<rssi>,
// "CAT-M1"|"eMTC"|"CAT-NB1"|"NBIoT"|"LTE",<rssi>,<rsrp>,<sinr>,<rsrq> or
// "WCDMA"|"TDSCDMA",<rssi>,<rscp>,<ecio>.
//
// SINR arrives in fifths of a dB offset by 20 dB (0..250 stands for -20..+30
// dB, BG96 AT manual §6.18), so "CAT-M1",-33,-53,250,-5 has a 30 dB SINR.
// Received powers above 0 dBm are not physical and are taken as unknown:
// the EP06 prints an LTE rssi of 52.
func ParseQCSQ(line string) (QCSQ, error) {
	f, err := fields(line, "+QCSQ:")
	if err != nil {
		return QCSQ{}, err
	}
	mode, ok := sysModes[strings.ToUpper(f[0])]
	if !ok {
		return QCSQ{}, parseErr(line, "unknown system mode %q", f[0])
	}
	q := QCSQ{Mode: mode}
	var names []string
	switch mode {
	case ModeNoService:
	case ModeGSM:
		names = []string{"rssi"}
	case ModeWCDMA, ModeTDSCDMA:
		names = []string{"rssi", "rscp", "ecio"}
	default:
		names = []string{"rssi", "rsrp", "sinr", "rsrq"}
	}
	if len(f)-1 > len(names) {
		return QCSQ{}, parseErr(line, "mode %s has at most %d values, got %d", mode, len(names), len(f)-1)
	}
	for i, name := range names {
		v, err := optInt(line, name, field(f, i+1))
		if err != nil {
			return QCSQ{}, err
		}
		if v == nil {
			continue
		}
		switch name {
		case "rssi":
			q.RSSI = power(v)
		case "rsrp":
			q.RSRP = power(v)
		case "rscp":
			q.RSCP = power(v)
		case "sinr":
			if *v >= 0 && *v <= 250 {
				q.SINR = ptr(float64(*v-100) / 5)
			}
		case "rsrq":
			q.RSRQ = inRange(v, -50, 50)
		case "ecio":
			q.EcIo = inRange(v, -50, 50)
		}
	}
	return q, nil
}

// power keeps a received power in dBm when it is plausible.
func power(v *int) *int { return inRange(v, -200, 0) }

func inRange(v *int, lo, hi int) *int {
	if *v < lo || *v > hi {
		return nil
	}
	return v
}
