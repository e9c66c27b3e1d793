//go:build apikill

package main

import (
	"os"
	"syscall"
)

// apiKillEnv names a file: while it exists, the agent removes it and
// dies by SIGKILL right after committing an SMS from the local API and
// before answering, so exactly one request loses its answer.
const apiKillEnv = "CELLAGENT_TEST_KILL_AFTER_QUEUED"

func init() {
	flag := os.Getenv(apiKillEnv)
	if flag == "" {
		return
	}
	apiAfterQueued = func() {
		if os.Remove(flag) == nil {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}
