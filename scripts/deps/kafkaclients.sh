# The Java Kafka client (org.apache.kafka:kafka-clients, with its codec jars)
# from Maven Central, for the Kafka listener's Java producer test. Exports
# SLUICE_KAFKA_CLIENTS_CP, a java class path.
kc_version=4.4.0
kc_dir="$SLUICE_CACHE_DIR/kafka-clients/$kc_version"
if [ ! -f "$kc_dir/ok" ] && command -v mvn >/dev/null 2>&1; then
	kc_pom=$(mktemp -d)
	cat >"$kc_pom/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.sluice.deps</groupId><artifactId>kafka-clients-deps</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-clients</artifactId><version>$kc_version</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-nop</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
POM
	if mvn -q -B -Dmaven.repo.local="$SLUICE_CACHE_DIR/m2" -f "$kc_pom/pom.xml" \
		dependency:copy-dependencies -DoutputDirectory="$kc_dir/lib" -DincludeScope=runtime; then
		touch "$kc_dir/ok"
	else
		echo "kafka-clients: download from Maven Central failed"
	fi
	rm -rf "$kc_pom"
fi
if [ -f "$kc_dir/ok" ]; then
	export SLUICE_KAFKA_CLIENTS_CP="$kc_dir/lib/*"
fi
