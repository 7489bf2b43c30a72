# syntax=docker/dockerfile:1
# envseal: static (musl) binaries in a minimal non-root image.
#
#   docker build -t envseal .
#   docker run -p 8420:8420 -v envseal-data:/data envseal
#
# The binaries are static, so they copy into any image, e.g. Dify's api image
# (examples/dify/Dockerfile.envseal-dify does this):
#   FROM langgenius/dify-api:1.13.3
#   COPY --from=envseal /usr/local/bin/envseal /usr/local/bin/
#   ENTRYPOINT ["/usr/local/bin/envseal", "run", "--profile", "dify", "--", "/bin/bash", "/entrypoint.sh"]
#
# The server runs as the distroless `nonroot` user, UID/GID 65532; a volume or bind
# mount at /data must be writable by 65532 (e.g. `chown 65532:65532 ./envseal-data`).
# HEALTHCHECK uses `envseal-server healthcheck`, which needs no shell or curl.

FROM rust:1.95-bookworm AS build
ARG TARGET=x86_64-unknown-linux-musl
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "${TARGET}"
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target "${TARGET}" -p envseal-server -p envseal \
 && mkdir -p /out /out/data \
 && cp "target/${TARGET}/release/envseal" "target/${TARGET}/release/envseal-server" /out/

# distroless/static: no shell, no package manager, CA certificates, user 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/envseal /out/envseal-server /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV ENVSEAL_DATA_DIR=/data \
    ENVSEAL_LISTEN=0.0.0.0:8420 \
    ENVSEAL_TLS_SELF_SIGNED=true
VOLUME ["/data"]
EXPOSE 8420
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/envseal-server", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/envseal-server"]
