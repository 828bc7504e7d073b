# Partita images, multi-stage:
#   docker build --target partita  -t partita .            # partita serve|node|gateway
#   docker build --target operator -t partita-operator .   # the Kubernetes operator
# Both run as the distroless nonroot user (65532) on a read-only root
# filesystem (the chart mounts /tmp and data volumes).

FROM rust:1.90-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p partita -p partita-operator && \
    mkdir -p /out && \
    cp target/release/partita target/release/partita-operator /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS partita
COPY --from=build /out/partita /usr/local/bin/partita
USER 65532:65532
EXPOSE 8000 8001 7000
ENTRYPOINT ["/usr/local/bin/partita"]
CMD ["serve", "--host", "0.0.0.0", "--data-dir", "/var/lib/partita"]

FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=build /out/partita-operator /usr/local/bin/partita-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/partita-operator"]
