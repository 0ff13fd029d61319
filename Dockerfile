# syntax=docker/dockerfile:1
# One image with the three functions (bizpulse-aggregate, -detect, -render); each Knative
# Service picks its binary with `command` (knative/base/*.yaml).
#
#   docker build -t bizpulse .
#   docker run --rm -e PORT=8080 -e DATABASE_URL=... -e BIZPULSE_METRICS=/m.json \
#     -v $PWD/examples/metrics.json:/m.json:ro -p 8080:8080 bizpulse bizpulse-render
#
# The build stage runs scripts/build.sh, the same command as the README, scripts/demo.sh and
# scripts/test.sh (tests/deploy/check_dockerfile.py runs this stage's commands outside Docker).
# Pin the base image by digest for reproducible builds: --build-arg DEBIAN=debian:12-slim@sha256:...
ARG DEBIAN=debian:12-slim

FROM ${DEBIAN} AS build
# The build packages of scripts/deps.sh (its test-only ones left out).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential meson ninja-build pkg-config python3 ca-certificates \
      libh2o-evloop-dev libpq-dev libcjson-dev libcairo2-dev libhpdf-dev \
      libcurl4-openssl-dev libpng-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN ./scripts/build.sh /build -Dtests=false \
 && meson install -C /build --no-rebuild --strip --destdir /out

FROM ${DEBIAN} AS runtime
# Runtime libraries of the three binaries, the chart/report fonts (DejaVu for Latin, WenQuanYi
# Zen Hei: the TrueType CJK font libharu embeds), tzdata for the charts' tz= parameter, CA
# certificates for smtps:// and TLS to PostgreSQL. fc-cache at build time: no font scan at
# cold start (the root filesystem is read-only at run time).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libh2o-evloop0.13 libpq5 libcjson1 libcairo2 libhpdf-2.3.0 libcurl4 libpng16-16 zlib1g \
      fontconfig fonts-dejavu-core fonts-wqy-zenhei tzdata ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && fc-cache -s \
 && groupadd --system --gid 10001 bizpulse \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin bizpulse \
 && mkdir -p /var/lib/bizpulse/reports \
 && chown bizpulse:bizpulse /var/lib/bizpulse/reports
COPY --from=build /out/usr/local/bin/ /usr/local/bin/
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
ENV PORT=8080 \
    BIZPULSE_REPORT_DIR=/var/lib/bizpulse/reports \
    HOME=/tmp
EXPOSE 8080
# No shell at run time: exec form, the binary is PID 1 and gets SIGTERM itself (it drains
# and exits 0, DESIGN §4). The Service (or `docker run IMAGE bizpulse-<name> ...`) names the
# function; the default only prints how (and replaces debian's CMD ["bash"]).
CMD ["/usr/local/bin/bizpulse-render", "help"]
