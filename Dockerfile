# meter serve in a container: docs/operations.md, "Containers".
#
#   docker build -t meter .
#   docker run -p 8080:8080 -v meter-data:/data meter                       # SQLite in /data
#   docker run -p 8080:8080 -e AWS_REGION=eu-west-1 meter serve --addr 0.0.0.0:8080 --table NAME
#
# Two stages: the release build in the Rust image, then the binary alone on a distroless
# base (glibc, CA certificates, no shell, no package manager), running as an unprivileged
# user. The health check is `meter healthcheck` (one GET /healthz), since there is no curl.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p meter \
    && install -D -m 0755 target/release/meter /out/meter \
    && install -d -o 65532 -g 65532 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/meter /usr/local/bin/meter
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/meter", "healthcheck", "--addr", "127.0.0.1:8080"]
ENTRYPOINT ["/usr/local/bin/meter"]
CMD ["serve", "--addr", "0.0.0.0:8080", "--db", "/data/meter.db"]
