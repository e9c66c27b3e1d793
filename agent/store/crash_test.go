package store

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The crash tests re-execute the test binary as a child that writes to the
// store as fast as it can and prints a line only after each call returned;
// the parent kills it with SIGKILL at random moments and checks that every
// acknowledged write survived, exactly once, in a consistent file.

const (
	childEnv   = "CELLAGENT_STORE_CRASH_CHILD"
	childPath  = "CELLAGENT_STORE_CRASH_PATH"
	childCycle = "CELLAGENT_STORE_CRASH_CYCLE"
	childRedo  = "CELLAGENT_STORE_CRASH_REDO"
	crashSeed  = 20250301

	// At least minCycles kills; more, up to maxCycles, while the test is
	// within crashBudget, so a loaded machine (or -race) stays fast.
	minCycles   = 50
	maxCycles   = 150
	crashBudget = 5 * time.Second
)

func moreCycles(cycle int, start time.Time) bool {
	return cycle < minCycles || (cycle < maxCycles && time.Since(start) < crashBudget)
}

func runChild(mode string) int {
	s, err := Open(os.Getenv(childPath), Options{MaxInbox: 1 << 20, MaxOutbox: 1 << 20, MaxDedupe: 1 << 20})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	out := os.Stdout
	fmt.Fprintln(out, "ready")
	// Ids acknowledged in earlier cycles: re-committing them is what the
	// agent does when an SMS is re-read after a crash before AT+CMGD.
	for id := range strings.FieldsSeq(os.Getenv(childRedo)) {
		added, err := s.Commit(id, []byte(id))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Fprintln(out, "redo", id, added)
	}
	cycle := os.Getenv(childCycle)
	for i := 0; ; i++ {
		id := fmt.Sprintf("c%s-%d", cycle, i)
		switch mode {
		case "inbox":
			if _, err := s.Commit(id, []byte("payload "+id)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			fmt.Fprintln(out, "ok", id)
			if i%3 == 0 {
				if err := s.MarkPublished(id); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 2
				}
				fmt.Fprintln(out, "pub", id)
			}
		case "outbox":
			id, err := s.Enqueue([]byte("payload " + id))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			fmt.Fprintln(out, "ok", id)
			if err := s.MarkSending(id); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			if i%2 == 0 {
				if err := s.MarkSent(id, []int{i % 256}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 2
				}
				fmt.Fprintln(out, "sent", id)
			}
		default:
			fmt.Fprintln(os.Stderr, "unknown child mode", mode)
			return 2
		}
	}
}

type crashLog struct {
	ok, pub, sent []string
	redo          map[string]string
}

// killCycle runs one child until a random moment after it is ready, kills
// it and returns what it acknowledged.
func killCycle(t *testing.T, rng *rand.Rand, mode, path string, cycle int, redo []string) crashLog {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childPath+"="+path,
		fmt.Sprintf("%s=%d", childCycle, cycle), childRedo+"="+strings.Join(redo, " "))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "ready" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("cycle %d: child not ready: %q %s", cycle, sc.Text(), stderr.String())
	}
	delay := time.Duration(rng.IntN(40_000)) * time.Microsecond
	killer := time.AfterFunc(delay, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
	defer killer.Stop()
	log := crashLog{redo: map[string]string{}}
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "ok":
			log.ok = append(log.ok, f[1])
		case len(f) == 2 && f[0] == "pub":
			log.pub = append(log.pub, f[1])
		case len(f) == 2 && f[0] == "sent":
			log.sent = append(log.sent, f[1])
		case len(f) == 3 && f[0] == "redo":
			log.redo[f[1]] = f[2]
		default:
			t.Fatalf("cycle %d: unexpected child line %q", cycle, sc.Text())
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("cycle %d: child ended with %v, not SIGKILL: %s", cycle, err, stderr.String())
	}
	return log
}

func TestCrashInbox(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash", "store.db")
	rng := rand.New(rand.NewPCG(crashSeed, 1))
	acked := map[string]bool{}     // id → acknowledged by Commit
	published := map[string]bool{} // id → MarkPublished returned
	var last []string
	start := time.Now()
	cycle := 0
	for ; moreCycles(cycle, start); cycle++ {
		log := killCycle(t, rng, "inbox", path, cycle, last)
		for _, id := range last {
			if log.redo[id] == "true" {
				t.Errorf("cycle %d: re-commit of acknowledged %s added it again", cycle, id)
			}
		}
		for _, id := range log.ok {
			acked[id] = true
		}
		for _, id := range log.pub {
			published[id] = true
		}
		if n := len(log.ok); n > 0 {
			last = log.ok[max(0, n-3):]
		}
		s := openAt(t, path, Options{MaxInbox: 1 << 20, MaxDedupe: 1 << 20})
		checkConsistent(t, s)
		items, err := s.Pending(1 << 20)
		if err != nil {
			t.Fatalf("cycle %d: Pending: %v", cycle, err)
		}
		seen := map[string]int{}
		for _, it := range items {
			seen[it.ID]++
			if string(it.Rec) != "payload "+it.ID {
				t.Errorf("cycle %d: %s has payload %q", cycle, it.ID, it.Rec)
			}
		}
		lost := 0
		err = s.db.View(func(tx *bolt.Tx) error {
			ids := tx.Bucket(bIDs)
			for id := range acked {
				switch {
				case ids.Get([]byte(id)) == nil:
					lost++
					t.Errorf("cycle %d: acknowledged %s lost", cycle, id)
				case published[id] && seen[id] != 0:
					t.Errorf("cycle %d: published %s still pending", cycle, id)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("cycle %d: %s pending %d times", cycle, id, n)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if lost > 0 {
			t.Fatalf("cycle %d: %d lost", cycle, lost)
		}
	}
	t.Logf("inbox crash test: %d SIGKILL cycles in %s, %d commits acknowledged, %d published, 0 lost, 0 duplicated",
		cycle, time.Since(start).Round(time.Millisecond), len(acked), len(published))
}

func TestCrashOutbox(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash", "store.db")
	rng := rand.New(rand.NewPCG(crashSeed, 2))
	acked, sent := map[string]bool{}, map[string]bool{}
	start := time.Now()
	cycle := 0
	for ; moreCycles(cycle, start); cycle++ {
		log := killCycle(t, rng, "outbox", path, cycle, nil)
		for _, id := range log.ok {
			acked[id] = true
		}
		for _, id := range log.sent {
			sent[id] = true
		}
		s := openAt(t, path, Options{MaxOutbox: 1 << 20})
		checkConsistent(t, s)
		err := s.db.View(func(tx *bolt.Tx) error {
			for id := range acked {
				it, err := getItem(tx, id)
				if err != nil {
					return fmt.Errorf("cycle %d: acknowledged %s: %w", cycle, id, err)
				}
				if it.State == Sending {
					t.Errorf("cycle %d: %s still sending after reopen", cycle, id)
				}
				if sent[id] && it.State != Sent {
					t.Errorf("cycle %d: %s acknowledged sent, now %s", cycle, id, it.State)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("outbox crash test: %d SIGKILL cycles in %s, %d enqueues acknowledged, %d marked sent, 0 lost",
		cycle, time.Since(start).Round(time.Millisecond), len(acked), len(sent))
}
