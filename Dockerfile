# auth-service: a multi-stage build. The first stage compiles the release binary; the
# image that runs it is a slim Debian with nothing but the binary and a non-root user.
#   docker build -t auth-service .
#   docker run -p 8080:8080 -v auth-data:/data auth-service

FROM rust:1-bookworm AS build
WORKDIR /app
# Dependencies in a layer of their own, rebuilt only when Cargo.toml or Cargo.lock change:
# the manifest with empty stand-ins for the crate's own targets, built once, then the
# stand-ins' artifacts removed so the real sources below are compiled (not skipped as
# "fresh" because the stand-ins are newer).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src bench \
    && echo 'fn main() {}' >src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' >bench/hash_cost.rs \
    && cargo build --release --locked --bin auth-service \
    && rm -rf src bench target/release/auth-service* target/release/deps/auth_service-* \
        target/release/deps/libauth_service-* target/release/.fingerprint/auth-service-*
COPY . .
RUN cargo build --release --locked --bin auth-service

FROM debian:bookworm-slim
# TLS to SMTP, PostgreSQL and Redis uses the roots compiled into the binary (webpki-roots):
# no ca-certificates package is needed.
RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin auth \
    && mkdir -p /data \
    && chown auth:auth /data
COPY --from=build /app/target/release/auth-service /usr/local/bin/auth-service
ENV HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/data \
    DATABASE_URL=sqlite:///data/auth.db
WORKDIR /data
VOLUME ["/data"]
USER auth
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["auth-service", "healthcheck"]
ENTRYPOINT ["auth-service"]
CMD ["serve"]
