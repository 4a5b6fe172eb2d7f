# SQS-compatible servers for the SQS sink's tests (see internal/testserver/sqs):
# ElasticMQ (JVM, from Maven Central) for everything but credentials, and
# moto_server (PyPI "moto[server]"), which checks request signatures, for the
# credential tests. Both cached in $SLUICE_CACHE_DIR; a second run starts at
# once. Cold: ~10 s for ElasticMQ's 37 MB of jars, ~1 min for moto in a venv.
elasticmq_version=1.7.1
elasticmq_lib="$SLUICE_CACHE_DIR/elasticmq-$elasticmq_version/lib"
command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless || true
if ! ls "$elasticmq_lib"/elasticmq-server_*.jar >/dev/null 2>&1; then
	command -v mvn >/dev/null 2>&1 || apt_install maven || true
	if command -v mvn >/dev/null 2>&1; then
		echo "fetching ElasticMQ $elasticmq_version from Maven Central"
		tmp=$(mktemp -d)
		cat >"$tmp/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.sluice</groupId><artifactId>elasticmq-fetch</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.elasticmq</groupId><artifactId>elasticmq-server_2.13</artifactId><version>$elasticmq_version</version></dependency>
  </dependencies>
</project>
POM
		if (cd "$tmp" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/lib"); then
			mkdir -p "$(dirname "$elasticmq_lib")"
			rm -rf "$elasticmq_lib" && mv "$tmp/lib" "$elasticmq_lib"
		fi
		rm -rf "$tmp"
	fi
fi
if ls "$elasticmq_lib"/elasticmq-server_*.jar >/dev/null 2>&1; then
	export SLUICE_ELASTICMQ_LIB="$elasticmq_lib"
fi

moto_version=5.2.5
if command -v moto_server >/dev/null 2>&1; then
	export SLUICE_MOTO_SERVER="$(command -v moto_server)"
else
	moto_venv="$SLUICE_CACHE_DIR/moto-$moto_version"
	if [ ! -x "$moto_venv/bin/moto_server" ] && command -v python3 >/dev/null 2>&1; then
		echo "installing moto[server] $moto_version from PyPI"
		python3 -m venv "$moto_venv" && "$moto_venv/bin/pip" install -q "moto[server]==$moto_version" || rm -rf "$moto_venv"
	fi
	if [ -x "$moto_venv/bin/moto_server" ]; then
		export SLUICE_MOTO_SERVER="$moto_venv/bin/moto_server"
	fi
fi
