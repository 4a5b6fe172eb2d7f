// Package rabbitmq starts real RabbitMQ nodes (the Debian rabbitmq-server
// package) for tests: one node per Server, in its own temporary directory,
// on free loopback ports, with its own node name, Erlang cookie, database,
// logs, configuration and plugin list, so that it never touches another
// node on the machine (the system one or another test's).
//
//	srv := rabbitmq.Start(t, rabbitmq.Options{Config: []string{"max_message_size = 100000"}})
//	srv.DeclareQueue(t, "orders", nil)
//	url := srv.URL()                      // amqp://guest:guest@127.0.0.1:<port>/
//	... publish ...
//	msgs := srv.ReadQueue(t, "orders")    // everything in the queue, in order
//	srv.Kill(t); srv.Restart(t)           // kill -9, then start on the same ports and data
//
// The node runs without systemd: the package's own start script
// (/usr/lib/rabbitmq/bin/rabbitmq-server, which execs erl) in a process
// group of its own, stopped by signalling that group only. The Erlang
// distribution listener and the AMQP listener bind 127.0.0.1. epmd (the
// Erlang port mapper, one per machine on port 4369) is shared with every
// other Erlang node: the first node starts it and it outlives the tests,
// as it does for any Erlang program; nodes register under unique names
// (sluice-<random>@localhost).
//
// A missing rabbitmq-server skips the test under plain `go test` and fails
// it under scripts/test and CI (internal/testenv); a node that cannot start
// fails the test. scripts/deps/rabbitmq.sh installs the package.
package rabbitmq
