# The gateway's image: built in a Rust image, run from a slim Debian one as
# an unprivileged user. Built by compose/docker-compose.yml (context: the
# repository root).

FROM rust:1.89.0-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY clickhouse-schema clickhouse-schema
COPY config config
RUN cargo build --release --locked && strip target/release/storage-gateway

FROM debian:bookworm-20241016-slim
# curl for the health check; ca-certificates for TLS to managed stores.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/storage-gateway --create-home gateway \
    && mkdir -p /var/lib/storage-gateway/spool \
    && chown -R gateway:gateway /var/lib/storage-gateway
COPY --from=build /src/target/release/storage-gateway /usr/local/bin/storage-gateway
USER gateway
WORKDIR /var/lib/storage-gateway
ENV GATEWAY__SERVER__HOST=0.0.0.0 \
    PORT=8080 \
    GATEWAY__ANALYTICS__SPOOL_DIR=/var/lib/storage-gateway/spool \
    GATEWAY__LOG__FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["storage-gateway"]
CMD ["serve"]
