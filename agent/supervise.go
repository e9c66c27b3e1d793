package agent

import (
	"context"
	"fmt"
	"time"

	"cellagent/agent/supervisor"
	"cellagent/modem/power"
	"cellagent/transport/bsc"
	"cellagent/transport/secret"
)

// newSupervisor builds the recovery ladder from the configuration: the
// operator API when [bsc] names one, the GPIO lines when [power] does.
func (d *daemon) newSupervisor() (*supervisor.Supervisor, error) {
	deps := supervisor.Deps{
		Link: d.keeper, ICCID: d.cfg.BSC.ICCID, Store: d.st, Emit: d.queueEvent, Logger: d.log,
		Clock: supervisor.SystemClock(d.clock), ConfigFault: d.data.fault,
	}
	if d.data.bearer != nil {
		deps.Bearer = d.data.bearer
	}
	if b := d.cfg.BSC; b.BaseURL != "" {
		pw, err := secret.Read(b.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("agent: bsc.password_file: %w", err)
		}
		c, err := bsc.New(bsc.Config{
			BaseURL: b.BaseURL, Username: b.Username, Password: pw,
			CAFile: b.CAFile, ClientCert: b.ClientCert, ClientKey: b.ClientKey,
			AllowInsecureHTTP: b.AllowInsecureHTTP, Timeout: b.Timeout.Duration, Logger: d.log,
			Time: d.data.clock.Now,
		})
		if err != nil {
			return nil, fmt.Errorf("agent: bsc: %w", err)
		}
		deps.BSC = c
	}
	p := d.cfg.Power
	deps.PowerLines = supervisor.PowerLines{PWRKey: p.PWRKey != "", ResetN: p.ResetN != "", Supply: p.Supply != ""}
	if p.PWRKey != "" || p.ResetN != "" || p.Supply != "" {
		c, err := power.Open(power.Names{PWRKey: p.PWRKey, ResetN: p.ResetN, Supply: p.Supply, Inverted: p.Inverted}, power.WithLogger(d.log))
		if err != nil {
			return nil, fmt.Errorf("agent: [power]: %w", err)
		}
		deps.Power = c
	}
	s, err := supervisor.New(d.cfg.Supervisor, deps)
	if err != nil {
		return nil, fmt.Errorf("agent: supervisor: %w", err)
	}
	return s, nil
}

// runSupervisor runs the ladder and, when configured, feeds it the state
// of the broker connection as the data-path check. An embedded broker
// says nothing about the cellular link, so it is never fed.
func (d *daemon) runSupervisor(ctx context.Context) {
	if c := d.cfg.Supervisor; c.DataPathMQTT && c.ProbeHost == "" && d.broker == nil {
		go func() {
			t := time.NewTicker(d.cfg.Supervisor.Poll.Duration)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					d.sup.SetDataPath(d.client.Stats().Connected)
				}
			}
		}()
	}
	if err := d.sup.Run(ctx); err != nil && ctx.Err() == nil {
		d.setErr(err)
		d.log.Error("agent: supervisor stopped", "err", err)
	}
}
