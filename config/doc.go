// Package config reads sluice's configuration from environment variables,
// validates it, refuses variables the agent does not know and prints the
// effective configuration with secrets redacted. Only cmd imports it: cmd maps
// Config into each component's Options, so no other package depends on the
// environment. It imports no other package of the project.
//
// # Naming
//
// Every variable starts with SLUICE_. Core settings are SLUICE_<SETTING>.
// Sinks are named in SLUICE_SINKS (default "stdout"), and each named sink
// reads SLUICE_<NAME>_<SETTING>, NAME being the sink name in upper case. A
// sink's TYPE defaults to its name, so a single Kafka cluster needs only
//
//	SLUICE_SINKS=kafka
//	SLUICE_KAFKA_BROKERS=b1:9092,b2:9092
//
// and two clusters, the second one taking only the orders topic:
//
//	SLUICE_SINKS=main,dr
//	SLUICE_MAIN_TYPE=kafka
//	SLUICE_MAIN_BROKERS=main-1:9092,main-2:9092
//	SLUICE_DR_TYPE=kafka
//	SLUICE_DR_BROKERS=dr-1:9092
//	SLUICE_DR_TOPICS=orders
//
// Sink names are [a-z0-9]+ (SLUICE_SINKS is read case-insensitively and
// stored lower-case). A name may not be the first word of a core setting
// (spool, admin, log, max, ...), a word kept for core settings to come, or
// "type": SLUICE_SPOOL_DIR must never be mistaken for a sink's setting.
// Variables lists every variable; Reference renders them as a markdown table.
//
// # Values
//
// A variable that is set but empty counts as unset: the default applies.
// Load implements this by removing empty SLUICE_* variables from the process
// environment before reading it. Sizes are whole numbers with an optional
// unit (1024, 64KiB, 4MiB, 1GiB, 500MB; see Bytes); durations use Go syntax
// (300ms, 10s, 1m30s) and may not be negative; lists are comma-separated,
// items trimmed, empty items refused. Settings with a fixed set of values
// (SLUICE_SPOOL_SYNC, SLUICE_<NAME>_ACKS, ...) are matched without regard to
// case and stored lower-case.
//
// # Errors
//
// Load reports every problem at once, one line each, and each line names its
// variable:
//
//	SLUICE_SPOOL_SYNC: must be one of always|interval|never, got "sometimes"
//	SLUICE_SPOL_DIR: unknown variable; did you mean SLUICE_SPOOL_DIR?
//	SLUICE_DR_BROKERS: sink "dr" is not in SLUICE_SINKS
//	SLUICE_OUT_BROKERS: BROKERS is a setting of kafka sinks, but sink "out" has type file
//
// Every SLUICE_* variable must be one the agent reads, with one exception:
// the variables Kubernetes injects for a Service whose name starts with
// "sluice" (SLUICE_SERVICE_HOST, SLUICE_METRICS_SERVICE_PORT,
// SLUICE_SERVICE_PORT_<PORT NAME>, SLUICE_PORT, SLUICE_PORT_7101_TCP_ADDR,
// ...) are ignored. No setting ends in _PORT or _SERVICE_HOST, so this never
// hides a real one.
//
// # Usage
//
//	cfg, err := config.Load()
//	if err != nil {
//		fmt.Fprintln(os.Stderr, err) // one line per problem
//		os.Exit(2)
//	}
//	fmt.Print(cfg.Redacted()) // sluice config
//	for _, s := range cfg.SinkConfigs {
//		switch {
//		case s.Kafka != nil: // build the kafka sink from s and s.Kafka
//		}
//	}
package config
