package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// SendCommand publishes command name with payload to a gateway, as a
// fleet operator does, and waits up to wait for the gateway's result. The
// payload is checked first as the gateway would check it, so a mistake is
// reported here rather than by an error result over the paid link. The
// command is not retained (a gateway refuses retained commands) and is
// sent with QoS 1: a gateway that is offline gets it from its persistent
// session when it is back, which may be after wait.
func SendCommand(ctx context.Context, o FleetOptions, device, name string, payload []byte, wait time.Duration) (CommandResult, error) {
	if err := ValidateLevel(device); err != nil {
		return CommandResult{}, fmt.Errorf("mqtt: device id %q: %w", device, err)
	}
	cmd, err := ParseCommand(name, payload, 0)
	if err != nil {
		return CommandResult{}, fmt.Errorf("mqtt: command %s: %w", name, err)
	}
	f, err := NewFleet(o) // the same connection settings and checks
	if err != nil {
		return CommandResult{}, err
	}
	tp := Topics{Prefix: f.o.Prefix, Device: device}
	results := make(chan CommandResult, 8)
	po := f.tr.pahoOptions(ctx, f.o.ClientID, nil)
	po.SetCleanSession(true)
	po.SetAutoReconnect(false)
	cli := paho.NewClient(po)
	if err := waitToken(ctx, cli.Connect(), nil, f.tr.timeout); err != nil {
		return CommandResult{}, fmt.Errorf("mqtt: connect %s: %w", f.tr.url.Redacted(), err)
	}
	defer cli.Disconnect(250)
	// Subscribed before publishing, so a fast answer is not missed.
	sub := cli.Subscribe(tp.CommandResult(name), 1, func(_ paho.Client, m paho.Message) {
		var r CommandResult
		if json.Unmarshal(m.Payload(), &r) == nil && r.V == SchemaVersion && r.ID == cmd.ID {
			select {
			case results <- r:
			default:
			}
		}
	})
	if err := waitToken(ctx, sub, nil, f.tr.timeout); err != nil {
		return CommandResult{}, fmt.Errorf("mqtt: subscribe %s: %w", tp.CommandResult(name), err)
	}
	if err := waitToken(ctx, cli.Publish(tp.Command(name), 1, false, payload), nil, f.tr.timeout); err != nil {
		return CommandResult{}, fmt.Errorf("mqtt: publish %s: %w", tp.Command(name), err)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case r := <-results:
		return r, nil
	case <-timer.C:
		return CommandResult{}, fmt.Errorf("mqtt: no result for %s %s from %s within %s: %w", name, cmd.ID, device, wait, ErrNoResult)
	case <-ctx.Done():
		return CommandResult{}, ctx.Err()
	}
}

// ErrNoResult means the command was published but its result did not
// come in time: the gateway may be offline and run it later.
var ErrNoResult = errors.New("command sent, no result yet")
