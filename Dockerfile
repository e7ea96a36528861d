# Two images from one build: the service (the last stage, the default) and
# the load tester (stage `load`), so the service image carries only the
# service. Cloud Run runs linux/amd64: build for it explicitly on an ARM
# machine (Apple silicon), or the revision will not start.
#   docker build --platform linux/amd64 -t trickle .
#   docker build --platform linux/amd64 --target load -t trickle-load .
#   docker run -p 8080:8080 trickle                      # PORT is honoured
#   docker run trickle-load --help
# Checked by tests/api/deploy.rs (the build command, the copied binaries,
# the non-root user, .dockerignore), since no Docker engine runs in CI.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src

# trickle's allocator (tikv-jemalloc-sys) builds jemalloc from source with
# make, which the slim image lacks.
RUN apt-get update && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*

# Dependency layer: the manifests with stub sources, so that a code change
# does not rebuild every dependency.
COPY Cargo.toml Cargo.lock ./
COPY sse/Cargo.toml sse/Cargo.toml
COPY telemetry/Cargo.toml telemetry/Cargo.toml
COPY loadtest/Cargo.toml loadtest/Cargo.toml
COPY emulator/Cargo.toml emulator/Cargo.toml
COPY protocol/Cargo.toml protocol/Cargo.toml
COPY fuzz/Cargo.toml fuzz/Cargo.toml
RUN mkdir -p src sse/src telemetry/src telemetry/benches loadtest/src emulator/src protocol/src fuzz/src \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs sse/src/lib.rs telemetry/src/lib.rs loadtest/src/lib.rs emulator/src/lib.rs protocol/src/lib.rs fuzz/src/lib.rs \
 && echo 'fn main() {}' > loadtest/src/main.rs && echo 'fn main() {}' > telemetry/benches/recorder.rs \
 && cargo build --release --locked --workspace --bins \
 && rm -rf src sse/src telemetry/src telemetry/benches loadtest/src emulator/src protocol/src fuzz/src

COPY . .
RUN touch src/main.rs src/lib.rs sse/src/lib.rs telemetry/src/lib.rs loadtest/src/lib.rs loadtest/src/main.rs emulator/src/lib.rs protocol/src/lib.rs fuzz/src/lib.rs \
 && cargo build --release --locked --workspace --bins

# Runtime images: glibc, libgcc and CA certificates only (what the binaries
# need for https:// and wss://), no shell, non-root.
FROM gcr.io/distroless/cc-debian12:nonroot AS load
COPY --from=build /src/target/release/trickle-load /usr/local/bin/trickle-load
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/trickle-load"]

FROM gcr.io/distroless/cc-debian12:nonroot AS service
COPY --from=build /src/target/release/trickle /usr/local/bin/trickle
USER 65532:65532
ENV PORT=8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/trickle"]
