# The canonical operator path (spec §5.1): one image, data in the /app/data volume.
#   docker build -t nitejar .
#   docker run -d -p 3000:3000 -v nitejar-data:/app/data -e ENCRYPTION_KEY=$(openssl rand -hex 32) \
#     -e NITEJAR_ADMIN_TOKEN=$(openssl rand -hex 24) nitejar
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN rustup target add wasm32-wasip2
COPY . .
RUN cargo build --release --locked -p nitejar

FROM debian:bookworm-slim
# git: for git install sources. No Rust toolchain in the image, so a git package must commit its
# built component (or be published to npm); building from source needs a toolchain on the host.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates git && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /app nitejar && mkdir -p /app/data && chown nitejar /app/data
COPY --from=build /src/target/release/nitejar /usr/local/bin/nitejar
USER nitejar
ENV NITEJAR_DATA_DIR=/app/data \
    NITEJAR_BIND=0.0.0.0:3000 \
    RUST_LOG=info
VOLUME ["/app/data"]
EXPOSE 3000
CMD ["nitejar", "serve"]
