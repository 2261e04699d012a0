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
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /app nitejar && mkdir -p /app/data && chown nitejar /app/data
COPY --from=build /src/target/release/nitejar /usr/local/bin/nitejar
USER nitejar
ENV NITEJAR_DATA_DIR=/app/data \
    NITEJAR_BIND=0.0.0.0:3000 \
    RUST_LOG=info
VOLUME ["/app/data"]
EXPOSE 3000
CMD ["nitejar", "serve"]
