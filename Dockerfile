# auditd's container image: built with the Swift 6 toolchain on Debian bookworm, run from a slim bookworm
# with only the shared libraries auditd links (librdkafka, libcurl, libxxhash, SQLite through GRDB's copy).
# docker build -t auditd . ; the compose file's `auditd` service builds and runs it as the sidecar.
FROM swift:6.3-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        librdkafka-dev libcurl4-openssl-dev libxxhash-dev libsqlite3-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Benchmarks ./Benchmarks
COPY Tests ./Tests
COPY Fuzz ./Fuzz
RUN swift build -c release --product auditd --static-swift-stdlib \
    && cp "$(swift build -c release --show-bin-path)/auditd" /usr/local/bin/auditd

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        librdkafka1 libcurl4 libxxhash0 libsqlite3-0 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/auditd --shell /usr/sbin/nologin auditd \
    && mkdir -p /var/lib/auditd /etc/auditd && chown auditd /var/lib/auditd && chmod 0700 /var/lib/auditd
COPY --from=build /usr/local/bin/auditd /usr/local/bin/auditd
COPY deploy/auditd/auditd.conf /etc/auditd/auditd.conf
USER auditd
VOLUME ["/var/lib/auditd"]
ENV AUDITD_STATE=/var/lib/auditd AUDITD_LISTEN=0.0.0.0:9187
EXPOSE 9187
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:9187/healthz || exit 1
# `docker exec CONTAINER auditd report` reads the same state directory (a reader needs no lock).
ENTRYPOINT ["auditd", "serve"]
CMD ["--config", "/etc/auditd/auditd.conf"]
