package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/pflag"

	"cellagent/agent/lab"
	"cellagent/modem/bg96emu"
	"cellagent/transport/bsc/bscemu"
	"cellagent/transport/secret"
)

// The SIM `platform` simulates when no --sim is given: the modem
// simulator's default ICCID, so `cellbench modem` and `cellbench platform`
// agree.
const (
	benchICCID  = "89882280666012345678"
	benchMSISDN = "882285100012345"
)

func runPlatform(ctx context.Context, e *env, args []string) error {
	var (
		listen, appURL, symlink, caOut, scenario string
		dataSymlink                              string
		users, sims                              []string
		useTLS, control, verbose                 bool
		resetDelay                               time.Duration
	)
	fs := newFlags(e, "platform", "[--listen ADDR] --user USER:PWFILE... [flags]",
		`Run a simulator of the operator's BSC platform until interrupted: the OAuth2
token endpoint and the SIM management API, with per-SIM quotas, usage,
events, MT SMS and resets. MO SMS and delivery reports are forwarded to
--app-url as the platform's JSON, re-sent until it answers 2xx.

With --modem-symlink a simulated BG96 runs on a pseudo-terminal (the symlink
points to it), as the device of the first --sim: MT SMS posted to the API arrive on
it, MO SMS it sends go to --app-url, and a reset makes it deregister and
register again.

Passwords come from files (mode 0600), never from flags. Without --sim one SIM
is simulated: `+benchICCID+`, msisdn `+benchMSISDN+`.

Examples:
  cellbench platform --user admin:/tmp/pw --modem-symlink /tmp/ttyBG96
  cellbench platform --listen 127.0.0.1:8443 --tls --user admin:/tmp/pw \
      --sim 89882280666012345678,msisdn=882285100012345,data=10MB \
      --app-url http://127.0.0.1:9000/sms --control`)
	fs.StringVar(&listen, "listen", "127.0.0.1:8443", "address to serve the API on")
	fs.BoolVar(&useTLS, "tls", false, "serve HTTPS with a fresh self-signed certificate; its PEM is written for clients (see --ca-out)")
	fs.StringVar(&caOut, "ca-out", "", "with --tls, write the certificate PEM here (default: a temporary file, removed on exit)")
	fs.StringArrayVar(&users, "user", nil, "API user as user:passwordfile (repeatable; at least one)")
	fs.StringArrayVar(&sims, "sim", nil, "SIM as ICCID[,msisdn=N][,imsi=N][,label=S][,data=500MB][,sms=250] (repeatable)")
	fs.StringVar(&appURL, "app-url", "", "application URL receiving MO SMS (POST) and delivery reports (PATCH)")
	fs.BoolVar(&control, "control", false, "enable the unauthenticated /_sim/ fault-injection endpoints")
	fs.StringVar(&symlink, "modem-symlink", "", "also run a BG96 simulator for the first SIM, with a symlink to its pty here")
	fs.StringVar(&dataSymlink, "modem-data-symlink", "", "with --modem-symlink, also serve the modem's data port (ATD*99***1# answers CONNECT) with a symlink here")
	fs.StringVar(&scenario, "scenario", "", "with --modem-symlink, a scenario file for the simulated BG96 to play (see testdata/scenarios/)")
	fs.DurationVar(&resetDelay, "reset-delay", 2*time.Second, "time from a queued reset to the network detaching the SIM")
	fs.BoolVarP(&verbose, "verbose", "v", false, "log every request, forward and modem command to stderr")
	auth := appAuth(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	appHeader, err := auth()
	if err != nil {
		return err
	}
	if scenario != "" && symlink == "" {
		return usageError(errors.New("--scenario needs --modem-symlink"))
	}
	sc, err := loadScenario(scenario)
	if err != nil {
		return err
	}
	log := logger(e.stderr, verbose)
	cfg := bscemu.Config{
		Users: map[string]string{}, Listen: listen, TLSSelfSigned: useTLS,
		AppURL: appURL, AppHeader: appHeader, Control: control, ResetDelay: resetDelay, Logger: log,
	}
	if err := checkSimFlags(&cfg, users, sims, caOut); err != nil {
		return err
	}
	tlsCfg, certPEM, err := cfg.ServerTLS()
	if err != nil {
		return err
	}
	srv, err := bscemu.New(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := srv.Start(listen, tlsCfg); err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	fmt.Fprintf(e.stdout, "BSC platform simulator at %s (use it as base_url)\n", srv.URL())
	if certPEM != nil {
		path, err := writeCA(caOut, certPEM)
		if err != nil {
			return err
		}
		if caOut == "" {
			defer os.Remove(path)
		}
		fmt.Fprintf(e.stdout, "self-signed certificate written to %s (use it as ca_file)\n", path)
	}
	for _, sc := range cfg.SIMs {
		fmt.Fprintf(e.stdout, "SIM %s", sc.ICCID)
		if sc.MSISDN != "" {
			fmt.Fprintf(e.stdout, " msisdn %s", sc.MSISDN)
		}
		fmt.Fprintln(e.stdout)
	}
	if appURL != "" {
		fmt.Fprintf(e.stdout, "MO SMS and delivery reports go to %s\n", appURL)
	}
	var modem *bg96emu.Modem
	if symlink != "" {
		first := cfg.SIMs[0]
		m, err := lab.StartModem(ctx, srv, bg96emu.Config{ICCID: first.ICCID, IMSI: first.IMSI, Logger: log}, log)
		if err != nil {
			return err
		}
		defer m.Close()
		if err := m.Link(symlink); err != nil {
			return err
		}
		if dataSymlink != "" {
			if err := m.StartDataPort(); err != nil {
				return err
			}
			if err := m.LinkDataPort(dataSymlink); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "its data port on %s\n", dataSymlink)
		}
		modem = m
		fmt.Fprintf(e.stdout, "BG96 simulator for SIM %s on %s (symlink %s)\n", m.ICCID(), m.PTY(), symlink)
		if appURL == "" {
			fmt.Fprintln(e.stdout, "no --app-url: MO SMS from the modem are accepted but not forwarded")
		}
	}
	fmt.Fprintln(e.stdout, "Ctrl-C to stop")
	if modem == nil {
		<-ctx.Done()
		return nil
	}
	return playScenario(ctx, modem, sc)
}

// checkSimFlags fills cfg from the repeatable flags and rejects what
// cannot work, before anything listens.
func checkSimFlags(cfg *bscemu.Config, users, sims []string, caOut string) error {
	if len(users) == 0 {
		return usageError(errors.New("give at least one --user user:passwordfile: without one nobody can get a token"))
	}
	for _, spec := range users {
		u, pw, err := bscemu.ParseUserSpec(spec)
		if err != nil {
			return usageError(fmt.Errorf("--user: %w", err))
		}
		cfg.Users[u] = pw
	}
	for _, spec := range sims {
		sc, err := bscemu.ParseSIMSpec(spec)
		if err != nil {
			return usageError(fmt.Errorf("--sim: %w", err))
		}
		cfg.SIMs = append(cfg.SIMs, sc)
	}
	if len(cfg.SIMs) == 0 {
		cfg.SIMs = []bscemu.SIMConfig{{ICCID: benchICCID, MSISDN: benchMSISDN, Label: "bench"}}
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return usageError(fmt.Errorf("--listen %q: %w", cfg.Listen, err))
	}
	if cfg.AppURL != "" {
		u, err := url.Parse(cfg.AppURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usageError(fmt.Errorf("--app-url %q: want an http:// or https:// URL", cfg.AppURL))
		}
	}
	if caOut != "" && !cfg.TLSSelfSigned {
		return usageError(errors.New("--ca-out needs --tls"))
	}
	if cfg.ResetDelay <= 0 {
		return usageError(fmt.Errorf("--reset-delay %s: want a positive duration", cfg.ResetDelay))
	}
	return nil
}

// writeCA saves the certificate PEM for clients. It is public, so 0644:
// the agent's config may be read by a service user other than ours.
func writeCA(path string, pem []byte) (string, error) {
	if path == "" {
		f, err := os.CreateTemp("", "bscemu-ca-*.pem")
		if err != nil {
			return "", fmt.Errorf("certificate file: %w", err)
		}
		path = f.Name()
		if err := f.Close(); err != nil {
			return "", fmt.Errorf("certificate file: %w", err)
		}
	}
	if err := os.WriteFile(path, pem, 0o644); err != nil {
		return "", fmt.Errorf("certificate file: %w", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		return "", fmt.Errorf("certificate file: %w", err)
	}
	return path, nil
}

// appAuth is how `platform` authenticates its forwards to the
// application: a header with a secret from a file, or basic auth.
func appAuth(fs *pflag.FlagSet) func() (http.Header, error) {
	file := fs.String("app-secret-file", "", "secret for the application (mode 0600), sent with every forward")
	header := fs.String("app-auth-header", "X-Cellagent-Token", "header carrying --app-secret-file")
	user := fs.String("app-basic-user", "", "send --app-secret-file as basic auth for this user instead")
	return func() (http.Header, error) {
		if *file == "" {
			return nil, nil
		}
		sec, err := secret.Read(*file)
		if err != nil {
			return nil, fmt.Errorf("--app-secret-file: %w", err)
		}
		h := http.Header{}
		if *user != "" {
			r := &http.Request{Header: h}
			r.SetBasicAuth(*user, sec)
			return h, nil
		}
		h.Set(*header, sec)
		return h, nil
	}
}
