# redis-server (Debian): the queue benchmark (bench/queues) measures Redis
# Streams beside sluice's local queues. The benchmark skips when it is
# missing; it is not part of the test suite.
apt_install redis-server || true
