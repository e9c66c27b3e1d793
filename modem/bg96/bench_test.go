package bg96

import "testing"

// The parsers telemetry runs on every poll.
func BenchmarkParsers(b *testing.B) {
	cases := []struct {
		name string
		f    func() error
	}{
		{"QCSQ", func() error { _, err := ParseQCSQ(`+QCSQ: "CAT-M1",-65,-95,160,-11`); return err }},
		{"CEREG", func() error { _, err := ParseReg(`+CEREG: 2,1,"1A2B","01A2B3C",8`, RegQuery); return err }},
		{"COPS", func() error { _, err := ParseCOPS(`+COPS: 0,0,"Telekom.de",8`); return err }},
		{"QNWINFO", func() error { _, err := ParseQNWINFO(`+QNWINFO: "CAT-M1","26201","LTE BAND 20",6300`); return err }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if err := c.f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
