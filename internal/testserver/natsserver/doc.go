// Package natsserver runs a real nats-server with JetStream as a separate
// process for tests: a free loopback port, the store in a temporary
// directory, users or a token in a generated configuration file. A test can
// kill it (SIGKILL), stop it (SIGTERM), restart it on the same port and
// store, pause it (SIGSTOP, a hung server) and reload a changed
// configuration (SIGHUP), and it creates and reads streams as an admin
// user.
//
//	srv := natsserver.Start(t, natsserver.Options{
//		Users: []natsserver.User{{Name: "sluice", Password: "pw"}},
//	})
//	srv.CreateStream(jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
//	url := srv.URLWithUser("sluice", "pw") // nats://sluice:pw@127.0.0.1:<port>
//	...
//	srv.Kill()
//	srv.Restart()
//	msgs := srv.Read("ORDERS")
//
// The binary is nats-server Version, built by scripts/deps/nats.sh with go
// install into the cache ($SLUICE_NATS_SERVER); DebianBinary finds Debian's
// older nats-server for tests that also run against it. A missing binary
// skips the test, or fails it when dependencies are required (testenv).
// The server is never embedded: outage tests need a process to kill.
package natsserver
