# ActiveMQ Artemis (AMQP 1.0 broker) for the amqp1 sink tests: the binary
# distribution org.apache.activemq:apache-artemis:<version>:bin@tar.gz from
# Maven Central, its SHA-512 checked against the one Maven Central serves,
# unpacked into $SLUICE_CACHE_DIR/artemis/apache-artemis-<version>. Needs
# Java 17. The tests find it through SLUICE_ARTEMIS_HOME.
#
# Usage outside scripts/test: . scripts/deps/lib.sh; . scripts/deps/artemis.sh
artemis_version=2.40.0
artemis_dir="$SLUICE_CACHE_DIR/artemis"
artemis_home="$artemis_dir/apache-artemis-$artemis_version"
if [ ! -x "$artemis_home/bin/artemis" ]; then
	(
		set -euo pipefail
		base="https://repo1.maven.org/maven2/org/apache/activemq/apache-artemis/$artemis_version"
		file="apache-artemis-$artemis_version-bin.tar.gz"
		mkdir -p "$artemis_dir"
		tmp=$(mktemp -d "$artemis_dir/.download.XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		echo "downloading $file from Maven Central"
		curl -fsSL --retry 3 -o "$tmp/$file" "$base/$file"
		want=$(curl -fsSL --retry 3 "$base/$file.sha512" | awk '{print $1}')
		got=$(sha512sum "$tmp/$file" | awk '{print $1}')
		if [ -z "$want" ] || [ "$want" != "$got" ]; then
			echo "artemis: SHA-512 mismatch for $file (Maven Central says ${want:-nothing}, got $got)" >&2
			exit 1
		fi
		tar -xzf "$tmp/$file" -C "$tmp"
		rm -rf "$artemis_home"
		mv "$tmp/apache-artemis-$artemis_version" "$artemis_home"
	) || echo "artemis: download failed; the amqp1 tests will report it missing"
fi
if [ -x "$artemis_home/bin/artemis" ]; then
	export SLUICE_ARTEMIS_HOME="$artemis_home"
fi
