# Build: a static binary, no cgo.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/signgate ./cmd/signgate
# The ACME storage dir (tls.storage_dir, without Redis), owned by the runtime user:
# a VOLUME Docker creates on its own would belong to root.
RUN mkdir -p /out/state

# Run: distroless static has CA certificates and tzdata and runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/signgate /usr/local/bin/signgate
COPY --from=build --chown=65532:65532 /out/state /var/lib/signgate
USER nonroot:nonroot
# 8443: the TLS edge; 8080: HTTP redirect (and ACME HTTP-01). The admin listener
# (9090) stays on 127.0.0.1 unless config says otherwise.
EXPOSE 8443 8080
VOLUME ["/var/lib/signgate"]
ENTRYPOINT ["/usr/local/bin/signgate"]
CMD ["serve", "-config", "/etc/signgate/config.yaml"]
