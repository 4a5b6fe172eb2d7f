// Package artemis runs a real ActiveMQ Artemis broker for tests: one JVM
// per Broker, its instance (configuration, journal, logs) in a temporary
// directory, one AMQP 1.0 acceptor on a free loopback port.
//
//	b := artemis.Start(t, artemis.Options{
//		Users: map[string]string{"sluice": "secret"},
//	})
//	url := b.URL("sluice", "secret") // amqp://sluice:secret@127.0.0.1:PORT
//	...
//	b.Kill(t)    // SIGKILL, as a crash
//	b.Restart(t) // same port, same journal
//
// The distribution comes from scripts/deps/artemis.sh (Maven Central,
// unpacked into the cache directory); the test finds it through
// SLUICE_ARTEMIS_HOME or the cache path, and calls testenv.Missing when it
// or java is not there. A broker that is there but does not start fails
// the test.
//
// The instance is written here rather than by `artemis create` (which
// starts a JVM of its own and tunes the journal for seconds): broker.xml
// with persistence on and a synced NIO journal, a JAAS properties login
// (users file reloaded on change, so SetPassword rotates a credential
// while the broker runs), no web console, a small heap. Every process this
// package starts is its own child, stopped by its own pid in t.Cleanup.
package artemis
