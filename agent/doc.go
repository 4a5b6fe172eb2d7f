// Package agent is the running sidecar: the localhost ingest API
// (fasthttp), one forwarder per sink reading its own spool cursor, request
// records, the dead-letter log, back-pressure, metrics and the drain
// lifecycle. It never reads configuration: cmd/sluice builds Options.
//
//	a, err := agent.New(agent.Options{Spool: sp, DeadLetter: dl, Sinks: specs})
//	err = a.Run(ctx) // serves until ctx is done, then drains
//
// Each stored message records the sinks it targets, decided at ingest from
// the sinks' topic globs, so editing routes never re-routes a backlog.
// Forwarders keep one lane per topic and acknowledge their cursor up to the
// lowest record not yet delivered or dead-lettered.
//
// Other ingest protocols are front-ends in their own packages (the Kafka
// protocol: frontend/kafkaproto). They spool through Accept, the
// transport-neutral accept path (routing, caps, one group commit, typed
// errors), and run as Options.FrontEnds: Run serves them and stops them at
// the end of the drain, before the spool closes.
//
// Local pull queues (Options.Queues, queue*.go) are the passive
// counterpart: instead of a forwarder, a queue reads its cursor into a
// bounded in-memory index, leases messages to consumers of the pull API
// (/v1/queues/{queue}/pull|ack|nack|extend), records deliveries and
// acknowledgements in its own small log spool, and acknowledges its cursor
// up to the lowest unresolved message, as a forwarder does.
package agent
