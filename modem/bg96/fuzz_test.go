package bg96

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Seeds live in testdata/fuzz/<FuzzName>/: answers real Quectel modems
// printed in public issue threads, and the table tests' edge cases. Each target checks that a parser either fails with a
// *ParseError or returns a value within its documented range.

func parseErrOnly(t *testing.T, err error) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a *ParseError", err)
	}
}

func between(t *testing.T, name string, v *int, lo, hi int) {
	t.Helper()
	if v != nil && (*v < lo || *v > hi) {
		t.Fatalf("%s %d outside %d..%d", name, *v, lo, hi)
	}
}

func FuzzParseCSQ(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		q, err := ParseCSQ(line)
		if err != nil {
			parseErrOnly(t, err)
			return
		}
		between(t, "rssi", q.RSSI, -113, -51)
		between(t, "ber", q.BER, 0, 7)
		if q.RSSI != nil && *q.RSSI%2 == 0 {
			t.Fatalf("rssi %d is not on the 2 dB grid", *q.RSSI)
		}
	})
}

func FuzzParseQCSQ(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		q, err := ParseQCSQ(line)
		if err != nil {
			parseErrOnly(t, err)
			return
		}
		between(t, "rssi", q.RSSI, -200, 0)
		between(t, "rsrp", q.RSRP, -200, 0)
		if q.SINR != nil && (*q.SINR < -20 || *q.SINR > 30) {
			t.Fatalf("sinr %v outside -20..30 dB", *q.SINR)
		}
		if q.Mode == ModeNoService && (q.RSSI != nil || q.RSRP != nil || q.SINR != nil || q.RSRQ != nil) {
			t.Fatalf("NOSERVICE with values: %+v", q)
		}
		if q.Mode == ModeGSM && (q.RSRP != nil || q.SINR != nil) {
			t.Fatalf("GSM with LTE values: %+v", q)
		}
	})
}

func FuzzParseReg(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		for _, form := range []RegForm{RegQuery, RegURC} {
			r, err := ParseReg(line, form)
			if err != nil {
				parseErrOnly(t, err)
				continue
			}
			if (form == RegQuery) != (r.N != nil) {
				t.Fatalf("form %d gave n=%v", form, r.N)
			}
			if r.Stat < 0 || r.Stat > RegRoamingCSFBNotPref || strings.HasPrefix(r.Stat.String(), "stat(") {
				t.Fatalf("stat %d out of range", r.Stat)
			}
			if r.CI != nil && *r.CI >= 1<<28 {
				t.Fatalf("ci %x wider than 28 bits", *r.CI)
			}
			if r.AcT != nil && strings.HasPrefix(r.AcT.String(), "act(") {
				t.Fatalf("unknown AcT %d accepted", *r.AcT)
			}
		}
	})
}

func FuzzParseCOPS(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		op, err := ParseCOPS(line)
		if err != nil {
			parseErrOnly(t, err)
			return
		}
		if op.Mode < 0 || op.Mode > 4 {
			t.Fatalf("mode %d", op.Mode)
		}
		between(t, "format", op.Format, 0, 2)
	})
}

func FuzzParseQNWINFO(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		ni, err := ParseQNWINFO(line)
		if err != nil {
			parseErrOnly(t, err)
			return
		}
		if ni.NoService != (ni.AcT == "") {
			t.Fatalf("NoService %v with AcT %q", ni.NoService, ni.AcT)
		}
		if ni.Operator != "" && !isDigits(ni.Operator) {
			t.Fatalf("operator %q not numeric", ni.Operator)
		}
	})
}

func FuzzParseCGATT(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		if _, err := ParseCGATT(line); err != nil {
			parseErrOnly(t, err)
		}
	})
}

func FuzzParseCSCA(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		num, err := ParseCSCA(line)
		if err != nil {
			parseErrOnly(t, err)
			return
		}
		if num != "" {
			if _, _, err := NormalizeSMSC(num); err != nil {
				t.Fatalf("accepted %q: %v", num, err)
			}
		}
	})
}

func FuzzParseCFUN(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		fun, err := ParseCFUN(line)
		if err != nil {
			parseErrOnly(t, err)
			return
		}
		if fun < 0 || fun > 127 {
			t.Fatalf("fun %d", fun)
		}
	})
}

func FuzzParseCPIN(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		st, err := ParseCPIN(line)
		if err != nil {
			parseErrOnly(t, err)
			return
		}
		if st == "" || strings.ToUpper(string(st)) != string(st) {
			t.Fatalf("state %q", st)
		}
	})
}

func FuzzParseQCCID(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		id, err := ParseQCCID(line)
		if err != nil {
			parseErrOnly(t, err)
			return
		}
		if !isDigits(id) || len(id) < 19 || len(id) > 20 {
			t.Fatalf("ICCID %q", id)
		}
	})
}

func FuzzParseIMEI(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		imei, err := ParseIMEI(line)
		if err != nil {
			parseErrOnly(t, err)
			return
		}
		if !isDigits(imei) || len(imei) != 15 {
			t.Fatalf("IMEI %q", imei)
		}
	})
}

func FuzzParseIMSI(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		imsi, err := ParseIMSI(line)
		if err != nil {
			parseErrOnly(t, err)
			return
		}
		if !isDigits(imsi) || len(imsi) < 14 || len(imsi) > 15 {
			t.Fatalf("IMSI %q", imsi)
		}
	})
}

func FuzzParseFirmware(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		fw, err := ParseFirmware(line)
		if err != nil {
			parseErrOnly(t, err)
			return
		}
		if fw == "" || len(fw) > 64 || strings.ContainsAny(fw, " \",\r\n") {
			t.Fatalf("firmware %q", fw)
		}
	})
}

// FuzzParseATI takes the ATI answer as one string, lines split at "\n".
func FuzzParseATI(f *testing.F) {
	f.Fuzz(func(t *testing.T, answer string) {
		p, err := ParseATI(strings.Split(answer, "\n"))
		if err != nil {
			parseErrOnly(t, err)
			return
		}
		if p.Manufacturer == "" || p.Model == "" {
			t.Fatalf("product %+v", p)
		}
	})
}

func FuzzParseQPINC(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		pin, puk, err := ParseQPINC(line)
		if err != nil {
			parseErrOnly(t, err)
			return
		}
		if pin < 0 || pin > 10 || puk < 0 || puk > 10 {
			t.Fatalf("counters %d %d", pin, puk)
		}
	})
}

func FuzzParseCEER(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		cause, err := ParseCEER(line)
		if err != nil {
			parseErrOnly(t, err)
			return
		}
		if cause == "" {
			t.Fatal("empty cause without an error")
		}
	})
}

// FuzzProfileAnswers feeds one answer line to every profile reader: each
// returns a value or an error, never panics, and a band value is three
// hex masks.
func FuzzProfileAnswers(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		lines := []string{line}
		if v, err := bandValue(lines); err == nil && strings.Count(v, ",") != 2 {
			t.Fatalf("band value %q", v)
		}
		_, _ = cgdcont(lines, 1)
		_, _ = qicsgp(lines)
		_, _ = copsValue(lines)
		_, _ = qcfgFields(lines, "nwscanseq")
	})
}

func FuzzParseNetworkTime(f *testing.F) {
	f.Fuzz(func(t *testing.T, line string) {
		for _, parse := range []func(string) (NetworkTime, error){ParseQLTS, ParseCCLK} {
			nt, err := parse(line)
			if err != nil {
				parseErrOnly(t, err)
				continue
			}
			if nt.Zone < -14*time.Hour || nt.Zone > 14*time.Hour || nt.Time.Location() != time.UTC {
				t.Fatalf("%q: %+v", line, nt)
			}
		}
	})
}
