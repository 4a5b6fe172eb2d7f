# syntax=docker/dockerfile:1
#
# Image of the sluice agent: a static binary on distroless/static, running as
# 65532:65532 (nonroot), made for a read-only root filesystem. The only path it
# writes is the spool directory, /var/lib/sluice: mount a volume there.
#
#   docker build --build-arg VERSION=v0.1.0 -t ghcr.io/sluiceio/sluice:0.1.0 .
#
# (The library chart's default image tag is its appVersion, without the v.)
#
# The build flags live in scripts/build-static only. Multi-platform builds
# (docker buildx --platform linux/amd64,linux/arm64) cross-compile on the
# build machine's platform.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first: this layer stays cached until go.mod or go.sum change.
COPY go.mod go.sum ./
# tidwall/wal with one patch (third_party/tidwall/wal/PATCHES.md), by replace.
COPY third_party/ third_party/
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
# Empty: the script falls back to "dev" (.git is not in the build context).
ARG VERSION=""
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS="$TARGETOS" GOARCH="$TARGETARCH" VERSION="$VERSION" scripts/build-static /out/sluice \
 && mkdir -p /out/spool

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=""
LABEL org.opencontainers.image.title="sluice" \
      org.opencontainers.image.description="Sidecar queue agent: spools pushes on disk, forwards them to Kafka and other sinks" \
      org.opencontainers.image.source="https://github.com/sluiceio/sluice" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/sluice /usr/local/bin/sluice
# The spool directory exists and belongs to the agent, for `docker run` without
# a volume; in Kubernetes the spool volume is mounted over it.
COPY --from=build --chown=65532:65532 /out/spool /var/lib/sluice
USER 65532:65532
ENV SLUICE_SPOOL_DIR=/var/lib/sluice
VOLUME ["/var/lib/sluice"]
# Admin listener (/livez, /readyz, /metrics, /v1/stats). The ingest listener,
# 127.0.0.1:7101 by default, is for processes in the same network namespace.
EXPOSE 7103
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["run"]
