// Package kafkacluster starts real Apache Kafka brokers for tests: one
// combined broker+controller node, or a KRaft cluster of three such nodes
// (min.insync.replicas=2, replication factor 3, auto.create.topics.enable
// false), each a JVM with a small heap listening on loopback ports chosen at
// run time. It kills (-9), stops (SIGSTOP), continues and restarts nodes,
// finds a partition's leader and the active controller, creates topics with
// configs, and runs the reference Java client (java/RefClient.java, compiled
// here against kafka-clients) and the Java producer benchmark.
//
// The jars come from scripts/deps/kafka.sh, which fetches Version through
// Maven into $SLUICE_CACHE_DIR/kafka/<Version> (or SLUICE_KAFKA_HOME). When
// Java or the jars are missing, Require ends the test through
// testenv.Missing: a skip under plain go test, a failure in CI.
//
//	c, err := kafkacluster.Start(ctx, kafkacluster.Options{Nodes: 3, Dir: dir})
//	...
//	defer c.Close()
//	err = c.CreateTopic(ctx, "orders", 6, 3, map[string]string{"max.message.bytes": "65536"})
//	leader, err := c.Leader(ctx, "orders", 0)
//	err = c.Node(leader).Kill()
//	err = c.Node(leader).Restart(ctx)
package kafkacluster
