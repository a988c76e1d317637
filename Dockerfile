# tokengate container image.
#
#   docker build -t tokengate .
#   docker run --read-only -v tokengate-data:/var/lib/tokengate -p 8080:8080 \
#     -e TOKENGATE_UPSTREAM=http://upstream:3000 tokengate
#
# Build stage: dependencies are compiled in their own layer (from Cargo.toml, Cargo.lock and
# stub sources), so editing the sources does not rebuild them.
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin tokengate \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin tokengate \
    && install -D -m 0755 target/release/tokengate /out/tokengate

# Runtime: distroless (glibc, CA certificates, no shell), non-root. The only writable path is
# the embedded store's directory, a volume, so the root filesystem can be read-only.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/tokengate /usr/local/bin/tokengate
COPY config/tokengate.yaml /etc/tokengate/tokengate.yaml
WORKDIR /var/lib/tokengate
VOLUME ["/var/lib/tokengate"]
# 65532 is distroless's "nonroot".
USER 65532:65532
EXPOSE 8080 9091
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/usr/local/bin/tokengate", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/tokengate"]
CMD ["serve", "--config", "/etc/tokengate/tokengate.yaml"]
