// Package browsertest drives Debian's headless Chromium through the
// DevTools protocol, for tests and benchmarks of the web view: load a
// page, evaluate JavaScript in it, take a screenshot. Only for tests.
package browsertest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Chromium is Debian's browser; `make deps` installs it.
const Chromium = "chromium"

// Browser is one headless Chromium with one page.
type Browser struct {
	cmd  *exec.Cmd
	conn *websocket.Conn

	mu      sync.Mutex
	nextID  int
	waiting map[int]chan reply
	done    chan struct{}
}

type reply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// Start runs Chromium with a private profile in a temporary directory
// and connects to its page; without Chromium the test is skipped, or
// fails when CI is set.
func Start(t testing.TB, width, height int) *Browser {
	t.Helper()
	bin, err := exec.LookPath(Chromium)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium not installed (make deps installs it)")
		}
		t.Skip("chromium not installed (apt-get install chromium, or make deps)")
	}
	dir := t.TempDir()
	// As root Chromium refuses to run without --no-sandbox; the rest
	// keeps it from reaching for the network on its own.
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars",
		fmt.Sprintf("--window-size=%d,%d", width, height),
		"--user-data-dir="+dir, "--remote-debugging-port=0", "about:blank")
	log, err := os.Create(filepath.Join(dir, "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &Browser{cmd: cmd, waiting: map[int]chan reply{}, done: make(chan struct{})}
	t.Cleanup(b.close)
	// Chromium writes the port it picked into the profile.
	var port string
	deadline := time.Now().Add(20 * time.Second)
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "DevToolsActivePort")); err == nil {
			if p, _, ok := strings.Cut(string(data), "\n"); ok && p != "" {
				port = p
				break
			}
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(dir, "chromium.log"))
			t.Fatalf("chromium did not start its DevTools endpoint:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	res, err := http.Get("http://127.0.0.1:" + port + "/json/list")
	if err != nil {
		t.Fatal(err)
	}
	var targets []struct{ Type, WebSocketDebuggerURL string }
	err = json.NewDecoder(res.Body).Decode(&targets)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if tg.Type == "page" {
			if b.conn, _, err = websocket.DefaultDialer.Dial(tg.WebSocketDebuggerURL, nil); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if b.conn == nil {
		t.Fatalf("no page among the DevTools targets %+v", targets)
	}
	go b.read()
	return b
}

func (b *Browser) read() {
	defer close(b.done)
	for {
		var m struct {
			ID int `json:"id"`
			reply
		}
		if err := b.conn.ReadJSON(&m); err != nil {
			return
		}
		b.mu.Lock()
		ch := b.waiting[m.ID]
		delete(b.waiting, m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m.reply
		}
	}
}

func (b *Browser) close() {
	if b.conn != nil {
		b.conn.Close()
	}
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
}

// Call sends one DevTools command and returns its result.
func (b *Browser) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	ch := make(chan reply, 1)
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	b.waiting[id] = ch
	err := b.conn.WriteJSON(map[string]any{"id": id, "method": method, "params": params})
	b.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("browsertest: %s: %w", method, err)
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			return nil, fmt.Errorf("browsertest: %s: %s", method, r.Error.Message)
		}
		return r.Result, nil
	case <-b.done:
		return nil, fmt.Errorf("browsertest: %s: connection closed", method)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Navigate loads url in the page.
func (b *Browser) Navigate(ctx context.Context, url string) error {
	_, err := b.Call(ctx, "Page.navigate", map[string]any{"url": url})
	return err
}

// Eval evaluates a JavaScript expression and decodes its value (made
// JSON by the page: return plain values) into out.
func (b *Browser) Eval(ctx context.Context, expr string, out any) error {
	res, err := b.Call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true})
	if err != nil {
		return err
	}
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		return fmt.Errorf("browsertest: %s: %s %s", expr, e.Text, e.Exception.Description)
	}
	if out == nil || len(r.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}

// WaitFor evaluates a boolean expression until it is true.
func (b *Browser) WaitFor(ctx context.Context, expr string) error {
	for {
		var ok bool
		err := b.Eval(ctx, "Boolean("+expr+")", &ok)
		if err == nil && ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("browsertest: waiting for %s: %w", expr, ctx.Err()), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Screenshot returns the page as PNG.
func (b *Browser) Screenshot(ctx context.Context) ([]byte, error) {
	res, err := b.Call(ctx, "Page.captureScreenshot", map[string]any{"format": "png"})
	if err != nil {
		return nil, err
	}
	var r struct{ Data string }
	if err := json.Unmarshal(res, &r); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Data)
}
