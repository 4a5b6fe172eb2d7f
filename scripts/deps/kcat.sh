# kcat (librdkafka's command-line client): Kafka tests read back with a
# client independent of the one sluice uses.
apt_install kcat || true
if command -v kcat >/dev/null 2>&1; then
	export SLUICE_REQUIRE_KCAT=1
fi
