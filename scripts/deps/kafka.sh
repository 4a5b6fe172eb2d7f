# Apache Kafka (broker, kafka-clients, kafka-tools) from Maven Central, for
# the real-cluster tests (internal/kafkacluster, cmd/sluice
# kafka_real_*_test.go). Maven fetches the pinned version's jars into
# $SLUICE_CACHE_DIR/kafka/<version>/lib, failing on any checksum mismatch
# with what Maven Central serves (--strict-checksums); nothing is committed.
# The tests compile the reference Java client
# (internal/kafkacluster/java/RefClient.java) against them. A second run finds everything cached and returns at
# once. Needs java, javac (17+) and mvn.
kafka_version=${SLUICE_KAFKA_VERSION:-4.4.0}
kafka_log4j_version=2.25.5 # the log4j 2 of kafka 4.4.0; slf4j 1.7 binding
kafka_dir="$SLUICE_CACHE_DIR/kafka/$kafka_version"

kafka_fetch() {
	local tmp
	tmp=$(mktemp -d)
	cat >"$tmp/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.sluice.deps</groupId><artifactId>kafka</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$kafka_version</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-clients</artifactId><version>$kafka_version</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$kafka_version</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$kafka_log4j_version</version></dependency>
  </dependencies>
</project>
POM
	echo "fetching Apache Kafka $kafka_version jars from Maven Central (checksums verified)"
	rm -rf "$kafka_dir/lib.tmp"
	if ! mvn -B -q --strict-checksums -f "$tmp/pom.xml" \
		-Dmaven.repo.local="$SLUICE_CACHE_DIR/m2" \
		dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory="$kafka_dir/lib.tmp"; then
		rm -rf "$tmp" "$kafka_dir/lib.tmp"
		return 1
	fi
	rm -rf "$tmp" "$kafka_dir/lib"
	mv "$kafka_dir/lib.tmp" "$kafka_dir/lib"
}


if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
	apt_install openjdk-17-jdk-headless maven || true
fi
if command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then
	mkdir -p "$kafka_dir"
	if [ -f "$kafka_dir/lib/kafka_2.13-$kafka_version.jar" ] || kafka_fetch; then
		export SLUICE_KAFKA_HOME="$kafka_dir"
	else
		echo "could not fetch Apache Kafka $kafka_version through Maven"
	fi
fi
