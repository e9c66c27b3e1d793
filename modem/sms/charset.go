package sms

import "github.com/warthog618/sms/encoding/gsm7/charset"

// init builds every GSM 7-bit table of github.com/warthog618/sms up front.
// The library builds them lazily, on first use, into package globals and
// without locking, so two goroutines coding their first SMS at once race:
// the agent's inbox decoding while its outbox encodes, or the simulator
// beside a host in one process. That is a data race, and at worst Go's
// fatal "concurrent map read and map write". Built once here, before any
// goroutine exists, the tables are only ever read. Every package that
// uses the library imports this one, so the tables are built.
func init() {
	charset.DefaultDecoder()
	charset.DefaultEncoder()
	charset.DefaultExtEncoder()
	for nli := charset.Default; nli < charset.End; nli++ {
		charset.NewDecoder(nli)
		charset.NewEncoder(nli)
		charset.NewExtEncoder(nli)
	}
}
