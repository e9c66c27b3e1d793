package messaging

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cellagent/agent/store"
	"cellagent/modem/at"
	"cellagent/modem/bg96"
	"cellagent/modem/bg96emu"
	"cellagent/modem/bg96emu/bg96emutest"
	"cellagent/modem/port"
)

// The crash test runs the receive path in a child process (this test
// binary, re-executed) and kills it with SIGKILL at random moments while
// the simulated network delivers messages. The simulator lives in the
// parent, like a modem that keeps its SIM while the agent dies.
const (
	childEnv   = "CELLAGENT_INBOX_CHILD"
	childPort  = "CELLAGENT_INBOX_PORT"
	childStore = "CELLAGENT_INBOX_STORE"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if err := inboxChild(); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// inboxChild is the agent's receive path as the daemon runs it: open the
// port, resynchronise, set PDU mode and indications, open the store, run
// the inbox.
func inboxChild() error {
	sp, err := port.Open(os.Getenv(childPort), 115200)
	if err != nil {
		return err
	}
	a := at.New(sp, at.WithInitialFence())
	defer a.Close()
	ctx := context.Background()
	// As the daemon starts: wait until the modem answers. A predecessor
	// killed mid-answer can leave the simulator busy for a while.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := bg96.WaitReady(wctx, a, a); err != nil {
		return err
	}
	for _, c := range []string{"ATE0", "AT+CMGF=0", "AT+CNMI=2,1,0,1,0", `AT+CPMS="SM","SM","SM"`} {
		if _, err := a.Command(ctx, c); err != nil {
			return err
		}
	}
	st, err := store.Open(os.Getenv(childStore), store.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Println("ready")
	return NewInbox(a, InboxConfig{Store: st, Sweep: 100 * time.Millisecond}).Run(ctx)
}

func TestInboxSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes for several seconds")
	}
	const messages = 200
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CELLAGENT_CRASH_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (replay with CELLAGENT_CRASH_SEED)", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	m := bg96emutest.Start(t, bg96emu.Config{ReportDelay: 50 * time.Millisecond})
	dir := t.TempDir()
	link := bg96emutest.Link(t, m, dir)
	dbPath := filepath.Join(dir, "state", "agent.db")

	// Every tenth message is long enough to need three parts.
	want := map[string]bool{}
	texts := make([]string, messages)
	for i := range texts {
		texts[i] = fmt.Sprintf("message %03d", i)
		if i%10 == 5 {
			texts[i] += " " + strings.Repeat("long ", 70)
		}
		want[texts[i]] = true
	}
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		r := rand.New(rand.NewPCG(seed, 1))
		for _, text := range texts {
			if err := m.DeliverText("+4917012345", text); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Duration(r.IntN(40)) * time.Millisecond)
		}
	}()

	start := func() (*exec.Cmd, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=1", childPort+"="+link, childStore+"="+dbPath)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(out)
			ok := sc.Scan() && sc.Text() == "ready"
			ready <- ok
			for sc.Scan() {
			}
		}()
		select {
		case ok := <-ready:
			if !ok {
				_ = cmd.Wait()
				return nil, fmt.Errorf("child did not start")
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, fmt.Errorf("child not ready in time")
		}
		return cmd, nil
	}

	// Kill until every message was handed to the network and at least
	// minKills children died, so deaths land in every phase of the work.
	const minKills = 25
	kills := 0
	deadline := time.Now().Add(90 * time.Second)
	for {
		cmd, err := start()
		if err != nil {
			t.Fatal(err)
		}
		done := delivered
		if kills < minKills {
			done = nil
		}
		select {
		case <-done:
			// All delivered: let this child drain the SIM, then stop it.
			for m.Pending() > 0 || len(m.Stored()) > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("SIM not drained: %d stored, %d held by the network", len(m.Stored()), m.Pending())
				}
				time.Sleep(50 * time.Millisecond)
			}
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
		case <-time.After(time.Duration(10+rng.IntN(250)) * time.Millisecond):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			kills++
			continue
		}
		break
	}

	st, err := store.Open(dbPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	items, err := st.Pending(10 * messages)
	if err != nil {
		t.Fatal(err)
	}
	seenText := map[string]int{}
	seenID := map[string]int{}
	for _, it := range items {
		var msg Inbound
		if err := json.Unmarshal(it.Rec, &msg); err != nil {
			t.Fatal(err)
		}
		seenText[msg.Text]++
		seenID[msg.ID]++
		if msg.Error != "" || len(msg.Missing) > 0 {
			t.Errorf("message %s damaged: %s missing %v", msg.ID, msg.Error, msg.Missing)
		}
	}
	lost, dup := 0, 0
	for text := range want {
		switch seenText[text] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	for id, n := range seenID {
		if n > 1 {
			t.Errorf("id %s stored %d times", id, n)
		}
	}
	t.Logf("%d messages, %d SIGKILL cycles: %d stored, %d lost, %d duplicated", messages, kills, len(items), lost, dup)
	if lost > 0 || dup > 0 || len(items) != messages {
		t.Errorf("%d lost, %d duplicated, %d stored (want %d)", lost, dup, len(items), messages)
	}
}
