// Package sqsserver starts SQS-compatible servers for tests, on free
// loopback ports, with their data in the test's temporary directory, and
// stops them when the test ends:
//
//   - ElasticMQ (Start): the JVM server from Maven Central
//     (org.elasticmq:elasticmq-server_2.13), the project's SQS server for
//     tests. Its SendMessageBatch answers list Successful and Failed
//     entries as SQS does, it checks the 1 MiB batch limit, message
//     characters and the 10-attribute limit per entry, and with
//     Options.Persist it keeps queues and messages in an H2 database that
//     survives kill -9 (written without delay), so an outage test can count
//     what the server kept. It does not check credentials.
//   - moto_server (StartMoto, PyPI "moto[server]"): checks request
//     signatures against IAM users it holds, so a wrong secret really is
//     refused (403). Slow (~60 ms a request): used for the credential tests
//     only. It keeps nothing across a restart.
//
// scripts/deps/sqs.sh installs both, cached outside the repository, and
// exports SLUICE_ELASTICMQ_LIB (the directory of ElasticMQ's jars) and
// SLUICE_MOTO_SERVER (the moto_server program). A test whose server is not
// installed calls testenv.Missing: skipped under plain go test, failed in CI.
//
//	srv := sqsserver.Start(t, sqsserver.Options{Queues: []string{"orders", "orders.fifo"}})
//	url := srv.QueueURL("orders") // http://127.0.0.1:PORT/000000000000/orders
//	srv.Kill()                    // SIGKILL
//	srv.Restart()                 // same port, same data
package sqsserver
