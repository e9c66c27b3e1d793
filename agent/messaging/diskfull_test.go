package messaging

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cellagent/agent/store"
	"cellagent/modem/at"
	"cellagent/modem/bg96emu"
	"cellagent/modem/sms"
)

// smallDisk mounts a tmpfs of size bytes for the test, or skips the test
// where mounting is not allowed (it needs root).
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): needs root", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill writes path until the file system has no room left.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// fillingPort fills the disk when the first SMS goes to the modem, so the
// outcome of that send is the first write that finds no room.
type fillingPort struct {
	sms.Commander
	once sync.Once
	fill func()
}

func (p *fillingPort) SMSCommand(ctx context.Context, cmd, body string, opts ...at.CommandOption) ([]string, error) {
	p.once.Do(p.fill)
	return p.Commander.SMSCommand(ctx, cmd, body, opts...)
}

// A full disk must not make an SMS go out twice: the outcome of a send
// the modem confirmed is held until the store can write it, no other
// message is taken meanwhile, new ones are refused, and once there is room
// the outcome is written and published and nothing is sent again, not
// even after a restart.
func TestOutboxFullDiskSendsOnce(t *testing.T) {
	disk := smallDisk(t, 256<<10)
	path := filepath.Join(disk, "state", "agent.db")
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, a := smsModem(t, bg96emu.Config{})
	filler := filepath.Join(disk, "filler")
	port := &fillingPort{Commander: a, fill: func() { fill(t, filler) }}
	o, err := NewOutbox(port, OutboxConfig{Store: st, StoreRetry: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 4 {
		id, _, err := o.Submit(Request{To: "+491701234567", Text: fmt.Sprintf("m%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// As the agent runs it: again after every error.
	ctx, cancel := context.WithCancel(context.Background())
	var done sync.WaitGroup
	done.Add(1)
	go func() {
		defer done.Done()
		for ctx.Err() == nil {
			_ = o.Run(ctx)
			time.Sleep(20 * time.Millisecond)
		}
	}()
	stopOutbox := func() { cancel(); done.Wait() }
	defer stopOutbox()

	eventually(t, "a send whose outcome finds the disk full", func() bool { return o.StoreError() != nil })
	// bbolt may write the first outcomes into free pages of its file; the
	// first that needs a new page fails.
	held := len(m.SentMessages())
	if !errors.Is(o.StoreError(), syscall.ENOSPC) {
		t.Errorf("store error %v, want ENOSPC", o.StoreError())
	}
	if _, _, err := o.Submit(Request{To: "+491701234567", Text: "while full"}); err == nil || !strings.Contains(err.Error(), "store cannot write") {
		t.Errorf("Submit while the store cannot write: %v, want a clear refusal", err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(m.SentMessages()); n != held {
		t.Fatalf("%d messages sent while an outcome was held, %d before: another message was taken", n, held)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every message sent and written", func() bool {
		for _, id := range ids {
			if it, err := st.Get(id); err != nil || it.State != store.Sent {
				return false
			}
		}
		return true
	})
	if o.StoreError() != nil {
		t.Errorf("store error still set after the outcome was written: %v", o.StoreError())
	}
	for _, id := range ids {
		if it, _ := st.Get(id); len(it.Refs) != 1 {
			t.Errorf("%s written with refs %v, want the modem's reference", id, it.Refs)
		}
	}
	results, err := st.Results().Peek(100)
	if err != nil || len(results) != len(ids) {
		t.Errorf("%d results journalled for publishing (%v), want %d", len(results), err, len(ids))
	}

	// A clean stop and a restart: nothing is left mid-send to go again.
	stopOutbox()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = store.Open(path, store.Options{}); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o2, err := NewOutbox(a, OutboxConfig{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	runOutbox(t, o2)
	time.Sleep(300 * time.Millisecond)
	var texts []string
	for _, s := range m.SentMessages() {
		texts = append(texts, s.Text)
	}
	if len(texts) != len(ids) {
		t.Errorf("sent %v after the restart, want each of the %d messages once", texts, len(ids))
	}
}
