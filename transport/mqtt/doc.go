// Package mqtt is cellagent's MQTT transport on
// github.com/eclipse/paho.mqtt.golang: the versioned topic schema
// (SCHEMA.md), the device Client with its birth, last will,
// store-and-forward publisher and remote commands, the report-by-exception
// rule for telemetry, and the fleet-side reader.
//
// # Device side
//
// The daemon queues what it has to say (Client.QueueTelemetry, QueueEvent,
// QueueSMSIn, QueueSMSResult); each call returns once the record is in a
// durable Queue, so nothing depends on the link being up. Client.Run keeps
// one session at a time: CONNECT with a last will carrying the session
// number, the command subscriptions, a retained birth, then it drains the
// ordered queue (QoS 1, acknowledged in the queue only after PUBACK) and
// the telemetry queue, flagging what waited across a disconnect as
// replayed. The agent store's queues plug in through Adapt; this package
// does not import the agent.
//
// Paho's own durability is not used: its store lives in memory, it drops
// QoS 0 while offline and queues nothing before a first connect. The
// durable queues are the only truth, which makes delivery at least once
// and in order, with (device, topic, q) to de-duplicate on.
//
// # Fleet side
//
// Fleet follows the status, telemetry and events of every gateway under a
// prefix, optionally through a shared subscription, and keeps a snapshot;
// List reads the retained state once.
//
// # Cellular cost
//
// Bytes are the budget (≤50 KiB/day at defaults, at the IP level): compact
// JSON with short keys, telemetry only by exception, a 20 min keep-alive
// and no TCP keep-alive probes, TLS session
// resumption, jittered back-off, and exact command subscriptions rather
// than a wildcard that would echo our own results back over the link.
package mqtt
