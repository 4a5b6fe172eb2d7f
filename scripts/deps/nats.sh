# nats-server with JetStream, for the NATS sink tests (sink/nats,
# cmd/sluice TestE2ENATS*), run as a separate process by
# internal/testserver/natsserver:
#   - v2.15.3, built once with `go install` into the cache: the release that
#     matches the nats.go client (v1.56.0) sluice uses; the main target.
#   - Debian's nats-server (2.9.10 on bookworm), the one a Debian host runs;
#     the conformance and per-message tests also run against it.
NATS_SERVER_VERSION=v2.15.3
nats_dir="$SLUICE_CACHE_DIR/nats-server/$NATS_SERVER_VERSION"
if [ ! -x "$nats_dir/nats-server" ]; then
	echo "building nats-server $NATS_SERVER_VERSION (go install, cached in $nats_dir)"
	mkdir -p "$nats_dir"
	GOBIN="$nats_dir" go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION"
fi
export SLUICE_NATS_SERVER="$nats_dir/nats-server"
"$SLUICE_NATS_SERVER" --version

apt_install nats-server || true
if [ -x /usr/sbin/nats-server ]; then
	export SLUICE_NATS_SERVER_DEBIAN=/usr/sbin/nats-server
	"$SLUICE_NATS_SERVER_DEBIAN" --version
fi
