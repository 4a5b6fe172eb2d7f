#!/usr/bin/env bash
# Checks of the Helm charts and the image build, for CI and by hand:
#   bash charts/test/run.sh
#
# 1. helm (the version pinned in charts/test/go.mod, built with go) packages the
#    library chart into the example chart (helm dependency build);
# 2. helm lint --strict on both charts, and on the example with each
#    ci/*-values.yaml;
# 3. gofmt, go vet and go test in charts/test: renders, strict decoding,
#    agent config, refused values, static build (see the test files).
#
# Helm's cache and config live in a temporary directory, not in $HOME.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
charts=$(dirname "$here")
cd "$here"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HELM_CACHE_HOME="$tmp/cache" HELM_CONFIG_HOME="$tmp/config" HELM_DATA_HOME="$tmp/data"

start=$(date +%s)
step() { printf '==> %s (%ss)\n' "$*" "$(($(date +%s) - start))"; }

step "build helm $(go list -m -f '{{.Version}}' helm.sh/helm/v3)"
# `go tool` keeps the linked binary in the build cache; -n prints its path.
helm=$(go tool -n helm)

step "helm dependency build sluice-example"
"$helm" dependency build "$charts/sluice-example"

step "helm lint --strict"
"$helm" lint --strict "$charts/sluice"
"$helm" lint --strict "$charts/sluice-example"
for f in "$charts"/sluice-example/ci/*-values.yaml; do
	"$helm" lint --strict --quiet -f "$f" "$charts/sluice-example"
done

step "gofmt, go vet"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt needed on: $unformatted" >&2
	exit 1
fi
go vet ./...

step "go test"
go test -count=1 ./...

step "done"
