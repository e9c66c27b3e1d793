//go:build !linux

package bootclock

import "time"

// System: no boot id off Linux, so saved times are taken as they are.
func System() (id string, up time.Duration) { return "", 0 }
