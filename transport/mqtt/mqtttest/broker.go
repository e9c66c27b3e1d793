// Package mqtttest runs a real mosquitto broker for tests, the way
// periph.io keeps its fakes beside the interfaces (gpiotest): the mqtt
// package's tests, the cellagent command's and any later one (the
// daemon, a bytes-per-day measurement) start the same broker instead of
// each carrying a copy of the config, start-up and shutdown code.
//
// It is not a fake: the house rules ask for real parts, and the things
// worth testing (persistent sessions across a restart, password files,
// ACLs, TLS and client certificates) are the broker's. Each broker
// listens on a random 127.0.0.1 port with its config in t.TempDir().
//
// Only for tests: it imports "testing" and reports through t.
package mqtttest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cellagent/transport/secret/secrettest"
)

// Mosquitto is where Debian's mosquitto package installs the broker;
// `make deps` installs it.
const Mosquitto = "/usr/sbin/mosquitto"

// Options says what the broker requires of its clients. The zero value
// is a plain-tcp broker open to anonymous clients.
type Options struct {
	// Users are the password file's entries, name to password; with
	// none the broker allows anonymous clients.
	Users map[string]string
	// ACL is the text of a mosquitto ACL file; empty: no ACL.
	ACL string
	// TLS makes the main listener TLS, with a server certificate from a
	// test CA generated for this broker (see Broker.PKI).
	TLS bool
	// CertListener, with TLS, adds a second TLS listener (CertURL) that
	// requires a client certificate from the test CA and takes its CN as
	// the username, so one broker serves password and mutual-TLS clients.
	CertListener bool
}

// Broker is a running mosquitto. It keeps its port across Stop and
// Start, so clients can reconnect to a restarted broker, and it is
// stopped when the test ends.
type Broker struct {
	t        testing.TB
	dir      string
	conf     string
	port     int // main listener: tcp, or TLS with a password when pki is set
	certPort int // TLS with a required client certificate
	scheme   string
	pki      *secrettest.PKI

	mu       sync.Mutex
	cmd      *exec.Cmd
	waitExit chan struct{}
	out      *Buffer
}

// Buffer is a bytes.Buffer safe for concurrent use: the broker's output
// is written by exec's goroutine, and a client's log by goroutines that
// may still run while a test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FreePort returns a loopback TCP port nothing listened on a moment ago:
// for a broker, or as an address where no broker is.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs a broker as o describes and waits until it accepts
// connections. Without mosquitto the test is skipped, or fails when the
// CI variable is set: there a skip would hide every broker test.
func Start(t testing.TB, o Options) *Broker {
	t.Helper()
	if _, err := os.Stat(Mosquitto); err != nil {
		msg := fmt.Sprintf("mosquitto not installed at %s (apt-get install mosquitto mosquitto-clients, or make deps): %v", Mosquitto, err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	b := &Broker{t: t, dir: t.TempDir(), port: FreePort(t), scheme: "tcp"}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	var c strings.Builder
	// mosquitto started as root drops to user "mosquitto", which cannot
	// read files in the test's private temp dir.
	fmt.Fprintf(&c, "user %s\nper_listener_settings false\n", u.Username)
	// Persistence keeps sessions and queued messages across Stop/Start.
	fmt.Fprintf(&c, "persistence true\npersistence_location %s/\n", b.dir)
	c.WriteString("log_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n")
	fmt.Fprintf(&c, "listener %d 127.0.0.1\n", b.port)
	if o.TLS {
		b.pki = secrettest.NewPKI(t)
		b.scheme = "tls"
		fmt.Fprintf(&c, "cafile %s\ncertfile %s\nkeyfile %s\n", b.pki.CAFile, b.pki.ServerCert, b.pki.ServerKey)
		if o.CertListener {
			b.certPort = FreePort(t)
			fmt.Fprintf(&c, "listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n", b.certPort, b.pki.CAFile, b.pki.ServerCert, b.pki.ServerKey)
			c.WriteString("require_certificate true\nuse_identity_as_username true\n")
		}
	} else if o.CertListener {
		t.Fatal("mqtttest: CertListener needs TLS")
	}
	if len(o.Users) == 0 {
		c.WriteString("allow_anonymous true\n")
	} else {
		pw := filepath.Join(b.dir, "passwd")
		first := true
		for name, pass := range o.Users {
			args := []string{"-b"}
			if first {
				args = append(args, "-c") // create the file
			}
			args = append(args, pw, name, pass)
			if out, err := exec.Command("mosquitto_passwd", args...).CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_passwd: %v: %s", err, out)
			}
			first = false
		}
		fmt.Fprintf(&c, "allow_anonymous false\npassword_file %s\n", pw)
	}
	if o.ACL != "" {
		acl := filepath.Join(b.dir, "acl")
		if err := os.WriteFile(acl, []byte(o.ACL), 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&c, "acl_file %s\n", acl)
	}
	b.conf = filepath.Join(b.dir, "mosquitto.conf")
	if err := os.WriteFile(b.conf, []byte(c.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// Registered first, so a broker that started but never listened is
	// ended too.
	t.Cleanup(b.Stop)
	b.Start()
	return b
}

// URL is the main listener's address: tcp://127.0.0.1:port, or tls://
// with Options.TLS.
func (b *Broker) URL() string { return fmt.Sprintf("%s://127.0.0.1:%d", b.scheme, b.port) }

// CertURL is the listener that requires a client certificate
// (Options.CertListener); empty without one.
func (b *Broker) CertURL() string {
	if b.certPort == 0 {
		return ""
	}
	return fmt.Sprintf("tls://127.0.0.1:%d", b.certPort)
}

// PKI is the test CA and the certificates the broker serves with
// Options.TLS, and a client certificate it accepts; nil without TLS.
func (b *Broker) PKI() *secrettest.PKI { return b.pki }

// Start runs mosquitto (again, after Stop: same port, same config,
// persisted sessions) and waits until it accepts TCP connections.
func (b *Broker) Start() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.out = &Buffer{}
	cmd := exec.Command(Mosquitto, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = b.out, b.out
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("start mosquitto: %v", err)
	}
	b.cmd = cmd
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	b.waitExit = exited // before any Fatalf below: Stop waits on it
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", b.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			b.t.Fatalf("mosquitto exited at start:\n%s", b.out)
		default:
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto did not listen on %d:\n%s", b.port, b.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends mosquitto with SIGTERM, which also writes its persistence
// file, and waits for it. Stopping a stopped broker does nothing.
func (b *Broker) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.waitExit:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.waitExit
	}
	b.cmd = nil
	if b.t.Failed() {
		b.t.Logf("mosquitto log:\n%s", b.out)
	}
}
