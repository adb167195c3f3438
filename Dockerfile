# walab, the lab's one server binary, for the Compose stack (compose/docker-compose.yml).
# Stage 1 builds it with the Rust toolchain; stage 2 is a slim Debian with only the binary.
#
# No `# syntax=` line: the builder's own Dockerfile frontend is enough (BuildKit's built-in
# one has `RUN --mount`), and a machine without an image registry could not pull another.
# Build with BuildKit (`docker compose up --build` does; `docker buildx build .`). Where no
# registry is reachable, compose/offline-images.sh first makes the two FROM images locally,
# under these exact names, from Debian's packages and the host's Rust toolchain.

FROM rust:1.95-slim-trixie AS build
WORKDIR /src
# Only what the build needs (.dockerignore lets in no more), so editing docs, tests or
# scripts does not invalidate this layer.
COPY . .
# The registry and target caches survive between builds (BuildKit cache mounts), so an edit
# rebuilds only walab's own crates. The binary is copied out because the cache is not in the
# image, without its line tables (panics still name the functions): 9 MB instead of 52.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin walab \
    && objcopy --strip-debug target/release/walab /usr/local/bin/walab

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
# Healthy when /health says "ok": 503 "recovering" (replay still running) and 503
# "poisoned" (a failed log write or fsync) are not. The slim image has no curl; bash's
# /dev/tcp speaks enough HTTP/1.0, and the server closes the connection after answering.
HEALTHCHECK --interval=2s --timeout=2s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-8000} && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && grep -q '\"status\":\"ok\"' <&3"]
# /admin/crash kills the process with SIGKILL to itself, which the kernel ignores for PID 1
# of a container: run it under an init (Compose sets `init: true`; `docker run --init`).
ENTRYPOINT ["walab"]
CMD ["serve"]
