# rabbitmq-server (Debian): the RabbitMQ sink's tests start real nodes of it
# (internal/testserver/rabbitmq), each in a temp dir on free loopback ports,
# never the system service. The package's own service is not started here.
apt_install rabbitmq-server || true
if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
	export SLUICE_RABBITMQ_BIN=/usr/lib/rabbitmq/bin
fi
