package bsc

import (
	"fmt"
	"strings"
)

// ValidateICCID checks the ICCID before it goes into a URL path: 19 or 20
// decimal digits, optionally followed by the filler 'F' some SIMs report.
// Checking locally turns a typo into a clear error instead of a 404, and
// keeps anything but digits out of the request path.
func ValidateICCID(iccid string) error {
	digits := strings.TrimSuffix(strings.TrimSuffix(iccid, "F"), "f")
	if n := len(digits); n < 19 || n > 20 {
		return fmt.Errorf("%w %q: want 19-20 digits (optionally a trailing F), got %d characters", ErrInvalidICCID, iccid, len(iccid))
	}
	for i, r := range digits {
		if r < '0' || r > '9' {
			return fmt.Errorf("%w %q: character %d is %q, want a digit", ErrInvalidICCID, iccid, i+1, r)
		}
	}
	return nil
}
