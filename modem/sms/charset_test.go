package sms

import (
	"sync"
	"testing"

	"github.com/warthog618/sms/encoding/gsm7/charset"
)

// TestCharsetTablesPrebuilt first-uses a table nothing else in this package
// touches from several goroutines at once: without the init that builds the
// tables, the race detector reports the library's lazy construction.
func TestCharsetTablesPrebuilt(t *testing.T) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if len(charset.NewEncoder(charset.Telugu)) == 0 || len(charset.NewExtEncoder(charset.Telugu)) == 0 {
				t.Error("empty Telugu table")
			}
		})
	}
	wg.Wait()
}
