# syntax=docker/dockerfile:1
# walab, the lab's one server binary, for the Compose stack (compose/docker-compose.yml).
# Stage 1 builds it with the Rust toolchain; stage 2 is a slim Debian with only the binary.

FROM rust:1.95-slim-trixie AS build
WORKDIR /src
COPY . .
# The registry and target caches survive between builds (BuildKit), so an edit rebuilds
# only walab's own crates. The binary is copied out because the cache is not in the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin walab \
    && cp target/release/walab /usr/local/bin/walab

FROM debian:trixie-slim
# An unprivileged user owning the data directory (the Compose volumes mount there).
RUN groupadd --system --gid 10001 walab \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin walab \
    && mkdir /data \
    && chown 10001:10001 /data
COPY --from=build /usr/local/bin/walab /usr/local/bin/walab
USER 10001:10001
ENV HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/data
EXPOSE 8000
VOLUME ["/data"]
# Healthy when /health says "ok" (not 503 "recovering"). The slim image has no curl; bash's
# /dev/tcp speaks enough HTTP/1.0, and the server closes the connection after answering.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-8000} && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && grep -q '\"status\":\"ok\"' <&3"]
# /admin/crash kills the process with SIGKILL to itself, which the kernel ignores for PID 1
# of a container: run it under an init (Compose sets `init: true`; `docker run --init`).
ENTRYPOINT ["walab"]
CMD ["serve"]
