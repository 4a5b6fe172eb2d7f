// Package sink is the contract between sluice's forwarders and its upstream
// backends: the Message a backend receives, the Sink interface it implements
// and the error classes that tell the forwarder whether to retry, split a
// batch, or dead-letter one message.
//
// Each backend lives in its own subpackage (sink/kafka, sink/file, ...) and
// asserts the interface:
//
//	var _ sink.Sink = (*Writer)(nil)
//
// Backends never import the spool, the agent or the config package: cmd maps
// configuration into each backend's Options.
package sink
